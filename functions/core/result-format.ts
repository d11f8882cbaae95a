/**
 * Turns the store's job and task records into the public result object
 * (`result.json`, `GET /jobs/{id}/result`), in the original tool's snake_case.
 * Pure: the caller passes the bucket and the current time.
 *
 * Counting rules: a task's attempts made, cost and duration are
 * accounting.ts's, one rule for result.json, the reports and the logs. Here:
 * - **Turns**: attempt records carry no turn count, so `num_turns` is the latest
 *   report's.
 * - **Summary**: work tasks only (the planner, task 0, is reported under
 *   `planning`); `succeeded` counts `succeeded` and `recursive_success`;
 *   `running` counts every non-terminal state.
 * - **Total cost** (`cost`): every session of every job of the tree: the
 *   work tasks (their decide runs included), every planner and every step
 *   (the merge step's conflict sessions, the source and push steps). The
 *   `summary` and `planning` costs are parts of it, never added to it again.
 * - **Trees**: a job tree (the root and its child jobs, see `buildTreeResult`)
 *   lists every work task of every job. A task that handed off to a child job
 *   counts once (its own attempts, e.g. the decision to decompose) and the
 *   child's tasks count too; `child_results` is shown but never added, so no
 *   cost is counted twice. `planning` sums every planner of the tree.
 */
import {
  attemptsMade,
  recordOfCurrentAttempt,
  reportedCostUsd,
  roundUsd,
  tasksCostUsd,
  taskUsage,
} from './accounting.ts';
import {
  finalReportKey,
  mergeBundleKey,
  mergePatchKey,
  resultJsonKey,
  workerFilesPrefix,
  workerId,
  workerLogKey,
} from './layout.ts';
import { commitsToMerge, findStep, mergeResultOf, pushWanted } from './merge-plan.ts';
import type { AttemptRecord, FileChanges, JobRecord, TaskRecord } from './model.ts';
import { buildPerformance, type PerformanceView } from './performance.ts';
import {
  isSuccessfulTaskState,
  isTerminalJobStatus,
  isTerminalTaskState,
  type JobStatus,
  TASK_STATES,
  type TaskState,
} from './task-states.ts';

export interface ResultContext {
  /** The artifacts bucket, for `s3://` links. */
  bucket: string;
  /** Current time (ISO 8601), for the wall time of a job still running. */
  now: string;
  /** Where the caller can browse the files, e.g. `s3://bucket/jobs/<root>/` or a local directory. */
  workspace?: string | undefined;
}

export interface AttemptView {
  attempt: number;
  status: TaskState;
  error?: string;
  exit_code?: number;
  duration_ms?: number;
  cost_usd?: number;
  /** With the model gateway, `cost_usd` is metered; this is what the worker reported (comparison only). */
  reported_cost_usd?: number;
  launched_at?: string;
  started_at?: string;
  finished_at: string;
  num_turns?: number;
  /** Tokens of the attempt's Claude sessions, as the CLI reported them. */
  usage?: {
    input_tokens: number;
    output_tokens: number;
    cache_read_input_tokens: number;
    cache_creation_input_tokens: number;
  };
  peak_memory_mb?: number;
  /** The attempt's own log (see layout.workerLogKey); absent in results written before attempts had their own. */
  log_key?: string;
}

export interface ChildResultsView {
  status: JobStatus;
  total: number;
  succeeded: number;
  failed: number;
  cost_usd: number;
}

export interface TaskResultView {
  worker_id: string;
  /** The job this task belongs to (the root's or a descendant's). */
  job_id: string;
  task_no: number;
  title: string;
  prompt: string;
  /** The task state. */
  status: TaskState;
  depth: number;
  /** Number of attempts made (see the module comment). */
  attempts: number;
  output: string;
  output_truncated: boolean;
  /** Paths relative to the worker's folder (`files_prefix`), as stored when the result was recorded. */
  files_created: string[];
  /** Names the API refused to sign for the worker's uploads, each with why (at most 20 kept). */
  refused_files?: { path: string; reason: string }[];
  /** How many names were refused in all, when more than `refused_files` holds. */
  refused_count?: number;
  /** S3 key prefix of the worker's files. */
  files_prefix: string;
  /** The log of the latest attempt; each attempt's own is in `attempt_history` and `performance.timeline`. */
  log_key: string;
  duration_ms: number;
  num_turns: number;
  cost_usd: number;
  /** With the model gateway, `cost_usd` is metered; this sums what the worker reported (comparison only). */
  reported_cost_usd?: number;
  /** Failure reason of the final attempt, for failed, timed-out and cancelled tasks. */
  error?: string;
  attempt_history: AttemptView[];
  started_at?: string;
  finished_at?: string;
  /** True when the task handed its subtask to a child job (waiting_on_child, recursive_success, or failed with it). */
  recursive: boolean;
  /** The child job this task handed off to, or else the first child job it spawned in `wait` mode. */
  child_job_id?: string;
  /** What the task learned from its child job when that job ended. */
  child_results?: ChildResultsView;
  /** For tasks of child jobs: the worker whose task created this task's job. */
  parent_worker_id?: string;
  /** Repository jobs: the worker's commit (for a hand-off, its child job's merged branch). */
  commit?: string;
  /** Repository jobs: the files the worker's commit added, modified and deleted. */
  files_changed?: FileChanges;
  insertions?: number;
  deletions?: number;
  /** Files left out of the commit, with why. */
  excluded_files?: { path: string; reason: string }[];
}

/** A repository step of a job: fetching the remote, merging, pushing. */
export interface StepView {
  kind: 'source' | 'merge' | 'push';
  status: TaskState;
  attempts: number;
  cost_usd: number;
  error?: string;
}

/** What a repository job did in git. */
export interface GitView {
  source: { kind: 'git' | 'bundle' | 'parent'; url?: string; ref?: string };
  /** Null while a git URL is still being fetched. */
  base_commit: string | null;
  /**
   * `fetching`, `working` (workers running), `merging`, `pushing`, `merged`
   * (the branch exists), `unchanged` (no worker changed anything), `failed`.
   */
  state: 'fetching' | 'working' | 'merging' | 'pushing' | 'merged' | 'unchanged' | 'failed';
  /** `fleet/<job_id>` once merged; null when there is no branch. */
  branch: string | null;
  head_commit: string | null;
  merged: {
    worker_id: string;
    commit: string;
    outcome: 'merged' | 'resolved' | 'left_out';
    insertions: number;
    deletions: number;
    files_changed: number;
  }[];
  conflicts: {
    workers: string[];
    files: string[];
    hunks: string[];
    resolution: 'resolved' | 'left_out';
    reason?: string;
  }[];
  insertions: number;
  deletions: number;
  files_changed: number;
  /** `s3://` of the unified diff and of the branch bundle (base..head), when merged. */
  patch: string | null;
  bundle: string | null;
  /** The remote ref the branch was pushed to, when pushed. */
  pushed_to?: string;
  /** Why there is no branch, or what went wrong, in words. */
  note?: string;
}

/** Counts and sums over a set of work tasks. */
export interface TaskSummary {
  total: number;
  succeeded: number;
  failed: number;
  timed_out: number;
  cancelled: number;
  /** Every task not in a terminal state (queued, launching, running, waiting_on_child). */
  running: number;
  total_cost_usd: number;
  total_turns: number;
  total_duration_ms: number;
}

/** The summary of the whole result: every work task of every job of the tree. */
export interface ResultSummary extends TaskSummary {
  /** Number of levels (distinct depths) of the tree; 1 for a job without children. */
  depths: number;
  /** Number of jobs in the tree, the root included. */
  jobs: number;
}

/** What the whole tree spent, in dollars; `total_usd` is the sum of the three parts. */
export interface CostView {
  total_usd: number;
  /** Work tasks of every job (`results.summary.total_cost_usd`). */
  workers_usd: number;
  /** Every planner of the tree (`planning.cost_usd`). */
  planning_usd: number;
  /** Every step of every job: merging (with its conflict sessions), fetching, pushing. */
  steps_usd: number;
}

export interface PlanningView {
  status: TaskState;
  attempts: number;
  cost_usd: number;
  error?: string;
}

/** One job of the tree, with counts over its own work tasks (not its descendants'). */
export interface TreeJobView {
  job_id: string;
  status: JobStatus;
  depth: number;
  /** Lineage: `''` for the root, `'2'` for the child of root worker_2, `'2_1'` below it. */
  path: string;
  parent_job_id?: string;
  parent_task_no?: number;
  /** The worker whose task created this job. */
  parent_worker_id?: string;
  child_mode?: 'handoff' | 'wait';
  request: string;
  created_at: string;
  finished_at?: string;
  error?: string;
  /** This job's own work tasks. */
  summary: TaskSummary;
  /** This job's planner, when it had one. */
  planning?: PlanningView;
}

export interface JobResult {
  job_id: string;
  status: JobStatus;
  request: string;
  depth: number;
  root_job_id: string;
  parent_job_id?: string;
  created_at: string;
  finished_at?: string;
  /** finishedAt - createdAt, or now - createdAt while the job runs. */
  wall_time_ms?: number;
  config: {
    max_workers: number;
    default_timeout: number;
    max_retries: number;
    enable_recursion: boolean;
    max_recursion_depth: number;
    max_budget_usd: number;
    model?: string;
  };
  /** Every work task of every job of the tree, depth-first by lineage (worker_2, worker_2_1, worker_2_2, worker_3). */
  results: { tasks: TaskResultView[]; summary: ResultSummary };
  /** Every job of the tree, depth-first, the root first. */
  jobs: TreeJobView[];
  /**
   * Present when some job of the tree had a planner: cost and attempts summed
   * over every planner, status and error of the root's planner (or, if the
   * caller gave the root's tasks, of the first child planner).
   */
  planning?: PlanningView;
  /** Every session of the tree: the one total that the summary, the reports and `run` print. */
  cost: CostView;
  error?: string;
  /** Repository jobs: the base, the merged branch, what each worker's commit did and every conflict. */
  git?: GitView;
  /** Repository jobs: the steps around the workers (fetch, merge, push). */
  steps?: StepView[];
  /**
   * Timeline of every attempt, parallel efficiency, critical path and bottleneck, resources, cost by
   * depth. Always built; absent only from result.json files written before it existed.
   */
  performance?: PerformanceView;
  workspace?: string;
  /** `s3://bucket/<finalReportKey>` */
  final_report: string;
  /** `s3://bucket/<resultJsonKey>` */
  result_json: string;
}

/** One job of a tree and its tasks (the planner may be included). */
export interface TreeNode {
  job: JobRecord;
  tasks: TaskRecord[];
}

const FAILED_STATES: ReadonlySet<TaskState> = new Set(['failed', 'timed_out', 'cancelled']);

/**
 * Builds the public result of a job tree: `tree[0]` is the root, the rest are
 * its descendants in any order. Tasks are listed depth-first by lineage; jobs
 * whose parent is missing from `tree` follow, by depth and lineage.
 */
export function buildTreeResult(tree: TreeNode[], ctx: ResultContext): JobResult {
  const rootNode = tree[0];
  if (rootNode === undefined) throw new Error('buildTreeResult needs at least the root job');
  const job = rootNode.job;
  const { jobs, views, steps } = walkTree(tree);
  const wallTime = wallTimeMs(job, ctx.now);
  const planning = treePlanning(jobs);
  const summary = summarizeTasks(views);
  const cost = costView(summary.total_cost_usd, planning?.cost_usd ?? 0, steps);

  const result: JobResult = {
    job_id: job.jobId,
    status: job.status,
    request: job.request,
    depth: job.depth,
    root_job_id: job.rootJobId,
    ...(job.parentJobId !== undefined && { parent_job_id: job.parentJobId }),
    created_at: job.createdAt,
    ...(job.finishedAt !== undefined && { finished_at: job.finishedAt }),
    ...(wallTime !== undefined && { wall_time_ms: wallTime }),
    config: {
      max_workers: job.config.maxWorkers,
      default_timeout: job.config.defaultTimeoutSec,
      max_retries: job.config.maxRetries,
      enable_recursion: job.config.enableRecursion,
      max_recursion_depth: job.config.maxRecursionDepth,
      max_budget_usd: job.config.maxBudgetUsd,
      ...(job.config.model !== undefined && { model: job.config.model }),
    },
    results: {
      tasks: views,
      summary: {
        ...summary,
        depths: new Set(jobs.map((j) => j.depth)).size,
        jobs: jobs.length,
      },
    },
    jobs,
    ...(planning !== undefined && { planning }),
    cost,
    ...(job.error !== undefined && { error: job.error }),
    ...(job.source !== undefined && {
      git: gitView(job, rootNode.tasks, ctx),
      steps: rootNode.tasks.filter(isStep).map(stepView),
    }),
    performance: buildPerformance(tree, { now: ctx.now }),
    ...(ctx.workspace !== undefined && { workspace: ctx.workspace }),
    final_report: `s3://${ctx.bucket}/${finalReportKey(job.rootJobId)}`,
    result_json: `s3://${ctx.bucket}/${resultJsonKey(job.rootJobId)}`,
  };
  return result;
}

/** Counts and sums over work task views; `succeeded` includes `recursive_success`. */
export function summarizeTasks(views: readonly TaskResultView[]): TaskSummary {
  const count = (pred: (s: TaskState) => boolean) => views.filter((v) => pred(v.status)).length;
  return {
    total: views.length,
    succeeded: count(isSuccessfulTaskState),
    failed: count((s) => s === 'failed'),
    timed_out: count((s) => s === 'timed_out'),
    cancelled: count((s) => s === 'cancelled'),
    running: count((s) => !isTerminalTaskState(s)),
    total_cost_usd: roundUsd(views.reduce((sum, v) => sum + v.cost_usd, 0)),
    total_turns: views.reduce((sum, v) => sum + v.num_turns, 0),
    total_duration_ms: views.reduce((sum, v) => sum + v.duration_ms, 0),
  };
}

/** Number of work tasks in each state; every state is present, zero-filled. The planner is left out. */
export function countTasksByState(tasks: TaskRecord[]): Record<TaskState, number> {
  const counts = Object.fromEntries(TASK_STATES.map((s) => [s, 0])) as Record<TaskState, number>;
  for (const task of tasks) {
    if (task.kind === 'work') counts[task.state] += 1;
  }
  return counts;
}

/**
 * Visits the tree depth-first: each job's tasks by number, and after each task
 * the child jobs it created (by creation time). Jobs not reached from the root
 * (their parent is missing) are visited afterwards, by depth and lineage.
 */
function walkTree(tree: TreeNode[]): { jobs: TreeJobView[]; views: TaskResultView[]; steps: TaskRecord[] } {
  const nodes: TreeNode[] = [];
  const byId = new Map<string, TreeNode>();
  for (const node of tree) {
    if (byId.has(node.job.jobId)) continue;
    byId.set(node.job.jobId, node);
    nodes.push(node);
  }
  const childrenByTask = new Map<string, TreeNode[]>();
  for (const node of nodes.slice(1)) {
    const { parentJobId, parentTaskNo } = node.job;
    if (parentJobId === undefined || parentTaskNo === undefined) continue;
    const key = taskKey(parentJobId, parentTaskNo);
    childrenByTask.set(key, [...(childrenByTask.get(key) ?? []), node]);
  }
  const childrenOf = (job: JobRecord, task: TaskRecord): TreeNode[] => {
    const children = [...(childrenByTask.get(taskKey(job.jobId, task.taskNo)) ?? [])];
    const handoff = task.childJobId === undefined ? undefined : byId.get(task.childJobId);
    if (handoff !== undefined && handoff !== nodes[0] && !children.includes(handoff)) children.push(handoff);
    return children.sort(
      (a, b) => compareText(a.job.createdAt, b.job.createdAt) || compareText(a.job.jobId, b.job.jobId),
    );
  };

  const jobs: TreeJobView[] = [];
  const views: TaskResultView[] = [];
  const steps: TaskRecord[] = [];
  const visited = new Set<string>();
  const visit = (node: TreeNode): void => {
    if (visited.has(node.job.jobId)) return;
    visited.add(node.job.jobId);
    const { job } = node;
    const parent = job.parentJobId === undefined ? undefined : byId.get(job.parentJobId)?.job;
    const parentWorker = parentWorkerId(job, parent);
    const sorted = [...node.tasks].sort((a, b) => a.taskNo - b.taskNo);
    const planner = sorted.find((t) => t.kind === 'plan');
    const jobView: TreeJobView = {
      job_id: job.jobId,
      status: job.status,
      depth: job.depth,
      path: job.path,
      ...(job.parentJobId !== undefined && { parent_job_id: job.parentJobId }),
      ...(job.parentTaskNo !== undefined && { parent_task_no: job.parentTaskNo }),
      ...(parentWorker !== undefined && { parent_worker_id: parentWorker }),
      ...(job.childMode !== undefined && { child_mode: job.childMode }),
      request: job.request,
      created_at: job.createdAt,
      ...(job.finishedAt !== undefined && { finished_at: job.finishedAt }),
      ...(job.error !== undefined && { error: job.error }),
      summary: summarizeTasks([]),
      ...(planner !== undefined && { planning: planningView(planner) }),
    };
    jobs.push(jobView);
    const own: TaskResultView[] = [];
    for (const task of sorted) {
      const children = childrenOf(job, task);
      if (task.kind === 'work') {
        const view = taskView(job, task, parentWorker, children);
        own.push(view);
        views.push(view);
      } else if (isStep(task)) steps.push(task);
      for (const child of children) visit(child);
    }
    jobView.summary = summarizeTasks(own);
  };

  const [root, ...rest] = nodes;
  if (root !== undefined) visit(root);
  const unreached = rest
    .filter((n) => !visited.has(n.job.jobId))
    .sort(
      (a, b) =>
        a.job.depth - b.job.depth ||
        compareLineage(a.job.path, b.job.path) ||
        compareText(a.job.createdAt, b.job.createdAt) ||
        compareText(a.job.jobId, b.job.jobId),
    );
  for (const node of unreached) visit(node);
  return { jobs, views, steps };
}

function taskKey(jobId: string, taskNo: number): string {
  return `${jobId}#${taskNo}`;
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Compares lineages numerically, segment by segment: `2` < `2_1` < `2_10` < `10`. */
function compareLineage(a: string, b: string): number {
  const left = a === '' ? [] : a.split('_').map(Number);
  const right = b === '' ? [] : b.split('_').map(Number);
  for (let i = 0; i < Math.min(left.length, right.length); i += 1) {
    const diff = (left[i] ?? 0) - (right[i] ?? 0);
    if (diff !== 0) return diff;
  }
  return left.length - right.length;
}

/**
 * The worker whose task created `job`: from the parent job's lineage when the
 * parent is known, else from the job's own lineage (`'2_1'` was created by
 * `worker_2_1`).
 */
function parentWorkerId(job: JobRecord, parent: JobRecord | undefined): string | undefined {
  if (parent !== undefined && job.parentTaskNo !== undefined) return workerId(job.parentTaskNo, parent.path);
  return job.path === '' ? undefined : `worker_${job.path}`;
}

/** Cost and attempts of every planner of the tree; status and error of the root's (else the first). */
function treePlanning(jobs: TreeJobView[]): PlanningView | undefined {
  const planners = jobs.flatMap((j) => (j.planning === undefined ? [] : [j.planning]));
  const lead = jobs[0]?.planning ?? planners[0];
  if (lead === undefined) return undefined;
  return {
    status: lead.status,
    attempts: planners.reduce((sum, p) => sum + p.attempts, 0),
    cost_usd: roundUsd(planners.reduce((sum, p) => sum + p.cost_usd, 0)),
    ...(lead.error !== undefined && { error: lead.error }),
  };
}

function costView(workersUsd: number, planningUsd: number, steps: readonly TaskRecord[]): CostView {
  const stepsUsd = tasksCostUsd(steps);
  return {
    total_usd: roundUsd(workersUsd + planningUsd + stepsUsd),
    workers_usd: workersUsd,
    planning_usd: planningUsd,
    steps_usd: stepsUsd,
  };
}

function taskView(
  job: JobRecord,
  task: TaskRecord,
  parentWorker: string | undefined,
  children: TreeNode[],
): TaskResultView {
  const usage = taskUsage(task);
  const error = failureReason(task);
  const handoff =
    task.childJobId === undefined ? undefined : children.find((c) => c.job.jobId === task.childJobId);
  const recursive =
    task.state === 'waiting_on_child' ||
    task.state === 'recursive_success' ||
    (task.childJobId !== undefined && handoff?.job.childMode !== 'wait');
  const childJobId = task.childJobId ?? children[0]?.job.jobId;
  const child = task.childResults;
  return {
    worker_id: workerId(task.taskNo, task.jobPath),
    job_id: job.jobId,
    task_no: task.taskNo,
    title: task.title,
    prompt: task.prompt,
    status: task.state,
    depth: task.depth,
    attempts: attemptsMade(task),
    output: task.result?.output ?? '',
    output_truncated: task.result?.outputTruncated ?? false,
    files_created: [...(task.result?.filesCreated ?? [])],
    ...(task.result?.refusedFiles?.length && {
      refused_files: task.result.refusedFiles.map((r) => ({ path: r.path, reason: r.reason })),
      refused_count: task.result.refusedCount ?? task.result.refusedFiles.length,
    }),
    files_prefix: workerFilesPrefix(task.rootJobId, task.depth, task.taskNo, task.jobPath),
    log_key: workerLogKey(
      task.rootJobId,
      task.depth,
      task.taskNo,
      task.jobPath,
      Math.max(1, attemptsMade(task)),
    ),
    duration_ms: usage.durationMs,
    num_turns: task.result?.numTurns ?? 0,
    cost_usd: usage.costUsd,
    ...reportedView(task),
    ...(error !== undefined && { error }),
    attempt_history: task.attempts.map((record) => attemptView(task, record)),
    ...(task.startedAt !== undefined && { started_at: task.startedAt }),
    ...(task.finishedAt !== undefined && { finished_at: task.finishedAt }),
    recursive,
    ...(childJobId !== undefined && { child_job_id: childJobId }),
    ...(child !== undefined && {
      child_results: {
        status: child.status,
        total: child.total,
        succeeded: child.succeeded,
        failed: child.failed,
        cost_usd: roundUsd(child.costUsd),
      },
    }),
    ...(parentWorker !== undefined && { parent_worker_id: parentWorker }),
    ...commitView(task),
  };
}

function commitView(task: TaskRecord): Partial<TaskResultView> {
  const git = task.result?.git;
  if (git?.kind === 'work') {
    return {
      ...(git.commit !== undefined && task.state === 'succeeded' && { commit: git.commit }),
      files_changed: git.files,
      insertions: git.insertions,
      deletions: git.deletions,
      ...(git.excluded.length > 0 && { excluded_files: git.excluded }),
    };
  }
  if (task.state === 'recursive_success' && task.childResults?.git)
    return { commit: task.childResults.git.commit };
  return {};
}

function isStep(task: TaskRecord): task is TaskRecord & { kind: 'source' | 'merge' | 'push' } {
  return task.kind === 'source' || task.kind === 'merge' || task.kind === 'push';
}

function stepView(task: TaskRecord & { kind: 'source' | 'merge' | 'push' }): StepView {
  const error = failureReason(task);
  return {
    kind: task.kind,
    status: task.state,
    attempts: attemptsMade(task),
    cost_usd: taskUsage(task).costUsd,
    ...(error !== undefined && { error }),
  };
}

/** The job's git state from its source, its workers' commits and its steps. */
function gitView(job: JobRecord, tasks: TaskRecord[], ctx: ResultContext): GitView {
  const source = job.source as NonNullable<JobRecord['source']>;
  const merged = mergeResultOf(tasks);
  const push = findStep(tasks, 'push');
  const pushGit =
    push?.state === 'succeeded' && push.result?.git?.kind === 'push' ? push.result.git : undefined;
  const hasBranch = merged !== undefined && merged.headCommit !== merged.baseCommit;
  const work = tasks.filter((t) => t.kind === 'work');
  const mergeTask = findStep(tasks, 'merge');
  let state: GitView['state'];
  let note: string | undefined;
  if (!source.baseCommit) state = findStep(tasks, 'source')?.state === 'failed' ? 'failed' : 'fetching';
  else if (work.length === 0 || work.some((t) => !isTerminalTaskState(t.state))) state = 'working';
  else if (commitsToMerge(tasks).length === 0) {
    state = 'unchanged';
    note = work.some((t) => isSuccessfulTaskState(t.state))
      ? 'no worker changed anything, so nothing was merged and there is no branch'
      : 'no worker succeeded, so nothing was merged and there is no branch';
  } else if (!mergeTask || !isTerminalTaskState(mergeTask.state)) state = 'merging';
  else if (!merged) {
    state = 'failed';
    note = `the merge step ${mergeTask.state}: ${failureReason(mergeTask) ?? ''}`.trim();
  } else if (pushWanted(job, merged) && (!push || !isTerminalTaskState(push.state))) state = 'pushing';
  else if (!hasBranch) {
    state = 'unchanged';
    note = 'no worker change could be merged, so there is no branch';
  } else state = 'merged';
  return {
    source: {
      kind: source.kind,
      ...(source.url !== undefined && { url: source.url }),
      ...(source.ref !== undefined && { ref: source.ref }),
    },
    base_commit: source.baseCommit ?? null,
    state,
    branch: hasBranch ? merged.branch : null,
    head_commit: merged?.headCommit ?? source.baseCommit ?? null,
    merged: (merged?.merged ?? []).map((m) => ({
      worker_id: m.workerId,
      commit: m.commit,
      outcome: m.outcome,
      insertions: m.insertions,
      deletions: m.deletions,
      files_changed: m.filesChanged,
    })),
    conflicts: (merged?.conflicts ?? []).map((c) => ({
      workers: c.workers,
      files: c.files,
      hunks: c.hunks,
      resolution: c.resolution,
      ...(c.reason !== undefined && { reason: c.reason }),
    })),
    insertions: merged?.insertions ?? 0,
    deletions: merged?.deletions ?? 0,
    files_changed: merged?.filesChanged ?? 0,
    patch: hasBranch ? `s3://${ctx.bucket}/${mergePatchKey(job.rootJobId, job.path)}` : null,
    bundle: hasBranch ? `s3://${ctx.bucket}/${mergeBundleKey(job.rootJobId, job.path)}` : null,
    ...(pushGit && { pushed_to: `${source.url}#${pushGit.remoteRef}` }),
    ...(note !== undefined && { note }),
  };
}

function planningView(task: TaskRecord): PlanningView {
  const error = failureReason(task);
  return {
    status: task.state,
    attempts: attemptsMade(task),
    cost_usd: taskUsage(task).costUsd,
    ...(error !== undefined && { error }),
  };
}

function attemptView(task: TaskRecord, record: AttemptRecord): AttemptView {
  const usage = record.usage;
  return {
    attempt: record.attempt,
    status: record.state,
    ...(record.error !== undefined && { error: record.error }),
    ...(record.exitCode !== undefined && { exit_code: record.exitCode }),
    ...(record.durationMs !== undefined && { duration_ms: record.durationMs }),
    ...(record.costUsd !== undefined && { cost_usd: record.costUsd }),
    ...(record.reportedCostUsd !== undefined && { reported_cost_usd: record.reportedCostUsd }),
    ...(record.launchedAt !== undefined && { launched_at: record.launchedAt }),
    ...(record.startedAt !== undefined && { started_at: record.startedAt }),
    finished_at: record.finishedAt,
    ...(record.numTurns !== undefined && { num_turns: record.numTurns }),
    ...(usage !== undefined && {
      usage: {
        input_tokens: usage.inputTokens,
        output_tokens: usage.outputTokens,
        cache_read_input_tokens: usage.cacheReadInputTokens,
        cache_creation_input_tokens: usage.cacheCreationInputTokens,
      },
    }),
    ...(record.peakMemoryMb !== undefined && { peak_memory_mb: record.peakMemoryMb }),
    log_key: workerLogKey(task.rootJobId, task.depth, task.taskNo, task.jobPath, record.attempt),
  };
}

/** What the worker reported its metered attempts cost; absent when no attempt was metered. */
function reportedView(task: TaskRecord): { reported_cost_usd?: number } {
  const reported = reportedCostUsd(task);
  return reported === undefined ? {} : { reported_cost_usd: reported };
}

/**
 * Why the final attempt of a failed, timed-out or cancelled task did not
 * succeed: the current attempt's record, else the worker's reported error, else
 * the child job's outcome (for a task that handed off), else a reason derived
 * from the state and exit code. Undefined for other states.
 * A stale result's error can only show if the current attempt's record has no
 * reason, and records written without a worker report always carry one.
 */
function failureReason(task: TaskRecord): string | undefined {
  if (!FAILED_STATES.has(task.state)) return undefined;
  const record = recordOfCurrentAttempt(task);
  if (record?.error) return record.error;
  if (task.state === 'cancelled') return 'cancelled';
  if (task.result?.error) return task.result.error;
  if (task.state === 'failed' && task.childJobId !== undefined) {
    const child = task.childResults;
    if (child === undefined) return `child job ${task.childJobId} failed`;
    return `child job ${task.childJobId} ended ${child.status}: ${child.succeeded} of ${child.total} workers succeeded`;
  }
  if (task.state === 'timed_out') return `timed out after ${task.timeoutSec}s`;
  const exitCode = record?.exitCode ?? task.result?.exitCode;
  if (exitCode !== undefined) return `exited with code ${exitCode}`;
  return 'failed without a recorded reason';
}

function wallTimeMs(job: JobRecord, now: string): number | undefined {
  const end = job.finishedAt ?? (isTerminalJobStatus(job.status) ? job.updatedAt : now);
  const ms = Date.parse(end) - Date.parse(job.createdAt);
  return Number.isNaN(ms) ? undefined : Math.max(0, ms);
}
