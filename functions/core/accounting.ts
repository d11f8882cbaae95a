/**
 * What a task cost, how long it ran and how many attempts it made: the one
 * place these rules are written, so that result.json, FINAL_RESULT.md and
 * the level reports, REPORT.html, the performance section, a parent task's
 * `child_results` and the aggregator's `job finished` log all say the same.
 * Pure. (Which states count as successful or live is in task-states.ts.)
 *
 * - **Attempts made**: a task's `attempt` is the attempt it is on. In
 *   `pending` or `queued` that attempt has not started yet, so it counts
 *   `attempt - 1`. A `cancelled` task counts its current attempt only if that
 *   attempt had started (see `currentAttemptStarted`); otherwise the attempts
 *   that ended. Every other state counts `attempt`.
 * - **Cost and duration** (what the task really spent): each record in
 *   `task.attempts` is one ended attempt, retried, failed and timed-out ones
 *   included, so its `costUsd`/`durationMs` are summed. `task.result` is the
 *   latest report; it is added on top only when it belongs to the current
 *   attempt and that attempt has no record yet (e.g. `waiting_on_child`, or a
 *   writer that stored the result before appending the record). It belongs to
 *   the current attempt when the state is one a worker's report leads to
 *   (succeeded, recursive_success, waiting_on_child, failed, timed_out), or
 *   when a cancelled task's current attempt had started. In `queued`,
 *   `launching` and `running` any result is an earlier attempt's, already
 *   counted through its record. A record for the current attempt is
 *   authoritative even without a cost (a crashed container reports none), so
 *   a stale result is never counted twice. An attempt the model gateway
 *   meters and that has not ended counts what the gateway metered so far.
 * - **A set of tasks** (a job, a tree) costs the sum of its tasks, whatever
 *   their kind: the planner, the work tasks (their decide runs included) and
 *   the steps (fetching, merging with its conflict sessions, pushing).
 *   Never only the latest result of each task: that would leave out every
 *   retried attempt.
 */
import type { AttemptRecord, TaskRecord } from './model.ts';
import type { TaskState } from './task-states.ts';

/** States the current attempt reaches through its worker's own report. */
const REPORTED_STATES: ReadonlySet<TaskState> = new Set([
  'succeeded',
  'recursive_success',
  'waiting_on_child',
  'failed',
  'timed_out',
]);

export interface TaskUsage {
  costUsd: number;
  durationMs: number;
}

/** What the task spent over all its attempts, and how long they ran (see the module comment). */
export function taskUsage(task: TaskRecord): TaskUsage {
  let costUsd = 0;
  let durationMs = 0;
  for (const record of task.attempts) {
    costUsd += record.costUsd ?? 0;
    durationMs += record.durationMs ?? 0;
  }
  if (task.result !== undefined && resultIsUnrecorded(task)) {
    costUsd += task.result.costUsd;
    durationMs += task.result.durationMs;
  } else if (task.meter?.attempt === task.attempt && !task.attempts.some((a) => a.attempt === task.attempt)) {
    // An attempt the model gateway meters and that has not ended (running, or cancelled): what it spent so far.
    costUsd += task.meter.meteredUsd;
  }
  return { costUsd: roundUsd(costUsd), durationMs };
}

/** What a set of tasks spent: every attempt of every task, planners and steps included. */
export function tasksCostUsd(tasks: readonly TaskRecord[]): number {
  return roundUsd(tasks.reduce((sum, t) => sum + taskUsage(t).costUsd, 0));
}

/** What the worker said its metered attempts cost (the gateway's figure is `costUsd`); absent when none was metered. */
export function reportedCostUsd(task: TaskRecord): number | undefined {
  const reported = task.attempts.filter((a) => a.reportedCostUsd !== undefined);
  if (reported.length === 0) return undefined;
  return roundUsd(reported.reduce((sum, a) => sum + (a.reportedCostUsd ?? 0), 0));
}

/** How many attempts the task made (see the module comment). */
export function attemptsMade(task: TaskRecord): number {
  if (task.state === 'queued' || task.state === 'pending') return Math.max(0, task.attempt - 1);
  if (task.state === 'cancelled') {
    if (recordOfCurrentAttempt(task) !== undefined || currentAttemptStarted(task)) return task.attempt;
    return task.attempts.reduce((max, a) => Math.max(max, a.attempt), 0);
  }
  return task.attempt;
}

/** The record of the attempt the task is on, once that attempt has ended. */
export function recordOfCurrentAttempt(task: TaskRecord): AttemptRecord | undefined {
  return task.attempts.find((a) => a.attempt >= task.attempt);
}

/** Rounds to a millionth of a dollar, so sums of floats print cleanly in JSON. */
export function roundUsd(usd: number): number {
  return Math.round(usd * 1e6) / 1e6;
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
