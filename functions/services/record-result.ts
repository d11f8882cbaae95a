/**
 * A worker's attempt ended: record it, then take the steps that follow (retry,
 * count the task as finished, create the planned tasks, enqueue aggregation).
 * Every step is idempotent, so a worker that retries its POST after a crash
 * on our side completes whatever the first call left undone.
 */
import { conflict, forbidden } from '../core/errors.ts';
import type { AttemptRecord, TaskRecord, TaskResultSummary, WorkerOutcome } from '../core/model.ts';
import { parsePlan } from '../core/planner.ts';
import { tasksRefusal } from '../core/recursion-policy.ts';
import {
  canTransitionTask,
  isTerminalTaskState,
  nextAfterFailure,
  retryTimeoutSec,
  type TaskState,
} from '../core/task-states.ts';
import type { Deps } from './deps.ts';
import { runMessage, workTasks } from './submit-job.ts';

export type RecordOutcome = 'recorded' | 'replayed' | 'late';

export async function recordWorkerResult(
  deps: Deps,
  task: TaskRecord,
  outcome: WorkerOutcome,
): Promise<{ outcome: RecordOutcome; task: TaskRecord }> {
  const now = deps.now().toISOString();
  const alreadyRecorded = task.attempts.some((a) => a.attempt === outcome.attempt);
  if (alreadyRecorded) {
    await followUp(deps, task, now);
    return { outcome: 'replayed', task };
  }
  if (task.state === 'cancelled' && task.attempt === outcome.attempt) {
    // The job was cancelled while this worker ran: keep what it said, change nothing.
    await deps.tree.recordLateResult(task.jobId, task.taskNo, summarize(deps, outcome));
    deps.log.info('late result after cancel recorded', {
      jobId: task.jobId,
      taskNo: task.taskNo,
      attempt: outcome.attempt,
    });
    return { outcome: 'late', task };
  }
  if (task.attempt !== outcome.attempt || !['launching', 'running'].includes(task.state)) {
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

  let verdict = outcome;
  if (task.kind === 'plan' && outcome.status === 'succeeded')
    verdict = await admitPlan(deps, task, outcome, now);
  // The planned tasks exist before the planner is marked succeeded, so a replay after a lost
  // response (or a crash) only has to start them: see startPlannedJob.
  if (task.kind === 'plan' && verdict.status === 'succeeded')
    await putPlannedTasks(deps, task, outcome.structuredOutput, now);

  const ended = await endAttempt(deps, task, verdict, now);
  if (!ended) {
    // Someone else moved the task between our read and write (e.g. a duplicate POST).
    const fresh = await deps.store.getTask(task.jobId, task.taskNo);
    if (fresh?.attempts.some((a) => a.attempt === outcome.attempt)) {
      await followUp(deps, fresh, now);
      return { outcome: 'replayed', task: fresh };
    }
    throw conflict(`task ${task.taskNo} changed while its result was being recorded`);
  }
  // Independent steps after the final write: the spend settles while the job counts the task.
  await Promise.all([settleAttemptSpend(deps, task, verdict.costUsd), followUp(deps, ended, now)]);
  return { outcome: 'recorded', task: ended };
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
  const job = await deps.store.getJob(task.jobId);
  if (!job) return { ...outcome, status: 'failed', error: 'the job is gone', retryable: false };
  const plan = parsePlan(outcome.structuredOutput, job.config.maxWorkers);
  if (!plan.ok) return { ...outcome, status: 'failed', error: plan.reason, retryable: true };
  const count = plan.subtasks.length;
  if (job.depth > 0) {
    const unused = job.config.maxWorkers - count;
    if (unused > 0) await deps.tree.releaseTasks(job.rootJobId, unused);
    return outcome;
  }
  if (await deps.tree.reserveTasks(job, count, now)) return outcome;
  const fresh = (await deps.store.getJob(job.jobId)) ?? job;
  return { ...outcome, status: 'failed', error: tasksRefusal(fresh, count).message, retryable: false };
}

/** The attempt's spend reservation on the root becomes its reported cost. */
async function settleAttemptSpend(deps: Deps, task: TaskRecord, costUsd: number): Promise<void> {
  const reserved = task.budgetAttempt === task.attempt ? (task.budgetUsd ?? 0) : 0;
  if (reserved === 0 && costUsd === 0) return;
  await deps.tree.settleSpend(task.rootJobId, reserved, costUsd);
}

function summarize(deps: Deps, outcome: WorkerOutcome): TaskResultSummary {
  const maxChars = deps.settings.limits.maxOutputChars;
  return {
    output: outcome.output.slice(0, maxChars),
    outputTruncated: outcome.output.length > maxChars,
    filesCreated: outcome.filesCreated,
    costUsd: outcome.costUsd,
    numTurns: outcome.numTurns,
    durationMs: outcome.durationMs,
    sessionId: outcome.sessionId,
    error: outcome.error,
    exitCode: outcome.exitCode,
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
): Promise<TaskRecord | undefined> {
  // Copy the ids only: the launch request also carries the task token, which must never be logged.
  const scope = { jobId: lost.jobId, taskNo: lost.taskNo, attempt: lost.attempt };
  const task = await deps.store.getTask(scope.jobId, scope.taskNo);
  if (!task || task.attempt !== scope.attempt || !['launching', 'running'].includes(task.state))
    return undefined;
  const ended = await endAttempt(
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
    deps.now().toISOString(),
  );
  if (!ended) {
    // Lost response or a concurrent writer: if this attempt did end, finish what follows it.
    const fresh = await deps.store.getTask(scope.jobId, scope.taskNo);
    if (fresh?.attempts.some((a) => a.attempt === scope.attempt))
      await followUp(deps, fresh, deps.now().toISOString());
    return undefined;
  }
  await settleAttemptSpend(deps, task, 0);
  deps.log.warn('worker stopped without a result', { ...scope, reason, next: ended.state });
  await followUp(deps, ended, deps.now().toISOString());
  return ended;
}

async function endAttempt(deps: Deps, task: TaskRecord, outcome: WorkerOutcome, now: string) {
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
    finishedAt: now,
  };
  const result = summarize(deps, outcome);
  // A worker reports from `running`; a worker lost before fetching its assignment is still `launching`.
  const from = (['launching', 'running'] as const).filter((s) => canTransitionTask(s, record.state));
  const ended = await deps.store.endAttempt(
    task.jobId,
    task.taskNo,
    task.attempt,
    from,
    { ...next, timeoutSec },
    record,
    result,
    now,
  );
  // The container is gone (or never came): its running slot goes back.
  if (ended) await deps.slots.release(task.jobId);
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
  const job = await deps.store.getJob(planner.jobId);
  if (!job) return;
  const plan = parsePlan(structuredOutput, job.config.maxWorkers);
  if (!plan.ok) return;
  await deps.store.putTasks(workTasks(job, plan.subtasks, now));
}

/** Planner succeeded: the job starts running with the planned tasks (safe to repeat). */
async function startPlannedJob(deps: Deps, planner: TaskRecord, now: string): Promise<void> {
  const tasks = (await deps.store.listTasks(planner.jobId)).filter((t) => t.kind === 'work');
  const job = await deps.store.getJob(planner.jobId);
  if (job?.status === 'planning' && tasks.length > 0) {
    await deps.store.transitionJob(job.jobId, 'planning', 'running', now, { totalTasks: tasks.length });
  }
  await deps.queue.sendAll(tasks.filter((t) => t.state === 'queued').map(runMessage));
}

/**
 * The steps after an attempt is recorded, each safe to repeat:
 * retry -> send the next attempt; planner done -> send the planned tasks;
 * work task final -> add it to the finished set, and the write that completes
 * the set sends the one aggregate message.
 */
export async function followUp(deps: Deps, task: TaskRecord, now: string): Promise<void> {
  if (task.state === 'queued') {
    await deps.queue.send(runMessage(task));
    return;
  }
  if (!isTerminalTaskState(task.state)) return;
  if (task.kind === 'plan') {
    if (task.state === 'succeeded') await startPlannedJob(deps, task, now);
    else await deps.queue.send({ type: 'aggregate', jobId: task.jobId });
  } else if (task.state !== 'cancelled') {
    const { job, firstTime } = await deps.store.markTaskFinished(task.jobId, task.taskNo, now);
    const complete = job.totalTasks > 0 && job.finishedTasks.length >= job.totalTasks;
    // On a replay we cannot know whether the first call sent it; the aggregator is idempotent.
    if (complete && (firstTime || job.status === 'running')) {
      await deps.queue.send({ type: 'aggregate', jobId: task.jobId });
    }
  }
  // Only now has the job taken this task's end into account: the sweep may stop watching it.
  await deps.store.leaveActiveIndex(task.jobId, task.taskNo);
}
