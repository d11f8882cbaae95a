/** The files a session left in its workspace: everything it created, minus VCS internals. */
import { readdir } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';

const SKIP_DIRS = new Set(['.git', '.claude']);

/** Relative paths with forward slashes, sorted; stops after `limit` files. */
export async function listWorkspaceFiles(
  root: string,
  limit: number,
): Promise<{ files: string[]; truncated: boolean }> {
  const files: string[] = [];
  const pending = [root];
  while (pending.length > 0) {
    const dir = pending.pop() as string;
    const entries = await readdir(dir, { withFileTypes: true });
    for (const entry of entries) {
      const full = join(dir, entry.name);
      if (entry.isDirectory()) {
        if (!SKIP_DIRS.has(entry.name)) pending.push(full);
      } else if (entry.isFile()) {
        if (files.length >= limit) return { files: files.sort(), truncated: true };
        files.push(relative(root, full).split(sep).join('/'));
      }
    }
  }
  return { files: files.sort(), truncated: false };
}
