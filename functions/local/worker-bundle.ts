/**
 * The worker bundle: container/worker.ts, and container/spawn.ts (the
 * `orchestrator spawn` Claude runs inside a worker), bundled by esbuild into
 * one folder of ES modules with a `bin/orchestrator` command. The worker image
 * is built from it (scripts/build-worker.mjs) and local mode runs the same
 * bundle: Node starts it in a fraction of the time tsx takes to compile the
 * sources at every worker start.
 *
 * Local mode builds it itself, so that it never runs stale code and needs no
 * build step: a process reuses the last bundle only when every file esbuild
 * read for it (its metafile inputs) is unchanged (same size and mtime, or the
 * same content when the mtime moved), and otherwise builds a new one, once.
 * Bundles live in a cache folder under names derived from their inputs; each
 * is written to a temporary folder and renamed into place, so processes
 * building at the same time never see half a bundle.
 */
import { createHash, randomBytes } from 'node:crypto';
import { accessSync, constants, existsSync } from 'node:fs';
import { chmod, mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, sep } from 'node:path';
import { type BuildOptions, build, version as esbuildVersion, type Metafile } from 'esbuild';
import { PACKAGE_ROOT } from './sandbox.ts';

/** The bundle's entry points, relative to the package root: `<name>.mjs` each. */
export const WORKER_ENTRY_POINTS: Readonly<Record<string, string>> = {
  worker: 'container/worker.ts',
  spawn: 'container/spawn.ts',
};

/**
 * `orchestrator` for Claude inside a worker: container/session.ts puts the
 * bundle's bin folder first on Claude's PATH (/opt/worker/bin in the image).
 */
const SPAWN_COMMAND = `#!/bin/sh
# \`orchestrator spawn --wait "<request>"\` for Claude inside a worker: the bundled spawn.mjs.
exec node "$(dirname "$0")/../spawn.mjs" "$@"
`;

/** The esbuild options of the worker bundle, for the image and local mode alike. */
export function workerBuildOptions(
  root: string = PACKAGE_ROOT,
  entryPoints: Readonly<Record<string, string>> = WORKER_ENTRY_POINTS,
): BuildOptions {
  return {
    absWorkingDir: root,
    entryPoints: { ...entryPoints },
    outExtension: { '.js': '.mjs' },
    bundle: true,
    // Chunks, so a worker loads only what it needs to ask for its assignment before asking
    // (container/worker.ts imports the rest afterwards). Chunks stay next to the entries:
    // container/session.ts finds bin/ relative to its own module.
    splitting: true,
    platform: 'node',
    // Local mode runs it on the Node it runs on (20 or later); the image runs Node 22.
    target: 'node20',
    format: 'esm',
    minify: true,
    sourcemap: 'linked',
    // Some bundled CommonJS dependencies call require(); give ESM output one.
    banner: {
      js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
    },
    metafile: true,
    logLevel: 'silent',
  };
}

/** Builds the bundle into `outdir` (which should be empty), with its `bin/orchestrator`. */
export async function buildWorkerBundle(
  outdir: string,
  options: BuildOptions = workerBuildOptions(),
): Promise<Metafile> {
  const result = await build({ ...options, outdir, metafile: true, write: true });
  await mkdir(join(outdir, 'bin'), { recursive: true });
  await writeFile(join(outdir, 'bin', 'orchestrator'), SPAWN_COMMAND);
  await chmod(join(outdir, 'bin', 'orchestrator'), 0o755);
  return result.metafile as Metafile;
}

export interface WorkerBundle {
  /** The bundle's folder: what a sandbox must show the worker, read-only. */
  dir: string;
  /** `worker.mjs` in it. */
  entry: string;
}

/** One file the bundle was built from, as it was when esbuild read it. */
interface Input {
  /** Relative to the package root, as esbuild's metafile names it. */
  path: string;
  size: number;
  mtimeMs: number;
  sha256: string;
}

interface Manifest {
  fingerprint: string;
  inputs: Input[];
}

const MANIFEST = 'inputs.json';
/**
 * A file changed less than this before the build started may have changed
 * after esbuild read it (mtimes are coarse on some file systems): such a
 * bundle serves the process that built it, but is never reused.
 */
const SETTLE_MS = 2_000;
/** Bundles not used for this long are removed (a worker runs at most 15 minutes; launches touch theirs). */
const UNUSED_MS = 7 * 24 * 3600_000;
/** Leftovers of a build that died halfway. */
const ABANDONED_MS = 3600_000;

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

export interface BundleCacheOptions {
  /** Where bundles are kept. */
  cacheDir: string;
  /** The package root the sources are read from (tests build a project of their own). */
  root?: string;
  entryPoints?: Readonly<Record<string, string>>;
}

/**
 * The bundle of the sources as they are now: the last one built, when none of
 * its inputs changed since, or a new one. `built` says which.
 */
export async function ensureWorkerBundle(
  cache: BundleCacheOptions,
): Promise<WorkerBundle & { built: boolean }> {
  const root = cache.root ?? PACKAGE_ROOT;
  const options = workerBuildOptions(root, cache.entryPoints);
  // Anything besides the inputs that decides the output: esbuild, its options, the spawn command.
  const { absWorkingDir: _root, ...portable } = options;
  const fingerprint = sha256(JSON.stringify([esbuildVersion, portable, SPAWN_COMMAND]));
  // One pointer per package root: several checkouts may share a cache folder.
  const pointer = join(cache.cacheDir, `latest-${sha256(`${root}\n${fingerprint}`).slice(0, 16)}`);

  const last = await readFile(pointer, 'utf8').catch(() => '');
  if (/^worker-[0-9a-f]+$/.test(last)) {
    const dir = join(cache.cacheDir, last);
    if (await upToDate(dir, root, fingerprint)) {
      await touch(dir);
      return { ...bundleIn(dir), built: false };
    }
  }

  await mkdir(cache.cacheDir, { recursive: true });
  const tmp = join(cache.cacheDir, `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
  try {
    const started = Date.now();
    const metafile = await buildWorkerBundle(tmp, options);
    const inputs = await Promise.all(
      Object.keys(metafile.inputs)
        .sort()
        .map((p) => describe(root, p)),
    );
    const settled = inputs.every((i) => i.mtimeMs < started - SETTLE_MS);
    const key = sha256(JSON.stringify([fingerprint, inputs.map((i) => [i.path, i.sha256])])).slice(0, 24);
    // An unsettled bundle gets a name no other build can arrive at, and no pointer.
    const name = settled ? `worker-${key}` : `worker-${key}${randomBytes(6).toString('hex')}`;
    const manifest: Manifest = { fingerprint: settled ? fingerprint : 'unsettled', inputs };
    await writeFile(join(tmp, MANIFEST), JSON.stringify(manifest));
    const dir = join(cache.cacheDir, name);
    try {
      await rename(tmp, dir);
    } catch (err) {
      // Another process built the same sources first: theirs is as good.
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST' && code !== 'ENOTEMPTY') throw err;
      await touch(dir);
    }
    if (settled) {
      const next = `${pointer}.${process.pid}-${randomBytes(6).toString('hex')}`;
      await writeFile(next, name);
      await rename(next, pointer);
    }
    await prune(cache.cacheDir);
    return { ...bundleIn(dir), built: true };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

function bundleIn(dir: string): WorkerBundle {
  return { dir, entry: join(dir, 'worker.mjs') };
}

async function describe(root: string, path: string): Promise<Input> {
  const file = join(root, path);
  // Stat first: a file changed while it is read then shows a newer mtime than the one recorded.
  const st = await stat(file);
  return { path, size: st.size, mtimeMs: st.mtimeMs, sha256: sha256(await readFile(file)) };
}

async function upToDate(dir: string, root: string, fingerprint: string): Promise<boolean> {
  let manifest: Manifest;
  try {
    manifest = JSON.parse(await readFile(join(dir, MANIFEST), 'utf8')) as Manifest;
  } catch {
    return false;
  }
  if (manifest.fingerprint !== fingerprint || !existsSync(join(dir, 'worker.mjs'))) return false;
  const same = await Promise.all(
    manifest.inputs.map(async (input) => {
      const file = join(root, input.path);
      try {
        const st = await stat(file);
        if (st.size !== input.size) return false;
        // A checkout or a `touch` moves the mtime without changing the content.
        return st.mtimeMs === input.mtimeMs || sha256(await readFile(file)) === input.sha256;
      } catch {
        return false;
      }
    }),
  );
  return same.every(Boolean);
}

async function touch(dir: string): Promise<void> {
  const now = new Date();
  await utimes(dir, now, now).catch(() => {});
}

/** Removes bundles nobody used for a week, and what builds that died left behind. */
async function prune(cacheDir: string): Promise<void> {
  const now = Date.now();
  for (const name of await readdir(cacheDir).catch(() => [] as string[])) {
    // Pointers (latest-*) stay; temporary folders and files are the names with a dot.
    const age = name.startsWith('worker-') ? UNUSED_MS : name.includes('.') ? ABANDONED_MS : 0;
    if (!age) continue;
    const path = join(cacheDir, name);
    const st = await stat(path).catch(() => undefined);
    if (st && now - st.mtimeMs > age) await rm(path, { recursive: true, force: true }).catch(() => {});
  }
}

/** Marks a bundle as in use, so that no process prunes it while workers run from it. */
export function touchWorkerBundle(bundle: WorkerBundle): void {
  void touch(bundle.dir);
}

/**
 * Where local mode keeps its bundles: a `.cache` folder in the node_modules
 * next to the package (its own in a checkout, the project's when installed),
 * or the user's cache folder when that is not writable (a global install). Never a shared
 * temporary folder, where another user could plant a bundle.
 */
export function defaultCacheDir(root: string = PACKAGE_ROOT, env: NodeJS.ProcessEnv = process.env): string {
  const nm = `${sep}node_modules${sep}`;
  const installed = root.lastIndexOf(nm);
  const modules = installed >= 0 ? root.slice(0, installed + nm.length - 1) : join(root, 'node_modules');
  try {
    accessSync(modules, constants.W_OK);
    return join(modules, '.cache', 'claude-fleet');
  } catch {
    return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'claude-fleet');
  }
}

interface Memo {
  promise: Promise<WorkerBundle>;
  bundle?: WorkerBundle;
}

let current: Memo | undefined;

/**
 * This process's bundle of the package's own sources: checked (and built if
 * need be) once, and again only if its folder went away.
 */
export function localWorkerBundle(): Promise<WorkerBundle> {
  if (current?.bundle && !existsSync(current.bundle.entry)) current = undefined;
  if (!current) {
    const entry: Memo = {
      promise: ensureWorkerBundle({ cacheDir: defaultCacheDir() }),
    };
    entry.promise.then(
      (b) => {
        entry.bundle = b;
      },
      // A failed build (a syntax error being fixed) is tried again by the next launch.
      () => {
        if (current === entry) current = undefined;
      },
    );
    current = entry;
  }
  return current.promise;
}
