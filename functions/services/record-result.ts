/**
 * A worker's attempt ended: record it, then take the steps that follow (retry,
 * count the task as finished, create the planned tasks, enqueue aggregation).
 * Every step is idempotent, so a worker that retries its POST after a crash
 * on our side completes whatever the first call left undone.
 */
import { conflict, forbidden } from '../core/errors.ts';
import { baseBundleKey, STEP_TASK_NO } from '../core/layout.ts';
import { commitsToMerge, findStep, mergeResultOf, pushWanted } from '../core/merge-plan.ts';
import type {
  AttemptRecord,
  JobRecord,
  RefusedFile,
  TaskRecord,
  TaskResultSummary,
  WorkerOutcome,
} from '../core/model.ts';
import { attemptTimes } from '../core/performance.ts';
import { parsePlan } from '../core/planner.ts';
import { tasksRefusal } from '../core/recursion-policy.ts';
import {
  canTransitionTask,
  isLiveAttempt,
  isTerminalTaskState,
  LIVE_TASK_STATES,
  nextAfterFailure,
  retryTimeoutSec,
  type TaskState,
} from '../core/task-states.ts';
import { canonicalHash } from '../core/tokens.ts';
import type { Deps } from './deps.ts';
import { settleMeteredAttempt, withMeteredCost } from './model-gateway.ts';
import { runMessage, stepTask, workTasks } from './submit-job.ts';
import { type StoredFiles, storedFiles } from './worker-access.ts';

export type RecordOutcome = 'recorded' | 'replayed' | 'late';

/**
 * `resultHash` is the canonical hash of the posted body: once an attempt has
 * ended, only that same body is acknowledged again (a worker retrying after a
 * lost response); any other is a 409 and changes nothing.
 */
export async function recordWorkerResult(
  deps: Deps,
  task: TaskRecord,
  outcome: WorkerOutcome,
  resultHash: string,
  /** The stored files' listing, when the caller started it early (beside its other writes). */
  listing?: Promise<StoredFiles>,
  /** The task's job as the caller read it with the task (only to tell whether this may be its last task). */
  job?: JobRecord,
): Promise<{ outcome: RecordOutcome; task: TaskRecord }> {
  const now = deps.now().toISOString();
  const ended = task.attempts.find((a) => a.attempt === outcome.attempt);
  if (ended) return replay(deps, task, ended, resultHash, now);
  if (task.state === 'cancelled' && task.attempt === outcome.attempt) {
    // The job was cancelled while this worker ran: keep what it said, change nothing.
    const late = summarize(deps, { ...outcome, filesCreated: [] });
    if (task.lateResult !== undefined) {
      if (canonicalHash(task.lateResult) === canonicalHash(late)) return { outcome: 'late', task };
      refuseReplay(deps, task, outcome.attempt, 'cancelled');
    }
    await deps.tasks.recordLateResult(task.jobId, task.taskNo, late);
    deps.log.info('late result after cancel recorded', {
      jobId: task.jobId,
      taskNo: task.taskNo,
      attempt: outcome.attempt,
    });
    return { outcome: 'late', task };
  }
  if (!isLiveAttempt(task, outcome.attempt)) {
    deps.log.warn('result refused: attempt not running', {
      jobId: task.jobId,
      taskNo: task.taskNo,
      attempt: outcome.attempt,
      state: task.state,
    });
    throw forbidden(
      `attempt ${outcome.attempt} of task ${task.taskNo} is not running (task is ${task.state}, attempt ${task.attempt}); its token is no longer valid`,
    );
  }

  // What the attempt stored, as the storage lists it now; the worker's own list is only compared.
  const stored = await (listing ?? storedFiles(deps, task, outcome.attempt));
  const unlisted = outcome.filesCreated.filter((f) => !stored.paths.includes(f));
  if (unlisted.length > 0)
    deps.log.warn('result names files that were not stored', {
      jobId: task.jobId,
      taskNo: task.taskNo,
      attempt: outcome.attempt,
      count: unlisted.length,
      paths: unlisted.slice(0, 5).map((f) => f.slice(0, 200)),
    });
  const extra: ResultExtra = {
    resultHash,
    fileVersions: stored.versions,
    refused: stored.refused,
    refusedCount: stored.refusedCount,
  };
  let verdict: WorkerOutcome = { ...outcome, filesCreated: stored.paths };
  if (task.kind === 'plan' && outcome.status === 'succeeded')
    verdict = await admitPlan(deps, task, outcome, now);
  // The base is stored before the step is marked succeeded, so a replay only has to release the waiting tasks.
  if (task.kind === 'source' && outcome.status === 'succeeded')
    verdict = await admitSource(deps, task, outcome, now);
  // The planned tasks exist before the planner is marked succeeded, so a replay after a lost
  // response (or a crash) only has to start them: see startPlannedJob.
  if (task.kind === 'plan' && verdict.status === 'succeeded')
    await putPlannedTasks(deps, task, outcome.structuredOutput, now);
  // With the model gateway the cost is what it metered; the worker's figure is kept for comparison.
  verdict = await withMeteredCost(deps, task, verdict);

  const written = await endAttempt(deps, task, verdict, now, extra);
  if (!written) {
    // Someone else moved the task between our read and write (e.g. a duplicate POST).
    const fresh = await deps.tasks.getTask(task.jobId, task.taskNo);
    const record = fresh?.attempts.find((a) => a.attempt === outcome.attempt);
    if (fresh && record) return replay(deps, fresh, record, resultHash, now);
    throw conflict(`task ${task.taskNo} changed while its result was being recorded`);
  }
  // What finished, as the launch and failure lines before it: the log reads as the job's story.
  deps.log.info('worker finished', {
    jobId: task.jobId,
    taskNo: task.taskNo,
    attempt: outcome.attempt,
    status: verdict.status,
    next: written.state,
    costUsd: verdict.costUsd,
    turns: verdict.numTurns,
    durationMs: verdict.durationMs,
    ...(verdict.error ? { error: verdict.error.slice(0, 300) } : {}),
  });
  // The last task of a small job is followed by its aggregation, which reads every task: when the
  // job read with the task says this is likely the last, that read runs beside the close.
  const early = job && mayComplete(deps, job, written) ? deps.tasks.listTasks(task.jobId) : undefined;
  early?.catch(() => {});
  const closed = await closeAttempt(deps, task, written, verdict.costUsd, true, now);
  const counted = closed.counted && { ...closed.counted, early };
  await followUpThenRelease(deps, written, now, counted, closed.releaseGlobal);
  return { outcome: 'recorded', task: written };
}

/** The attempt already ended: the same result again finishes what follows it; anything else is refused. */
async function replay(
  deps: Deps,
  task: TaskRecord,
  ended: AttemptRecord,
  resultHash: string,
  now: string,
): Promise<{ outcome: RecordOutcome; task: TaskRecord }> {
  if (ended.resultHash === undefined || ended.resultHash !== resultHash)
    refuseReplay(deps, task, ended.attempt, ended.state);
  await followUp(deps, task, now);
  return { outcome: 'replayed', task };
}

function refuseReplay(deps: Deps, task: TaskRecord, attempt: number, state: string): never {
  deps.log.warn('result refused: attempt already ended with another result', {
    jobId: task.jobId,
    taskNo: task.taskNo,
    attempt,
    state,
  });
  throw conflict(
    `attempt ${attempt} of task ${task.taskNo} has already ended (${state}); only the result it ended with may be posted again, unchanged`,
  );
}

/** What the server adds to a worker's report when it records the attempt. */
interface ResultExtra {
  resultHash: string;
  fileVersions: string[];
  refused: RefusedFile[];
  refusedCount: number;
}

/**
 * A plan is admitted only within the tree's task budget: the root reserves
 * its planned tasks now; a child already reserved max_workers and gives back
 * what the plan does not use.
 */
async function admitPlan(
  deps: Deps,
  task: TaskRecord,
  outcome: WorkerOutcome,
  now: string,
): Promise<WorkerOutcome> {
  const job = await deps.jobs.getJob(task.jobId);
  if (!job) return { ...outcome, status: 'failed', error: 'the job is gone', retryable: false };
  const plan = parsePlan(outcome.structuredOutput, job.config.maxWorkers);
  if (!plan.ok) return { ...outcome, status: 'failed', error: plan.reason, retryable: true };
  const count = plan.subtasks.length;
  if (job.depth > 0) {
    const unused = job.config.maxWorkers - count;
    if (unused > 0) await deps.budget.releaseTasks(job.rootJobId, unused);
    return outcome;
  }
  if (await deps.budget.reserveTasks(job, count, now)) return outcome;
  const fresh = (await deps.jobs.getJob(job.jobId)) ?? job;
  return { ...outcome, status: 'failed', error: tasksRefusal(fresh, count).message, retryable: false };
}

/**
 * The source step fetched the remote: its bundle must be where it was told to
 * upload it and within the size limit; then the job's base is recorded.
 */
async function admitSource(
  deps: Deps,
  task: TaskRecord,
  outcome: WorkerOutcome,
  now: string,
): Promise<WorkerOutcome> {
  const fail = (error: string, retryable: boolean): WorkerOutcome => ({
    ...outcome,
    status: 'failed',
    error,
    retryable,
  });
  if (outcome.git?.kind !== 'source') return fail('the source step reported no base commit', true);
  const key = baseBundleKey(task.rootJobId);
  const size = await deps.artifacts.size(key);
  if (size === undefined) return fail('the source step did not upload the repository bundle', true);
  const max = deps.settings.limits.maxSourceBytes;
  if (size > max)
    return fail(`the repository bundle is ${size} bytes, over limits.max_source_mb (${max} bytes)`, false);
  if (!(await deps.jobs.setSourceBase(task.jobId, outcome.git.baseCommit, [key], now)))
    return fail('the job already has another base commit', false);
  return outcome;
}

/** A final work task joins its job's finished set: the job after that, and whether this call added it. */
interface Counted {
  job: JobRecord;
  firstTime: boolean;
  /** The job's tasks, read beside that write; the aggregation reads them again unless all are final. */
  early?: Promise<TaskRecord[]> | undefined;
}

/** `task` just ended and is likely the last of a job aggregated inline (the job as read before). */
function mayComplete(deps: Deps, job: JobRecord, task: TaskRecord): boolean {
  return (
    countsAsFinished(task) &&
    job.status === 'running' &&
    !job.source?.baseCommit &&
    aggregatesInline(deps, job) &&
    job.finishedTasks.filter((n) => n !== task.taskNo).length + 1 >= job.totalTasks
  );
}

/**
 * What follows the write that ended an attempt, on the job and the root: its
 * running slots go back and its spend reservation becomes its reported cost
 * (the gateway's meter settled a metered one already). A root job's own
 * attempt does both, and joins the finished set when final, in one write on
 * the job item; otherwise, or when that write's condition fails, the parts
 * are done one by one (and followUp counts the task). `releaseGlobal` gives
 * the deployment's slot back; the caller calls it after the follow-up.
 */
async function closeAttempt(
  deps: Deps,
  task: TaskRecord,
  ended: TaskRecord,
  costUsd: number,
  slotsHeld: boolean,
  now: string,
): Promise<{ counted?: Counted | undefined; releaseGlobal?: (() => Promise<void>) | undefined }> {
  const metered = await settleMeteredAttempt(deps, task);
  const reserved = !metered && task.budgetAttempt === task.attempt ? (task.budgetUsd ?? 0) : 0;
  const actual = metered ? 0 : costUsd;
  const spend = reserved !== 0 || actual !== 0 ? { delta: actual - reserved, actual } : undefined;
  const finished = countsAsFinished(ended) ? ended.taskNo : undefined;
  if (task.jobId === task.rootJobId && (slotsHeld || spend || finished !== undefined)) {
    const job = await deps.jobs.closeAttemptOnJob(task.jobId, now, { release: slotsHeld, spend, finished });
    if (job) {
      return {
        counted: finished !== undefined ? { job, firstTime: true } : undefined,
        releaseGlobal: slotsHeld ? () => deps.slots.releaseGlobal() : undefined,
      };
    }
  }
  if (slotsHeld) await deps.slots.release(task.jobId);
  if (spend) await deps.budget.settleSpend(task.rootJobId, reserved, actual);
  return {};
}

/**
 * What follows the close, then the deployment's slot back. The slot goes
 * last (a few ms later, even when the follow-up fails): written beside the
 * follow-up, it queued in the same store ahead of the last task's reports.
 */
async function followUpThenRelease(
  deps: Deps,
  task: TaskRecord,
  now: string,
  counted: Counted | undefined,
  releaseGlobal: (() => Promise<void>) | undefined,
): Promise<void> {
  try {
    await followUp(deps, task, now, counted);
  } finally {
    await releaseGlobal?.();
  }
}

/** A work task that ended for good (not cancelled) counts toward its job's finished set. */
function countsAsFinished(task: TaskRecord): boolean {
  return task.kind === 'work' && isTerminalTaskState(task.state) && task.state !== 'cancelled';
}

function summarize(deps: Deps, outcome: WorkerOutcome, extra?: ResultExtra): TaskResultSummary {
  const maxChars = deps.settings.limits.maxOutputChars;
  return {
    output: outcome.output.slice(0, maxChars),
    outputTruncated: outcome.output.length > maxChars,
    filesCreated: outcome.filesCreated,
    costUsd: outcome.costUsd,
    ...(outcome.reportedCostUsd !== undefined ? { reportedCostUsd: outcome.reportedCostUsd } : {}),
    numTurns: outcome.numTurns,
    durationMs: outcome.durationMs,
    ...(outcome.usage ? { usage: outcome.usage } : {}),
    ...(outcome.peakMemoryMb !== undefined ? { peakMemoryMb: outcome.peakMemoryMb } : {}),
    sessionId: outcome.sessionId,
    error: outcome.error,
    exitCode: outcome.exitCode,
    ...(outcome.git ? { git: outcome.git } : {}),
    ...(extra?.fileVersions.length ? { fileVersions: extra.fileVersions } : {}),
    ...(extra?.refused.length ? { refusedFiles: extra.refused } : {}),
    ...(extra && extra.refusedCount > extra.refused.length ? { refusedCount: extra.refusedCount } : {}),
  };
}

/** A worker that stopped without reporting (crash, kill): its attempt failed with `reason`. */
export async function recordLostWorker(
  deps: Deps,
  lost: { jobId: string; taskNo: number; attempt: number },
  reason: string,
  exitCode?: number,
  status: 'failed' | 'timed_out' = 'failed',
  retryable = true,
  /** False when the attempt was refused before it took its running slots (nothing to give back). */
  slotsHeld = true,
): Promise<TaskRecord | undefined> {
  // Copy the ids only: the launch request also carries the task token, which must never be logged.
  const scope = { jobId: lost.jobId, taskNo: lost.taskNo, attempt: lost.attempt };
  const task = await deps.tasks.getTask(scope.jobId, scope.taskNo);
  if (!task || !isLiveAttempt(task, scope.attempt)) return undefined;
  const ended = await endAttempt(
    deps,
    task,
    await withMeteredCost(
      deps,
      task,
      {
        attempt: scope.attempt,
        status,
        output: '',
        filesCreated: [],
        costUsd: 0,
        numTurns: 0,
        durationMs: task.startedAt ? Math.max(0, deps.now().getTime() - Date.parse(task.startedAt)) : 0,
        error: reason,
        exitCode,
        retryable,
      },
      false,
    ),
    deps.now().toISOString(),
  );
  if (!ended) {
    // Lost response or a concurrent writer: if this attempt did end, finish what follows it.
    const fresh = await deps.tasks.getTask(scope.jobId, scope.taskNo);
    if (fresh?.attempts.some((a) => a.attempt === scope.attempt))
      await followUp(deps, fresh, deps.now().toISOString());
    return undefined;
  }
  const now = deps.now().toISOString();
  const closed = await closeAttempt(deps, task, ended, 0, slotsHeld, now);
  deps.log.warn('worker stopped without a result', { ...scope, reason, next: ended.state });
  await followUpThenRelease(deps, ended, now, closed.counted, closed.releaseGlobal);
  return ended;
}

async function endAttempt(
  deps: Deps,
  task: TaskRecord,
  outcome: WorkerOutcome,
  now: string,
  extra?: ResultExtra,
) {
  const ok = outcome.status === 'succeeded';
  const next = ok
    ? { state: 'succeeded' as TaskState, attempt: task.attempt }
    : outcome.retryable
      ? nextAfterFailure({
          state: outcome.status as 'failed' | 'timed_out',
          attempt: task.attempt,
          maxRetries: task.maxRetries,
        })
      : { state: outcome.status as TaskState, attempt: task.attempt };
  const timeoutSec = next.state === 'queued' ? retryTimeoutSec(task.timeoutSec) : undefined;
  const record: AttemptRecord = {
    attempt: task.attempt,
    state: outcome.status,
    error: outcome.error,
    exitCode: outcome.exitCode,
    durationMs: outcome.durationMs,
    costUsd: outcome.costUsd,
    ...(outcome.reportedCostUsd !== undefined ? { reportedCostUsd: outcome.reportedCostUsd } : {}),
    ...attemptTimes(task),
    numTurns: outcome.numTurns,
    ...(outcome.usage ? { usage: outcome.usage } : {}),
    ...(outcome.peakMemoryMb !== undefined ? { peakMemoryMb: outcome.peakMemoryMb } : {}),
    finishedAt: now,
    ...(extra ? { resultHash: extra.resultHash } : {}),
  };
  const result = summarize(deps, outcome, extra);
  // A worker reports from `running`; a worker lost before fetching its assignment is still `launching`.
  const from = LIVE_TASK_STATES.filter((s) => canTransitionTask(s, record.state));
  const ended = await deps.tasks.endAttempt(
    task.jobId,
    task.taskNo,
    task.attempt,
    from,
    { ...next, timeoutSec },
    record,
    result,
    now,
  );
  if (ended && !ok) {
    deps.log.info('attempt failed', {
      jobId: task.jobId,
      taskNo: task.taskNo,
      attempt: task.attempt,
      next: next.state,
      reason: outcome.error,
    });
  }
  return ended;
}

/** Planner succeeded: its subtasks become work tasks and the job starts running. */
async function putPlannedTasks(deps: Deps, planner: TaskRecord, structuredOutput: unknown, now: string) {
  const job = await deps.jobs.getJob(planner.jobId);
  if (!job) return;
  const plan = parsePlan(structuredOutput, job.config.maxWorkers);
  if (!plan.ok) return;
  await deps.tasks.putTasks(workTasks(job, plan.subtasks, now));
}

/** Planner succeeded: the job starts running with the planned tasks (safe to repeat). */
async function startPlannedJob(deps: Deps, planner: TaskRecord, now: string): Promise<void> {
  const tasks = (await deps.tasks.listTasks(planner.jobId)).filter((t) => t.kind === 'work');
  const job = await deps.jobs.getJob(planner.jobId);
  if (job?.status === 'planning' && tasks.length > 0) {
    await deps.jobs.transitionJob(job.jobId, 'planning', 'running', now, { totalTasks: tasks.length });
  }
  await deps.queue.sendAll(tasks.filter((t) => t.state === 'queued').map(runMessage));
}

/**
 * The steps after an attempt is recorded, each safe to repeat:
 * retry -> send the next attempt; planner done -> send the planned tasks;
 * source fetched -> release the tasks that waited for it; work task final ->
 * add it to the finished set, and the write that completes the set starts the
 * merge (repository jobs) or sends the one aggregate message; merge done ->
 * push (when wanted) or aggregate; push done -> aggregate.
 */
export async function followUp(deps: Deps, task: TaskRecord, now: string, counted?: Counted): Promise<void> {
  if (task.state === 'queued') {
    await deps.queue.send(runMessage(task));
    return;
  }
  if (!isTerminalTaskState(task.state)) return;
  const aggregate = () => deps.queue.send({ type: 'aggregate', jobId: task.jobId });
  switch (task.kind) {
    case 'plan':
      if (task.state === 'succeeded') await startPlannedJob(deps, task, now);
      else await aggregate();
      break;
    case 'source':
      if (task.state === 'succeeded') await releaseWaitingTasks(deps, task.jobId, now);
      else await aggregate();
      break;
    case 'work':
      if (task.state !== 'cancelled') await countFinishedWork(deps, task, now, counted);
      break;
    case 'merge':
    case 'push':
      if (task.state !== 'cancelled') await nextStepOrAggregate(deps, task.jobId, now);
      break;
  }
  // Only now has the job taken this task's end into account: the sweep may stop watching it.
  await deps.tasks.leaveActiveIndex(task.jobId, task.taskNo);
}

async function countFinishedWork(
  deps: Deps,
  task: TaskRecord,
  now: string,
  counted?: Counted,
): Promise<void> {
  const { job, firstTime } = counted ?? (await deps.jobs.markTaskFinished(task.jobId, task.taskNo, now));
  const complete = job.totalTasks > 0 && job.finishedTasks.length >= job.totalTasks;
  // On a replay we cannot know whether the first call sent it; every next step is idempotent.
  if (complete && (firstTime || job.status === 'running'))
    await nextStepOrAggregate(deps, job.jobId, now, job, counted?.early);
}

/**
 * Every work task is final: a repository job merges its workers' commits, then
 * pushes the branch when wanted; anything else (or a job with nothing to
 * merge) is aggregated. A step that already exists is only sent again.
 */
export async function nextStepOrAggregate(
  deps: Deps,
  jobId: string,
  now: string,
  known?: JobRecord,
  early?: Promise<TaskRecord[]>,
): Promise<void> {
  const job = known ?? (await deps.jobs.getJob(jobId));
  if (!job?.source?.baseCommit) {
    await aggregate(deps, jobId, job, early);
    return;
  }
  const tasks = await deps.tasks.listTasks(jobId);
  const merge = findStep(tasks, 'merge');
  if (commitsToMerge(tasks).length > 0 && !merge) {
    await startStep(deps, job, 'merge', now);
    return;
  }
  if (merge && !isTerminalTaskState(merge.state)) {
    if (merge.state === 'queued') await deps.queue.send(runMessage(merge));
    return;
  }
  const push = findStep(tasks, 'push');
  if (pushWanted(job, mergeResultOf(tasks)) && (!push || !isTerminalTaskState(push.state))) {
    if (!push) await startStep(deps, job, 'push', now);
    else if (push.state === 'queued') await deps.queue.send(runMessage(push));
    return;
  }
  await deps.queue.send({ type: 'aggregate', jobId });
}

async function startStep(deps: Deps, job: JobRecord, kind: 'merge' | 'push', now: string): Promise<void> {
  await deps.tasks.putTasks([stepTask(job, kind, now)]);
  // A replay may find the step already past its first attempt: the claim drops a stale message.
  await deps.queue.send({ type: 'run', jobId: job.jobId, taskNo: STEP_TASK_NO[kind], attempt: 1 });
  deps.log.info(`${kind} step started`, { jobId: job.jobId });
}

/** The most tasks a job may have for its reports to be written by the request that finished it. */
export const INLINE_AGGREGATE_MAX_TASKS = 20;

/**
 * A small root job without children is aggregated here and now: its reports
 * take tens of milliseconds, and the queue's round trip (send, receive,
 * delete, and the job read again) would cost more than the work. Anything
 * else, or an inline attempt that fails, goes through the queue, which
 * retries. A crash in between leaves the task in the sweep's index (it leaves
 * only after this), so the sweep redoes the follow-up and queues it.
 */
async function aggregate(
  deps: Deps,
  jobId: string,
  job: JobRecord | undefined,
  early?: Promise<TaskRecord[]>,
): Promise<void> {
  if (deps.aggregateInline && job && aggregatesInline(deps, job)) {
    try {
      const outcome = await deps.aggregateInline(deps, jobId, job, early);
      if (outcome === 'aggregated' || outcome === 'already_final') return;
    } catch (err) {
      deps.log.warn('inline aggregation failed; queued instead', { jobId, error: (err as Error).message });
    }
  }
  await deps.queue.send({ type: 'aggregate', jobId });
}

/** Whether this process writes `job`'s reports in the request that finishes it. */
function aggregatesInline(deps: Deps, job: JobRecord): boolean {
  return (
    deps.aggregateInline !== undefined &&
    job.depth === 0 &&
    !job.hasChildren &&
    job.totalTasks <= INLINE_AGGREGATE_MAX_TASKS
  );
}

/** The repository is fetched: the planner or work tasks that waited for it are queued (safe to repeat). */
async function releaseWaitingTasks(deps: Deps, jobId: string, now: string): Promise<void> {
  const tasks = await deps.tasks.listTasks(jobId);
  const released = await Promise.all(
    tasks.filter((t) => t.state === 'pending').map((t) => deps.tasks.releasePending(jobId, t.taskNo, now)),
  );
  const queued = [
    ...released.filter((t): t is TaskRecord => t !== undefined),
    // A replay after a crash between the release and the send finds them already queued.
    ...tasks.filter((t) => t.state === 'queued' && t.attempt === 1 && t.kind !== 'source'),
  ];
  await deps.queue.sendAll(queued.map(runMessage));
}
