/**
 * Where things live in the artifacts bucket: one prefix per root job, children
 * nested inside it (architecture page, "S3 layout"). The local mirror uses the
 * same relative paths under `<workspace>/job_<rootJobId>/`.
 */

export const JOBS_PREFIX = 'jobs/';

/** `worker_3` at depth 0; issue 4 extends this to `worker_2_1` for children. */
export function workerId(taskNo: number): string {
  return `worker_${taskNo}`;
}

export function jobPrefix(rootJobId: string): string {
  return `${JOBS_PREFIX}${rootJobId}/`;
}

export function depthPrefix(rootJobId: string, depth: number): string {
  return `${jobPrefix(rootJobId)}depth_${depth}/`;
}

/** Folder holding the files a worker created. */
export function workerFilesPrefix(rootJobId: string, depth: number, taskNo: number): string {
  return `${depthPrefix(rootJobId, depth)}${workerId(taskNo)}/`;
}

export function workerLogKey(rootJobId: string, depth: number, taskNo: number): string {
  return `${jobPrefix(rootJobId)}logs/depth_${depth}_${taskNo === 0 ? 'planner' : workerId(taskNo)}.log`;
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
