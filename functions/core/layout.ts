/**
 * Where things live in the artifacts bucket: one prefix per root job, children
 * nested inside it (architecture page, "S3 layout"). The local mirror uses the
 * same relative paths under `<workspace>/job_<rootJobId>/`.
 */

export const JOBS_PREFIX = 'jobs/';
/** Bundles callers upload before they submit (`POST /sources`); copied under the job at submit. */
export const SOURCES_PREFIX = 'sources/';

/**
 * Task numbers of a job's steps around its workers: the planner is task 0,
 * work tasks are 1..max_workers (at most 100), and the repository steps take
 * fixed numbers above them so they share the task machinery (claims, tokens,
 * retries, the sweep) without a second kind of item.
 */
export const STEP_TASK_NO = { source: 9001, merge: 9002, push: 9003 } as const;

/** `planner`, `source`, `merge`, `push` or the worker id of a task, for logs and reports. */
export function stepName(taskNo: number, jobPath = ''): string {
  const suffix = jobPath ? `_${jobPath}` : '';
  if (taskNo === 0) return `planner${suffix}`;
  for (const [name, no] of Object.entries(STEP_TASK_NO)) if (no === taskNo) return `${name}${suffix}`;
  return workerId(taskNo, jobPath);
}

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

/**
 * The log of one attempt of a task: `logs/depth_0_worker_2.log` for the first,
 * `logs/depth_0_worker_2.attempt-2.log` for the second, so a retry never
 * overwrites the log that shows why the attempt before it failed.
 */
export function workerLogKey(
  rootJobId: string,
  depth: number,
  taskNo: number,
  jobPath = '',
  attempt = 1,
): string {
  const suffix = attempt > 1 ? `.attempt-${attempt}` : '';
  return `${jobPrefix(rootJobId)}logs/depth_${depth}_${stepName(taskNo, jobPath)}${suffix}.log`;
}

/** Everything git of a root job's tree lives under `jobs/<root>/git/`. */
export function gitPrefix(rootJobId: string): string {
  return `${jobPrefix(rootJobId)}git/`;
}

/** The root's base: the caller's uploaded bundle, or what the source step fetched. */
export function baseBundleKey(rootJobId: string): string {
  return `${gitPrefix(rootJobId)}base.bundle`;
}

/** A worker's commit as a bundle holding only what is new on top of its job's base, and its diff. */
export function workerBundleKey(rootJobId: string, depth: number, taskNo: number, jobPath = ''): string {
  return `${gitPrefix(rootJobId)}depth_${depth}/${workerId(taskNo, jobPath)}.bundle`;
}

export function workerPatchKey(rootJobId: string, depth: number, taskNo: number, jobPath = ''): string {
  return `${gitPrefix(rootJobId)}depth_${depth}/${workerId(taskNo, jobPath)}.patch`;
}

/** A worker's checkout when it handed its subtask to a child job: the child's base. */
export function snapshotBundleKey(rootJobId: string, depth: number, taskNo: number, jobPath = ''): string {
  return `${gitPrefix(rootJobId)}depth_${depth}/${workerId(taskNo, jobPath)}_snapshot.bundle`;
}

/** The merged branch of a job (`result.bundle`, base..head) and its unified diff. */
export function mergeBundleKey(rootJobId: string, jobPath = ''): string {
  return `${gitPrefix(rootJobId)}${jobPath ? `job_${jobPath}/` : ''}result.bundle`;
}

export function mergePatchKey(rootJobId: string, jobPath = ''): string {
  return `${gitPrefix(rootJobId)}${jobPath ? `job_${jobPath}/` : ''}changes.patch`;
}

/** The branch a job's merged work lands on. */
export function resultBranch(jobId: string): string {
  return `fleet/${jobId}`;
}

/** Where a caller's upload waits until a job takes it: the tenant is part of the key, so ids do not cross tenants. */
export function sourceUploadKey(tenantDigest: string, bundleId: string): string {
  return `${SOURCES_PREFIX}${tenantDigest}/${bundleId}.bundle`;
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

/** The self-contained HTML report, beside FINAL_RESULT.md so its relative links reach the logs and files. */
export function reportHtmlKey(rootJobId: string): string {
  return `${jobPrefix(rootJobId)}REPORT.html`;
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
