/**
 * The artifacts bucket: reports, worker files and logs, and presigned links
 * to them. The S3 package and the presigner are imported on first use: most
 * Lambda invocations touch no object and need not load them (lazy.ts).
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { isAccessDenied, isNotFound } from './aws-errors.ts';
import { type ClientSource, clientOf, lazy } from './lazy.ts';

/** The S3 commands, imported once on first use (each `import()` call resolves the module again). */
const s3Sdk = lazy(() => import('./sdk/s3.ts'));

const MAX_LIST_PAGES = 100;

export interface ArtifactObject {
  key: string;
  size: number;
  /** Without quotes; changes whenever the object's content does. */
  etag?: string | undefined;
}

export class Artifacts {
  private readonly client: () => Promise<S3Client>;

  constructor(
    s3: ClientSource<S3Client>,
    readonly bucket: string,
  ) {
    this.client = clientOf(s3);
  }

  /** The S3 package and the client. */
  private sdk() {
    return Promise.all([s3Sdk(), this.client()]);
  }

  uri(key: string): string {
    return `s3://${this.bucket}/${key}`;
  }

  async putText(key: string, body: string, contentType: string): Promise<void> {
    const [{ PutObjectCommand }, s3] = await this.sdk();
    await s3.send(
      new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentType: contentType }),
    );
  }

  async getBytes(key: string): Promise<Uint8Array | undefined> {
    const [{ GetObjectCommand }, s3] = await this.sdk();
    try {
      const out = await s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      return out.Body ? await out.Body.transformToByteArray() : new Uint8Array();
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /**
   * The first `bytes` bytes of an object (a ranged GET), or undefined when it
   * does not exist; with `etag`, only that version of it.
   */
  async getStart(key: string, bytes: number, etag?: string): Promise<Uint8Array | undefined> {
    const [{ GetObjectCommand }, s3] = await this.sdk();
    try {
      const out = await s3.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Range: `bytes=0-${bytes - 1}`,
          ...(etag ? { IfMatch: etag } : {}),
        }),
      );
      return out.Body ? await out.Body.transformToByteArray() : new Uint8Array();
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** Size of an object in bytes, or undefined when it does not exist. */
  async size(key: string): Promise<number | undefined> {
    return (await this.head(key))?.size;
  }

  /** Size and ETag of an object, or undefined when it does not exist. */
  async head(key: string): Promise<{ size: number; etag?: string | undefined } | undefined> {
    const [{ HeadObjectCommand }, s3] = await this.sdk();
    try {
      const out = await s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return { size: out.ContentLength ?? 0, etag: out.ETag };
    } catch (err) {
      // S3 answers a missing key with 403, not 404, to a role that may not list the prefix (sources/).
      if (isNotFound(err) || isAccessDenied(err)) return undefined;
      throw err;
    }
  }

  /**
   * Server-side copy inside the bucket (up to 5 GB, which covers every bundle
   * limit); with `etag`, only if the source is still that version.
   */
  async copy(from: string, to: string, etag?: string): Promise<void> {
    const [{ CopyObjectCommand }, s3] = await this.sdk();
    await s3.send(
      new CopyObjectCommand({
        Bucket: this.bucket,
        Key: to,
        CopySource: `${this.bucket}/${from.split('/').map(encodeURIComponent).join('/')}`,
        ...(etag ? { CopySourceIfMatch: etag } : {}),
      }),
    );
  }

  async getText(key: string): Promise<string | undefined> {
    const bytes = await this.getBytes(key);
    return bytes === undefined ? undefined : Buffer.from(bytes).toString('utf8');
  }

  /** Every object under a prefix, bounded to MAX_LIST_PAGES pages of 1,000. */
  async list(prefix: string): Promise<ArtifactObject[]> {
    const { objects, truncated } = await this.listUpTo(prefix, MAX_LIST_PAGES * 1000);
    if (truncated) throw new Error(`more than ${MAX_LIST_PAGES * 1000} objects under ${prefix}`);
    return objects;
  }

  /** The first `max` objects under a prefix in key order, and whether there are more. */
  async listUpTo(prefix: string, max: number): Promise<{ objects: ArtifactObject[]; truncated: boolean }> {
    const [{ ListObjectsV2Command }, s3] = await this.sdk();
    const objects: ArtifactObject[] = [];
    let token: string | undefined;
    for (let page = 0; page < MAX_LIST_PAGES && objects.length < max; page++) {
      const out = await s3.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: prefix,
          MaxKeys: Math.min(1000, max - objects.length),
          ...(token ? { ContinuationToken: token } : {}),
        }),
      );
      for (const o of out.Contents ?? [])
        if (o.Key) objects.push({ key: o.Key, size: o.Size ?? 0, etag: o.ETag?.replaceAll('"', '') });
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
      if (!token) return { objects, truncated: false };
    }
    return { objects: objects.slice(0, max), truncated: true };
  }

  /**
   * A presigned PUT. With `contentLength` the size is part of the signature,
   * so S3 refuses a body of any other size.
   */
  async presignPut(key: string, expiresInSec: number, contentLength?: number): Promise<string> {
    const [{ PutObjectCommand, getSignedUrl }, s3] = await this.sdk();
    if (contentLength === undefined) {
      return getSignedUrl(s3, new PutObjectCommand({ Bucket: this.bucket, Key: key }), {
        expiresIn: expiresInSec,
      });
    }
    return getSignedUrl(
      s3,
      new PutObjectCommand({ Bucket: this.bucket, Key: key, ContentLength: contentLength }),
      { expiresIn: expiresInSec, signableHeaders: new Set(['host', 'content-length']) },
    );
  }

  async presignGet(key: string, expiresInSec: number): Promise<string> {
    const [{ GetObjectCommand, getSignedUrl }, s3] = await this.sdk();
    return getSignedUrl(s3, new GetObjectCommand({ Bucket: this.bucket, Key: key }), {
      expiresIn: expiresInSec,
    });
  }
}
