/**
 * Turns the store's job and task records into the public result object
 * (`result.json`, `GET /jobs/{id}/result`), in the original tool's snake_case.
 * Pure: the caller passes the bucket and the current time.
 *
 * Counting rules (shared by result.json and the markdown reports):
 * - **Attempts made**: a task's `attempt` is the attempt it is on. In `queued`
 *   that attempt has not started yet, so it counts `attempt - 1`. A `cancelled`
 *   task counts its current attempt only if that attempt had started (see
 *   `currentAttemptStarted`); otherwise the attempts that ended. Every other
 *   state counts `attempt`.
 * - **Cost and duration**: each record in `task.attempts` is one ended attempt,
 *   so its `costUsd`/`durationMs` are summed. `task.result` is the latest
 *   report; it is added on top only when it belongs to the current attempt and
 *   that attempt has no record yet (e.g. `waiting_on_child`, or a writer that
 *   stored the result before appending the record). It belongs to the current
 *   attempt when the state is one a worker's report leads to (succeeded,
 *   recursive_success, waiting_on_child, failed, timed_out), or when a cancelled
 *   task's current attempt had started. In `queued`, `launching` and `running`
 *   any result is an earlier attempt's, already counted through its record.
 *   A record for the current attempt is authoritative even without a cost (a
 *   crashed container reports none), so a stale result is never counted twice.
 * - **Turns**: attempt records carry no turn count, so `num_turns` is the latest
 *   report's.
 * - **Summary**: work tasks only (the planner, task 0, is reported under
 *   `planning`); `succeeded` counts `succeeded` and `recursive_success`;
 *   `running` counts every non-terminal state.
 */
import { finalReportKey, resultJsonKey, workerFilesPrefix, workerId, workerLogKey } from './layout.ts';
import type { AttemptRecord, JobRecord, TaskRecord } from './model.ts';
import {
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
  finished_at: string;
}

export interface TaskResultView {
  worker_id: string;
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
  /** Paths relative to the worker's folder (`files_prefix`). */
  files_created: string[];
  /** S3 key prefix of the worker's files. */
  files_prefix: string;
  log_key: string;
  duration_ms: number;
  num_turns: number;
  cost_usd: number;
  /** Failure reason of the final attempt, for failed, timed-out and cancelled tasks. */
  error?: string;
  attempt_history: AttemptView[];
  started_at?: string;
  finished_at?: string;
}

export interface ResultSummary {
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

export interface PlanningView {
  status: TaskState;
  attempts: number;
  cost_usd: number;
  error?: string;
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
    model?: string;
  };
  results: { tasks: TaskResultView[]; summary: ResultSummary };
  /** Present when the job had a planner task (absent when the caller gave the tasks). */
  planning?: PlanningView;
  error?: string;
  workspace?: string;
  /** `s3://bucket/<finalReportKey>` */
  final_report: string;
  /** `s3://bucket/<resultJsonKey>` */
  result_json: string;
}

/** States the current attempt reaches through its worker's own report. */
const REPORTED_STATES: ReadonlySet<TaskState> = new Set([
  'succeeded',
  'recursive_success',
  'waiting_on_child',
  'failed',
  'timed_out',
]);

const FAILED_STATES: ReadonlySet<TaskState> = new Set(['failed', 'timed_out', 'cancelled']);

/** Builds the public result of one job from its records; `tasks` may include the planner. */
export function buildJobResult(job: JobRecord, tasks: TaskRecord[], ctx: ResultContext): JobResult {
  const sorted = [...tasks].sort((a, b) => a.taskNo - b.taskNo);
  const work = sorted.filter((t) => t.kind === 'work');
  const planner = sorted.find((t) => t.kind === 'plan');
  const views = work.map((t) => taskView(job, t));
  const wallTime = wallTimeMs(job, ctx.now);

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
      ...(job.config.model !== undefined && { model: job.config.model }),
    },
    results: { tasks: views, summary: summarize(views) },
    ...(planner !== undefined && { planning: planningView(planner) }),
    ...(job.error !== undefined && { error: job.error }),
    ...(ctx.workspace !== undefined && { workspace: ctx.workspace }),
    final_report: `s3://${ctx.bucket}/${finalReportKey(job.rootJobId)}`,
    result_json: `s3://${ctx.bucket}/${resultJsonKey(job.rootJobId)}`,
  };
  return result;
}

/** Number of work tasks in each state; every state is present, zero-filled. The planner is left out. */
export function countTasksByState(tasks: TaskRecord[]): Record<TaskState, number> {
  const counts = Object.fromEntries(TASK_STATES.map((s) => [s, 0])) as Record<TaskState, number>;
  for (const task of tasks) {
    if (task.kind === 'work') counts[task.state] += 1;
  }
  return counts;
}

function taskView(job: JobRecord, task: TaskRecord): TaskResultView {
  const usage = attemptUsage(task);
  const error = failureReason(task);
  return {
    worker_id: workerId(task.taskNo),
    task_no: task.taskNo,
    title: task.title,
    prompt: task.prompt,
    status: task.state,
    depth: task.depth,
    attempts: attemptsMade(task),
    output: task.result?.output ?? '',
    output_truncated: task.result?.outputTruncated ?? false,
    files_created: [...(task.result?.filesCreated ?? [])],
    files_prefix: workerFilesPrefix(job.rootJobId, task.depth, task.taskNo),
    log_key: workerLogKey(job.rootJobId, task.depth, task.taskNo),
    duration_ms: usage.durationMs,
    num_turns: task.result?.numTurns ?? 0,
    cost_usd: usage.costUsd,
    ...(error !== undefined && { error }),
    attempt_history: task.attempts.map(attemptView),
    ...(task.startedAt !== undefined && { started_at: task.startedAt }),
    ...(task.finishedAt !== undefined && { finished_at: task.finishedAt }),
  };
}

function planningView(task: TaskRecord): PlanningView {
  const error = failureReason(task);
  return {
    status: task.state,
    attempts: attemptsMade(task),
    cost_usd: attemptUsage(task).costUsd,
    ...(error !== undefined && { error }),
  };
}

function attemptView(record: AttemptRecord): AttemptView {
  return {
    attempt: record.attempt,
    status: record.state,
    ...(record.error !== undefined && { error: record.error }),
    ...(record.exitCode !== undefined && { exit_code: record.exitCode }),
    ...(record.durationMs !== undefined && { duration_ms: record.durationMs }),
    ...(record.costUsd !== undefined && { cost_usd: record.costUsd }),
    finished_at: record.finishedAt,
  };
}

function summarize(views: TaskResultView[]): ResultSummary {
  const count = (pred: (s: TaskState) => boolean) => views.filter((v) => pred(v.status)).length;
  return {
    total: views.length,
    succeeded: count((s) => s === 'succeeded' || s === 'recursive_success'),
    failed: count((s) => s === 'failed'),
    timed_out: count((s) => s === 'timed_out'),
    cancelled: count((s) => s === 'cancelled'),
    running: count((s) => !isTerminalTaskState(s)),
    total_cost_usd: roundUsd(views.reduce((sum, v) => sum + v.cost_usd, 0)),
    total_turns: views.reduce((sum, v) => sum + v.num_turns, 0),
    total_duration_ms: views.reduce((sum, v) => sum + v.duration_ms, 0),
  };
}

function recordOfCurrentAttempt(task: TaskRecord): AttemptRecord | undefined {
  return task.attempts.find((a) => a.attempt >= task.attempt);
}

/**
 * Whether the current attempt had started. Only asked for cancelled tasks,
 * whose previous state is not kept: it started if no earlier attempt ended, or
 * if the task's start time is later than the last ended attempt.
 */
function currentAttemptStarted(task: TaskRecord): boolean {
  if (task.startedAt === undefined) return false;
  const last = task.attempts.at(-1);
  if (last === undefined) return true;
  return Date.parse(task.startedAt) > Date.parse(last.finishedAt);
}

/** True when `task.result` is the current attempt's report and no attempt record counts it yet. */
function resultIsUnrecorded(task: TaskRecord): boolean {
  if (task.result === undefined || recordOfCurrentAttempt(task) !== undefined) return false;
  if (REPORTED_STATES.has(task.state)) return true;
  return task.state === 'cancelled' && currentAttemptStarted(task);
}

function attemptsMade(task: TaskRecord): number {
  if (task.state === 'queued') return Math.max(0, task.attempt - 1);
  if (task.state === 'cancelled') {
    if (recordOfCurrentAttempt(task) !== undefined || currentAttemptStarted(task)) return task.attempt;
    return task.attempts.reduce((max, a) => Math.max(max, a.attempt), 0);
  }
  return task.attempt;
}

function attemptUsage(task: TaskRecord): { costUsd: number; durationMs: number } {
  let costUsd = 0;
  let durationMs = 0;
  for (const record of task.attempts) {
    costUsd += record.costUsd ?? 0;
    durationMs += record.durationMs ?? 0;
  }
  if (task.result !== undefined && resultIsUnrecorded(task)) {
    costUsd += task.result.costUsd;
    durationMs += task.result.durationMs;
  }
  return { costUsd: roundUsd(costUsd), durationMs };
}

/**
 * Why the final attempt of a failed, timed-out or cancelled task did not
 * succeed: the current attempt's record, else the worker's reported error, else
 * a reason derived from the state and exit code. Undefined for other states.
 * A stale result's error can only show if the current attempt's record has no
 * reason, and records written without a worker report always carry one.
 */
function failureReason(task: TaskRecord): string | undefined {
  if (!FAILED_STATES.has(task.state)) return undefined;
  const record = recordOfCurrentAttempt(task);
  if (record?.error) return record.error;
  if (task.state === 'cancelled') return 'cancelled';
  if (task.result?.error) return task.result.error;
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

/** Rounds to a millionth of a dollar, so sums of floats print cleanly in JSON. */
function roundUsd(usd: number): number {
  return Math.round(usd * 1e6) / 1e6;
}
