/**
 * Where things live in the artifacts bucket: one prefix per root job, children
 * nested inside it (architecture page, "S3 layout"). The local mirror uses the
 * same relative paths under `<workspace>/job_<rootJobId>/`.
 */

export const JOBS_PREFIX = 'jobs/';

/**
 * `worker_3` for task 3 of the root job; `worker_2_1` for task 1 of the child
 * job that worker_2 created, `worker_2_1_3` one level deeper. `jobPath` is the
 * job's lineage (`''` for the root, `'2'`, `'2_1'`).
 */
export function workerId(taskNo: number, jobPath = ''): string {
  return jobPath ? `worker_${jobPath}_${taskNo}` : `worker_${taskNo}`;
}

/** The lineage of a child job created by task `taskNo` of a job with lineage `parentPath`. */
export function childJobPath(parentPath: string, taskNo: number): string {
  return parentPath ? `${parentPath}_${taskNo}` : String(taskNo);
}

export function jobPrefix(rootJobId: string): string {
  return `${JOBS_PREFIX}${rootJobId}/`;
}

export function depthPrefix(rootJobId: string, depth: number): string {
  return `${jobPrefix(rootJobId)}depth_${depth}/`;
}

/** Folder holding the files a worker created. */
export function workerFilesPrefix(rootJobId: string, depth: number, taskNo: number, jobPath = ''): string {
  return `${depthPrefix(rootJobId, depth)}${workerId(taskNo, jobPath)}/`;
}

export function workerLogKey(rootJobId: string, depth: number, taskNo: number, jobPath = ''): string {
  const who = taskNo === 0 ? (jobPath ? `planner_${jobPath}` : 'planner') : workerId(taskNo, jobPath);
  return `${jobPrefix(rootJobId)}logs/depth_${depth}_${who}.log`;
}

/** `depth_0/worker_2_recursive/CHILD.json`: the link from a worker to the child job it created. */
export function childLinkKey(rootJobId: string, depth: number, taskNo: number, jobPath = ''): string {
  return `${depthPrefix(rootJobId, depth)}${workerId(taskNo, jobPath)}_recursive/CHILD.json`;
}

export function levelReportKey(rootJobId: string, depth: number): string {
  return `${depthPrefix(rootJobId, depth)}LEVEL_${depth}_REPORT.md`;
}

export function finalReportKey(rootJobId: string): string {
  return `${jobPrefix(rootJobId)}FINAL_RESULT.md`;
}

export function resultJsonKey(rootJobId: string): string {
  return `${jobPrefix(rootJobId)}result.json`;
}

/**
 * A worker-supplied relative path, made safe to append to its own prefix:
 * forward slashes, no empty, `.` or `..` segments, no absolute paths.
 * Returns undefined when the path cannot be made safe.
 */
export function safeRelativePath(path: string): string | undefined {
  if (path.length === 0 || path.length > 512 || path.includes('\0')) return undefined;
  const segments = path.replaceAll('\\', '/').split('/');
  if (segments[0] === '') return undefined;
  if (segments.some((s) => s === '' || s === '.' || s === '..')) return undefined;
  return segments.join('/');
}
