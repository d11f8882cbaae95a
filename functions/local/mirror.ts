/**
 * Copies a job's S3 prefix to `<workspace>/job_<id>/`, the original tool's
 * on-disk layout; the repository's base bundle is left out.
 *
 * Object names come from workers, and a local worker can write into the
 * workspace before the copy, so the copy trusts neither. A name that cannot
 * be a path, or that collides with another (`a` and `a/b`), is skipped with
 * the reason and the rest is still copied. Nothing is written through a
 * symbolic link: a link found where the job's folder, a folder or a file goes
 * is removed (its target is never touched) and the real thing made in its
 * place; every folder must resolve inside the job's folder; each file is
 * created anew with O_EXCL and O_NOFOLLOW, an existing one removed first
 * since it may be a hard link to a file elsewhere.
 */
import { constants } from 'node:fs';
import { lstat, mkdir, open, realpath, unlink } from 'node:fs/promises';
import { join, sep } from 'node:path';
import type { Artifacts } from '../adapters/artifacts.ts';
import { baseBundleKey, jobPrefix, safeRelativePath } from '../core/layout.ts';
import { reportObjects } from '../core/report-links.ts';
import type { TreeNode } from '../core/result-format.ts';

/** An object that was not copied, and why. */
export interface SkippedFile {
  /** The object's name under the job's prefix. */
  path: string;
  reason: string;
}

export interface MirrorResult {
  dir: string;
  /** Files copied. */
  files: number;
  skipped: SkippedFile[];
  /** Symbolic links found in the job's folder and removed, relative to it (`.` for the folder itself). */
  removedLinks: string[];
}

// O_NOFOLLOW is absent on Windows, where the folder checks still apply.
const CREATE_NEW = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0);

class Skip extends Error {}

export async function mirrorJob(
  artifacts: Pick<Artifacts, 'list' | 'getBytes'>,
  rootJobId: string,
  workspaceRoot: string,
  /** The job tree: when given, a worker file is copied only as its attempt's result recorded it. */
  tree?: readonly TreeNode[],
): Promise<MirrorResult> {
  const prefix = jobPrefix(rootJobId);
  const dir = join(workspaceRoot, `job_${rootJobId}`);
  await mkdir(workspaceRoot, { recursive: true });
  const removedLinks: string[] = [];
  try {
    await ensureFolder(dir, '.', removedLinks);
  } catch (err) {
    if (!(err instanceof Skip)) throw err;
    return { dir, files: 0, skipped: [{ path: '.', reason: `${dir}: ${err.message}` }], removedLinks };
  }
  const root = await realpath(dir);

  const skipped: SkippedFile[] = [];
  let files = 0;
  const objects = await artifacts.list(prefix);
  // A link may outlive its attempt: what a worker wrote or changed after its result is not its result.
  const recorded = tree ? new Set(reportObjects(tree, objects).linked.map((o) => o.key)) : undefined;
  for (const object of objects) {
    // The base is the caller's own repository: a copy of it in the workspace helps nobody.
    if (object.key === baseBundleKey(rootJobId)) continue;
    const name = object.key.slice(prefix.length);
    if (recorded && !recorded.has(object.key)) {
      skipped.push({
        path: name,
        reason: 'not as its worker recorded it (written or changed after the result)',
      });
      continue;
    }
    const relative = safeRelativePath(name);
    if (!relative) {
      skipped.push({ path: name, reason: 'not a safe relative path' });
      continue;
    }
    try {
      const target = await placeFor(root, relative, removedLinks);
      const body = await artifacts.getBytes(object.key);
      if (body === undefined) continue;
      await writeNew(target, body);
      files += 1;
    } catch (err) {
      const reason =
        err instanceof Skip
          ? err.message
          : `${(err as NodeJS.ErrnoException).code ?? 'error'}: ${(err as Error).message}`;
      skipped.push({ path: relative, reason });
    }
  }
  return { dir, files, skipped, removedLinks };
}

/** Makes `path` a real folder: a link there is removed first; a file there is a Skip. */
async function ensureFolder(path: string, shown: string, removedLinks: string[]): Promise<void> {
  const st = await lstat(path).catch(() => undefined);
  if (st?.isDirectory()) return;
  if (st?.isSymbolicLink()) {
    await unlink(path);
    removedLinks.push(shown);
  } else if (st) {
    throw new Skip(
      shown === '.'
        ? 'a file is where the folder goes'
        : `${shown} is a file of this job, so it cannot also be a folder`,
    );
  }
  await mkdir(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
  });
  if (!(await lstat(path)).isDirectory()) throw new Skip(`${shown} was replaced while it was being made`);
}

/** Where to write `relative` below `root`, its folders made one at a time. */
async function placeFor(root: string, relative: string, removedLinks: string[]): Promise<string> {
  const segments = relative.split('/');
  const leaf = segments.pop() as string;
  let current = root;
  let shown = '';
  for (const segment of segments) {
    current = join(current, segment);
    shown = shown ? `${shown}/${segment}` : segment;
    await ensureFolder(current, shown, removedLinks);
  }
  // Against a link swapped in after the checks: the folder must still be inside the job's.
  const parent = await realpath(current);
  if (parent !== root && !parent.startsWith(`${root}${sep}`))
    throw new Skip(`${shown} resolves outside the job's folder`);
  const target = join(parent, leaf);
  const st = await lstat(target).catch(() => undefined);
  if (st?.isDirectory()) throw new Skip(`${relative} is a folder of this job, so it cannot also be a file`);
  if (st) {
    await unlink(target);
    if (st.isSymbolicLink()) removedLinks.push(relative);
  }
  return target;
}

async function writeNew(target: string, body: Uint8Array): Promise<void> {
  const handle = await open(target, CREATE_NEW, 0o644);
  try {
    await handle.writeFile(body);
  } finally {
    await handle.close();
  }
}
