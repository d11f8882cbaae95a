/**
 * Copies a job's S3 prefix to `<workspace>/job_<id>/`, the original tool's
 * on-disk layout; the repository's base bundle is left out.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Artifacts } from '../adapters/artifacts.ts';
import { baseBundleKey, jobPrefix, safeRelativePath } from '../core/layout.ts';

export async function mirrorJob(
  artifacts: Artifacts,
  rootJobId: string,
  workspaceRoot: string,
): Promise<{ dir: string; files: number }> {
  const prefix = jobPrefix(rootJobId);
  const dir = join(workspaceRoot, `job_${rootJobId}`);
  const objects = await artifacts.list(prefix);
  let files = 0;
  for (const object of objects) {
    // The base is the caller's own repository: a copy of it in the workspace helps nobody.
    if (object.key === baseBundleKey(rootJobId)) continue;
    const relative = safeRelativePath(object.key.slice(prefix.length));
    if (!relative) continue;
    const body = await artifacts.getBytes(object.key);
    if (body === undefined) continue;
    const target = join(dir, relative);
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, body);
    files += 1;
  }
  return { dir, files };
}
