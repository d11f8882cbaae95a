/**
 * A worker's checkout of its job's base commit: the bundles are downloaded
 * through presigned links and fetched, in order, into a fresh repository in a
 * fresh directory. Nothing is shared between attempts, so a retry starts
 * again from the base commit.
 */
import { createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { git, runGit } from './git.ts';

/** Bundles are up to limits.max_source_mb: give a download and a fetch minutes, not seconds. */
const DOWNLOAD_TIMEOUT_MS = 15 * 60_000;
const FETCH_TIMEOUT_MS = 15 * 60_000;
/** The branch a worker's checkout is on. */
export const WORK_BRANCH = 'fleet-work';

/** Downloads one presigned URL to a file, with a deadline and bounded retries. */
export async function download(url: string, file: string, attempts = 3): Promise<void> {
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
export async function fetchBundle(repo: string, file: string, n: number): Promise<void> {
  const heads = await git(['bundle', 'list-heads', file], { cwd: repo, timeoutMs: 60_000 });
  const refspecs = heads
    .split('\n')
    .map((line) => line.trim().split(' ')[1])
    .filter((ref): ref is string => Boolean(ref))
    .map((ref, i) => `+${ref}:refs/fleet-in/${n}/${i}`);
  if (refspecs.length === 0) throw new Error('a repository bundle names no refs');
  await runGit(['fetch', '--no-tags', '--quiet', '--no-write-fetch-head', file, ...refspecs], {
    cwd: repo,
    timeoutMs: FETCH_TIMEOUT_MS,
  });
}

export interface CheckoutTimings {
  downloadMs: number;
  fetchMs: number;
  checkoutMs: number;
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
  options: { bare?: boolean } = {},
): Promise<CheckoutTimings> {
  await mkdir(downloads, { recursive: true });
  await mkdir(dir, { recursive: true });
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
  await git(['init', '--quiet', ...(options.bare ? ['--bare'] : []), '.'], { cwd: dir });
  // In order: each bundle's prerequisites are in the ones before it.
  for (const [i, file] of files.entries()) await fetchBundle(dir, file, i);
  await git(['cat-file', '-e', `${baseCommit}^{commit}`], { cwd: dir }).catch(() => {
    throw new Error(`the repository bundles do not hold the base commit ${baseCommit}`);
  });
  const fetchMs = Date.now() - t;
  t = Date.now();
  if (!options.bare) {
    await git(['checkout', '--quiet', '-B', WORK_BRANCH, baseCommit], {
      cwd: dir,
      timeoutMs: FETCH_TIMEOUT_MS,
    });
  }
  return { downloadMs, fetchMs, checkoutMs: Date.now() - t };
}
