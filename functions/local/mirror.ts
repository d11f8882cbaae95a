/**
 * Copies a job's S3 prefix to `<workspace>/job_<id>/`, the original tool's
 * on-disk layout; the repository's base bundle is left out.
 *
 * Object names come from workers, so the copy trusts none of them: a name
 * that cannot be a path, or that collides with another (`a` and `a/b`), is
 * skipped with the reason and the rest is still copied. Nothing is written
 * through a symbolic link: every folder on the way is checked with lstat and
 * must resolve inside the job's folder, and each file is created anew with
 * O_EXCL and O_NOFOLLOW (an existing one is removed first, since it may be a
 * hard link to a file elsewhere).
 */
import { constants } from 'node:fs';
import { lstat, mkdir, open, realpath, unlink } from 'node:fs/promises';
import { join, sep } from 'node:path';
import type { Artifacts } from '../adapters/artifacts.ts';
import { baseBundleKey, jobPrefix, safeRelativePath } from '../core/layout.ts';

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
}

// A new file every time (O_EXCL), never through a link (O_NOFOLLOW; absent on Windows, where the folder checks still apply).
const CREATE_NEW = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0);

class Skip extends Error {}

export async function mirrorJob(
  artifacts: Pick<Artifacts, 'list' | 'getBytes'>,
  rootJobId: string,
  workspaceRoot: string,
): Promise<MirrorResult> {
  const prefix = jobPrefix(rootJobId);
  const dir = join(workspaceRoot, `job_${rootJobId}`);
  await mkdir(workspaceRoot, { recursive: true });
  const skipped: SkippedFile[] = [];
  const top = await lstat(dir).catch(() => undefined);
  if (top?.isSymbolicLink()) {
    // A link where the job's folder goes would send every file elsewhere.
    return {
      dir,
      files: 0,
      skipped: [{ path: '.', reason: `${dir} is a symbolic link; nothing was copied` }],
    };
  }
  if (!top) await mkdir(dir);
  const root = await realpath(dir);

  const objects = await artifacts.list(prefix);
  let files = 0;
  for (const object of objects) {
    // The base is the caller's own repository: a copy of it in the workspace helps nobody.
    if (object.key === baseBundleKey(rootJobId)) continue;
    const name = object.key.slice(prefix.length);
    const relative = safeRelativePath(name);
    if (!relative) {
      skipped.push({ path: name, reason: 'not a safe relative path' });
      continue;
    }
    try {
      const target = await placeFor(root, relative);
      const body = await artifacts.getBytes(object.key);
      if (body === undefined) continue;
      await writeNoFollow(target, body);
      files += 1;
    } catch (err) {
      const reason =
        err instanceof Skip
          ? err.message
          : `${(err as NodeJS.ErrnoException).code ?? 'error'}: ${(err as Error).message}`;
      skipped.push({ path: relative, reason });
    }
  }
  return { dir, files, skipped };
}

/**
 * The path to write `relative` at, below `root`, making its folders one at a
 * time; throws Skip when a folder on the way is a link or a file, or the place
 * is taken by a folder or a link.
 */
async function placeFor(root: string, relative: string): Promise<string> {
  const segments = relative.split('/');
  const leaf = segments.pop() as string;
  let current = root;
  let shown = '';
  for (const segment of segments) {
    current = join(current, segment);
    shown = shown ? `${shown}/${segment}` : segment;
    const st = await lstat(current).catch(() => undefined);
    if (!st) {
      await mkdir(current).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw err;
      });
      const made = await lstat(current);
      if (!made.isDirectory()) throw new Skip(`${shown} was replaced by something that is not a folder`);
    } else if (st.isSymbolicLink()) {
      throw new Skip(`${shown} is a symbolic link, which is not followed`);
    } else if (!st.isDirectory()) {
      throw new Skip(`${shown} is a file of this job, so it cannot also be a folder`);
    }
  }
  // Belt and braces against a link swapped in after the checks: the folder must still be inside the job's.
  const parent = await realpath(current);
  if (parent !== root && !parent.startsWith(`${root}${sep}`))
    throw new Skip(`${shown || '.'} resolves outside the job's folder`);
  const target = join(parent, leaf);
  const st = await lstat(target).catch(() => undefined);
  if (st?.isSymbolicLink()) throw new Skip(`${relative} is a symbolic link, which is not followed`);
  if (st?.isDirectory()) throw new Skip(`${relative} is a folder of this job, so it cannot also be a file`);
  // An existing file is replaced, not written into: it may be a hard link to a file elsewhere.
  if (st) await unlink(target);
  return target;
}

async function writeNoFollow(target: string, body: Uint8Array): Promise<void> {
  const handle = await open(target, CREATE_NEW, 0o644);
  try {
    await handle.writeFile(body);
  } finally {
    await handle.close();
  }
}
