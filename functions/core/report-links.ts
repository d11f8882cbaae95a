/**
 * Which stored objects a job's report links to. A report covers its job and
 * the jobs below it, nothing above or beside: a child job's report links the
 * files, logs and git artifacts of its own subtree only. A worker's files are
 * linked only as its attempt's result recorded them (same name, size and
 * ETag), so an object a worker wrote or changed after its attempt ended, with
 * a link that had not yet expired, is never served as its result.
 */
import {
  childLinkKey,
  jobPrefix,
  mergeBundleKey,
  mergePatchKey,
  snapshotBundleKey,
  workerBundleKey,
  workerFilesPrefix,
  workerLogKey,
  workerPatchKey,
} from './layout.ts';
import type { TreeNode } from './result-format.ts';

export interface StoredObject {
  key: string;
  size: number;
  etag?: string | undefined;
}

/** `<size>:<etag>`: what a stored object was when its attempt's result was recorded. */
export function fileVersion(o: { size: number; etag?: string | undefined }): string {
  return `${o.size}:${o.etag ?? ''}`;
}

/** `jobs/<root>/depth_<d>/worker_<lineage>_<n>/`: where a worker's own files go (layout.workerFilesPrefix). */
const WORKER_FILES = /^(jobs\/[^/]+\/depth_\d+\/worker_[0-9_]+\/)(.+)$/;

/**
 * The objects of `nodes` (a job and its descendants, the job first) that its
 * report may link, and how many of its workers' objects were held back
 * because no recorded result names them as they are now.
 */
export function reportObjects(
  nodes: readonly TreeNode[],
  objects: readonly StoredObject[],
): { linked: StoredObject[]; withheld: number } {
  const top = nodes[0]?.job;
  if (!top) return { linked: [], withheld: 0 };
  const root = top.rootJobId;
  /** Files prefix -> recorded path -> version ('' when the result predates versions). */
  const recorded = new Map<string, Map<string, string>>();
  const exact = new Set<string>();
  for (const { job, tasks } of nodes) {
    exact.add(mergeBundleKey(root, job.path));
    exact.add(mergePatchKey(root, job.path));
    if (job.source?.ownBundle) exact.add(job.source.ownBundle);
    for (const t of tasks) {
      const files = new Map<string, string>();
      const versions = t.result?.fileVersions;
      (t.result?.filesCreated ?? []).forEach((path, i) => {
        files.set(path, versions?.[i] ?? '');
      });
      recorded.set(workerFilesPrefix(root, t.depth, t.taskNo, t.jobPath), files);
      for (const key of [
        workerLogKey(root, t.depth, t.taskNo, t.jobPath),
        childLinkKey(root, t.depth, t.taskNo, t.jobPath),
        workerBundleKey(root, t.depth, t.taskNo, t.jobPath),
        workerPatchKey(root, t.depth, t.taskNo, t.jobPath),
        snapshotBundleKey(root, t.depth, t.taskNo, t.jobPath),
      ])
        exact.add(key);
    }
  }
  const wholeTree = top.depth === 0;
  const linked: StoredObject[] = [];
  let withheld = 0;
  for (const o of objects) {
    if (!o.key.startsWith(jobPrefix(root))) continue;
    const m = WORKER_FILES.exec(o.key);
    if (m) {
      const files = recorded.get(m[1] as string);
      if (!files) continue;
      const version = files.get(m[2] as string);
      if (version !== undefined && (version === '' || version === fileVersion(o))) linked.push(o);
      else withheld += 1;
    } else if (wholeTree || exact.has(o.key)) {
      linked.push(o);
    }
  }
  return { linked, withheld };
}
