/**
 * S3 objects on disk for the embedded emulator, so that `serve` (and the
 * emulators of a restarted test stack) keep every job's files and reports.
 * fauxqs keeps objects in memory behind its S3 routes; this is its own store
 * class with every change written through to a folder before the request is
 * answered, and that folder read back at start. The S3 API in front of it is
 * fauxqs's, unchanged.
 *
 * Layout: `<dir>/<bucket>/<sha256 of key>.json` (key, content type,
 * metadata, last modified, and the name of its body file) and the body in a
 * file of its own name. A write puts the new body beside the old one and then
 * replaces the `.json` by a rename, the commit point; a delete removes the
 * `.json` first. A crash at any point leaves the old object or the new one,
 * never half of one; bodies no `.json` names are removed at start.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** What of fauxqs's S3Store this uses and overrides (its class is internal to the package). */
interface S3ObjectLike {
  key: string;
  body: Buffer;
  contentType: string;
  metadata: Record<string, string>;
  lastModified: Date;
}
interface S3StoreLike {
  createBucket(name: string): void;
  deleteBucket(name: string): void;
  hasBucket(name: string): boolean;
  listBuckets(): { name: string }[];
  putObject(
    bucket: string,
    key: string,
    body: Buffer,
    contentType?: string,
    metadata?: Record<string, string>,
  ): S3ObjectLike;
  deleteObject(bucket: string, key: string): void;
  completeMultipartUpload(uploadId: string, parts: { partNumber: number; etag: string }[]): S3ObjectLike;
  emptyBucket(name: string): void;
  clearObjects(): void;
  purgeAll(): void;
}
type S3StoreClass = new () => S3StoreLike;

interface Meta {
  key: string;
  contentType: string;
  metadata: Record<string, string>;
  lastModified: string;
  /** The body's file, beside this one. */
  body: string;
}

/**
 * fauxqs exports only its app, not its stores; its S3Store is at a fixed place
 * beside the app's module (checked by the tests, so an upgrade that moves it
 * fails loudly rather than silently losing durability).
 */
async function loadS3Store(): Promise<S3StoreClass> {
  const module = (await import(pathToFileURL(fauxqsFile(join('dist', 's3', 's3Store.js'))).href)) as {
    S3Store?: S3StoreClass;
  };
  if (typeof module.S3Store !== 'function') throw new Error('fauxqs has no S3Store where expected');
  return module.S3Store;
}

/** A file of the installed fauxqs package, found as Node finds packages: node_modules up from here. */
function fauxqsFile(relative: string): string {
  for (let at = dirname(fileURLToPath(import.meta.url)); ; at = dirname(at)) {
    const candidate = join(at, 'node_modules', 'fauxqs', relative);
    if (existsSync(candidate)) return candidate;
    if (dirname(at) === at) throw new Error(`cannot find fauxqs/${relative} in any node_modules`);
  }
}

const fileOf = (key: string) => createHash('sha256').update(key).digest('hex');

/** Writes `data` to `path` through a temporary file, so a reader never sees half of it. */
function writeAtomically(path: string, data: Buffer | string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

/** An S3 store for fauxqs's `buildApp({ stores: { s3Store } })` that keeps its objects in `dir`. */
export async function durableS3Store(dir: string): Promise<S3StoreLike> {
  const S3Store = await loadS3Store();

  class DurableS3Store extends S3Store {
    private loading = false;

    override createBucket(name: string): void {
      super.createBucket(name);
      mkdirSync(join(dir, bucketDir(name)), { recursive: true });
    }

    override deleteBucket(name: string): void {
      super.deleteBucket(name);
      rmSync(join(dir, bucketDir(name)), { recursive: true, force: true });
    }

    override putObject(
      bucket: string,
      key: string,
      body: Buffer,
      contentType?: string,
      metadata?: Record<string, string>,
    ): S3ObjectLike {
      const obj = super.putObject(bucket, key, body, contentType, metadata);
      if (!this.loading) persist(bucket, obj);
      return obj;
    }

    override deleteObject(bucket: string, key: string): void {
      super.deleteObject(bucket, key);
      const folder = join(dir, bucketDir(bucket));
      const meta = readMeta(join(folder, `${fileOf(key)}.json`));
      rmSync(join(folder, `${fileOf(key)}.json`), { force: true });
      if (meta) rmSync(join(folder, meta.body), { force: true });
    }

    override completeMultipartUpload(
      uploadId: string,
      parts: { partNumber: number; etag: string }[],
    ): S3ObjectLike {
      const upload = (
        this as unknown as { multipartUploads: Map<string, { bucket: string }> }
      ).multipartUploads.get(uploadId);
      const obj = super.completeMultipartUpload(uploadId, parts);
      if (upload) persist(upload.bucket, obj);
      return obj;
    }

    override emptyBucket(name: string): void {
      super.emptyBucket(name);
      if (this.hasBucket(name)) {
        rmSync(join(dir, bucketDir(name)), { recursive: true, force: true });
        mkdirSync(join(dir, bucketDir(name)), { recursive: true });
      }
    }

    override clearObjects(): void {
      const buckets = this.listBuckets().map((b) => b.name);
      super.clearObjects();
      for (const name of buckets) {
        rmSync(join(dir, bucketDir(name)), { recursive: true, force: true });
        mkdirSync(join(dir, bucketDir(name)), { recursive: true });
      }
    }

    override purgeAll(): void {
      super.purgeAll();
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
    }

    /** Reads every bucket and object back, as they were last written. */
    load(): void {
      this.loading = true;
      try {
        for (const entry of readdirSync(dir, { withFileTypes: true })) {
          if (!entry.isDirectory()) continue;
          const name = bucketName(entry.name);
          super.createBucket(name);
          const folder = join(dir, entry.name);
          const kept = new Set<string>();
          for (const file of readdirSync(folder)) {
            if (!file.endsWith('.json')) continue;
            const meta = readMeta(join(folder, file));
            if (!meta || !existsSync(join(folder, meta.body))) continue;
            kept.add(meta.body);
            const body = readFileSync(join(folder, meta.body));
            const obj = super.putObject(name, meta.key, body, meta.contentType, meta.metadata);
            obj.lastModified = new Date(meta.lastModified);
          }
          // Bodies no object names (a crash before or after a commit) and temporary files.
          for (const file of readdirSync(folder))
            if (!file.endsWith('.json') && !kept.has(file)) rmSync(join(folder, file), { force: true });
        }
      } finally {
        this.loading = false;
      }
    }
  }

  function persist(bucket: string, obj: S3ObjectLike): void {
    const folder = join(dir, bucketDir(bucket));
    mkdirSync(folder, { recursive: true });
    const metaFile = join(folder, `${fileOf(obj.key)}.json`);
    const previous = readMeta(metaFile);
    const body = `${fileOf(obj.key)}.${randomBytes(6).toString('hex')}.body`;
    writeAtomically(join(folder, body), obj.body);
    const meta: Meta = {
      key: obj.key,
      contentType: obj.contentType,
      metadata: obj.metadata,
      lastModified: obj.lastModified.toISOString(),
      body,
    };
    // The commit point: from here on the new object is the one.
    writeAtomically(metaFile, JSON.stringify(meta));
    if (previous) rmSync(join(folder, previous.body), { force: true });
  }

  mkdirSync(dir, { recursive: true });
  const store = new DurableS3Store();
  store.load();
  return store;
}

function readMeta(path: string): Meta | undefined {
  try {
    const meta = JSON.parse(readFileSync(path, 'utf8')) as Partial<Meta>;
    return typeof meta.key === 'string' && typeof meta.body === 'string' && /^[0-9a-f.]+body$/.test(meta.body)
      ? (meta as Meta)
      : undefined;
  } catch {
    return undefined;
  }
}

/** Bucket names are DNS-like, but keep the folder name safe whatever they are. */
function bucketDir(name: string): string {
  return encodeURIComponent(name);
}

function bucketName(folder: string): string {
  return decodeURIComponent(folder);
}
