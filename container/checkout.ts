/**
 * A worker's checkout of its job's base commit: the bundles are downloaded
 * through presigned links and fetched, in order, into a fresh repository in a
 * fresh directory. Nothing is shared between attempts, so a retry starts
 * again from the base commit.
 */
import { createWriteStream } from 'node:fs';
import { access, mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { git, runGit } from './git.ts';

/** Bundles are up to limits.max_source_mb: give a download and a fetch minutes, not seconds. */
const DOWNLOAD_TIMEOUT_MS = 15 * 60_000;
const FETCH_TIMEOUT_MS = 15 * 60_000;
/**
 * Write the files of a checkout with several processes: creating thousands of
 * small files is bound by the disk's latency more than by the CPU (measured
 * here: 10,000 files in 3.5 s with one, 1.1 s with four).
 */
export const PARALLEL_CHECKOUT = ['-c', 'checkout.workers=8'];
/** The branch a worker's checkout is on. */
export const WORK_BRANCH = 'fleet-work';

/** Downloads one presigned URL to a file, with a deadline and bounded retries. */
export async function download(url: string, file: string, attempts = 3): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  let last: unknown;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(DOWNLOAD_TIMEOUT_MS) });
      if (!response.ok || !response.body) {
        last = new Error(`download refused with ${response.status}`);
        if (response.status < 500 && response.status !== 429) break;
      } else {
        await pipeline(
          Readable.fromWeb(response.body as import('node:stream/web').ReadableStream),
          createWriteStream(file),
        );
        return;
      }
    } catch (err) {
      last = err;
    }
    if (attempt < attempts) await new Promise((r) => setTimeout(r, 500 * 2 ** (attempt - 1)));
  }
  throw new Error(`could not download a repository bundle: ${(last as Error)?.message ?? last}`);
}

/**
 * Fetches every ref a bundle holds into `refs/fleet-in/<n>/…`, so its objects
 * are in the repository whatever its refs are called (HEAD included).
 */
export async function fetchBundle(repo: string, file: string, n: number, checked = false): Promise<void> {
  const heads = await git(['bundle', 'list-heads', file], { cwd: repo, timeoutMs: 60_000 });
  const refspecs = heads
    .split('\n')
    .map((line) => line.trim().split(' ')[1])
    .filter((ref): ref is string => Boolean(ref))
    .map((ref, i) => `+${ref}:refs/fleet-in/${n}/${i}`);
  if (refspecs.length === 0) throw new Error('a repository bundle names no refs');
  // `checked`: another worker wrote this bundle, so git checks every object it brings (fsck).
  const fsck = checked ? ['-c', 'transfer.fsckObjects=true'] : [];
  await runGit([...fsck, 'fetch', '--no-tags', '--quiet', '--no-write-fetch-head', file, ...refspecs], {
    cwd: repo,
    timeoutMs: FETCH_TIMEOUT_MS,
  });
}

export interface CheckoutTimings {
  downloadMs: number;
  fetchMs: number;
  checkoutMs: number;
  /** The objects came from the machine's shared store (local mode) instead of this attempt's own fetch. */
  shared: boolean;
}

export interface CheckoutOptions {
  /** No working tree: a bare repository (push) . */
  bare?: boolean | undefined;
  /** Fetch the objects but check nothing out yet (the merge step works without files until a conflict). */
  checkout?: boolean | undefined;
  /**
   * Local mode: a folder where repositories of base commits are built once
   * per machine and then borrowed read-only (git alternates), so five
   * workers on one laptop do not each unpack the same 100 MB. Workers in
   * separate containers have none and fetch their own.
   */
  sharedObjects?: string | undefined;
}

/**
 * Builds a repository in `dir` holding every bundle's objects and checks out
 * `baseCommit` on a branch of its own. `downloads` is a scratch folder.
 */
export async function checkoutBase(
  dir: string,
  downloads: string,
  bundles: readonly { url: string }[],
  baseCommit: string,
  options: CheckoutOptions = {},
): Promise<CheckoutTimings> {
  await mkdir(dir, { recursive: true });
  await git(['init', '--quiet', ...(options.bare ? ['--bare'] : []), '.'], { cwd: dir });
  let timings: Omit<CheckoutTimings, 'checkoutMs'>;
  if (options.sharedObjects) {
    const t = Date.now();
    const store = await sharedRepository(options.sharedObjects, downloads, bundles, baseCommit);
    const objects = options.bare ? join(dir, 'objects') : join(dir, '.git', 'objects');
    await writeFile(join(objects, 'info', 'alternates'), `${join(store, 'objects')}\n`);
    timings = { downloadMs: 0, fetchMs: Date.now() - t, shared: true };
  } else {
    timings = { ...(await fetchInto(dir, downloads, bundles)), shared: false };
  }
  await git(['cat-file', '-e', `${baseCommit}^{commit}`], { cwd: dir }).catch(() => {
    throw new Error(`the repository bundles do not hold the base commit ${baseCommit}`);
  });
  const t = Date.now();
  if (!options.bare && options.checkout !== false) {
    await git([...PARALLEL_CHECKOUT, 'checkout', '--quiet', '-B', WORK_BRANCH, baseCommit], {
      cwd: dir,
      timeoutMs: FETCH_TIMEOUT_MS,
    });
  }
  return { ...timings, checkoutMs: Date.now() - t };
}

/** Downloads the bundles and fetches them, in order (each one's prerequisites are in the ones before it). */
async function fetchInto(
  repo: string,
  downloads: string,
  bundles: readonly { url: string }[],
): Promise<{ downloadMs: number; fetchMs: number }> {
  await mkdir(downloads, { recursive: true });
  let t = Date.now();
  const files = await Promise.all(
    bundles.map(async (b, i) => {
      const file = join(downloads, `${i}.bundle`);
      await download(b.url, file);
      return file;
    }),
  );
  const downloadMs = Date.now() - t;
  t = Date.now();
  // The first bundle is the caller's base; the ones after it were written by workers.
  for (const [i, file] of files.entries()) await fetchBundle(repo, file, i, i > 0);
  return { downloadMs, fetchMs: Date.now() - t };
}

/** How long a worker waits for another to finish building a shared repository before building its own. */
const SHARED_BUILD_WAIT_MS = 10 * 60_000;

/**
 * The shared repository holding `baseCommit`: built by the first worker that
 * needs it (a lock directory makes that one at a time), ready once its
 * marker exists. A builder that died leaves a stale lock, taken over after
 * the wait.
 */
async function sharedRepository(
  root: string,
  downloads: string,
  bundles: readonly { url: string }[],
  baseCommit: string,
): Promise<string> {
  await mkdir(root, { recursive: true });
  const repo = join(root, `${baseCommit}.git`);
  const ready = join(repo, 'fleet-ready');
  const lock = `${repo}.lock`;
  const deadline = Date.now() + SHARED_BUILD_WAIT_MS;
  for (;;) {
    if (await exists(ready)) return repo;
    const locked = await mkdir(lock).then(
      () => true,
      () => false,
    );
    if (locked || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  try {
    if (await exists(ready)) return repo;
    const building = await mkdtemp(`${repo}.building-`);
    await git(['init', '--quiet', '--bare', '.'], { cwd: building });
    await fetchInto(building, downloads, bundles);
    await rm(repo, { recursive: true, force: true });
    await rename(building, repo);
    await writeFile(ready, `${baseCommit}\n`);
    return repo;
  } finally {
    await rm(lock, { recursive: true, force: true });
  }
}

function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}
