/**
 * The task and job state machines of the architecture page. Every store write
 * names the state it expects to find, so these tables are the only place that
 * decides which moves are legal.
 */

export const TASK_STATES = [
  'pending',
  'queued',
  'launching',
  'running',
  'waiting_on_child',
  'succeeded',
  'recursive_success',
  'failed',
  'timed_out',
  'cancelled',
] as const;
export type TaskState = (typeof TASK_STATES)[number];

/** States a task never leaves, except failed/timed_out through an explicit retry. */
export const TERMINAL_TASK_STATES: ReadonlySet<TaskState> = new Set([
  'succeeded',
  'recursive_success',
  'failed',
  'timed_out',
  'cancelled',
]);

const TASK_TRANSITIONS: Readonly<Record<TaskState, readonly TaskState[]>> = {
  // pending: waits for an earlier step of its job (fetching the repository) before it may be queued.
  pending: ['queued', 'cancelled'],
  // queued -> failed: its work message reached the dead-letter queue, so it can never start.
  queued: ['launching', 'failed', 'cancelled'],
  // launching -> queued: the launcher refused (capacity, throttling); nothing started, same attempt.
  launching: ['running', 'queued', 'failed', 'cancelled'],
  running: ['succeeded', 'failed', 'timed_out', 'waiting_on_child', 'cancelled'],
  waiting_on_child: ['recursive_success', 'failed', 'cancelled'],
  succeeded: [],
  recursive_success: [],
  // Only a retry leaves these, and it must increment the attempt (see nextAfterFailure).
  failed: ['queued'],
  timed_out: ['queued'],
  cancelled: [],
};

export function isTerminalTaskState(state: TaskState): boolean {
  return TERMINAL_TASK_STATES.has(state);
}

/** The states of a task that did its work: itself (`succeeded`) or through its child job (`recursive_success`). */
export const SUCCESSFUL_TASK_STATES: ReadonlySet<TaskState> = new Set(['succeeded', 'recursive_success']);

export function isSuccessfulTaskState(state: TaskState): boolean {
  return SUCCESSFUL_TASK_STATES.has(state);
}

/**
 * The states of a live attempt: launched and not ended. It holds a running
 * slot, its container may be up, and its worker's token acts for it.
 */
export const LIVE_TASK_STATES = ['launching', 'running'] as const satisfies readonly TaskState[];

export function isLiveTaskState(state: TaskState): state is (typeof LIVE_TASK_STATES)[number] {
  return (LIVE_TASK_STATES as readonly TaskState[]).includes(state);
}

/** Whether `attempt` is the task's current attempt and that attempt is live. */
export function isLiveAttempt(task: { attempt: number; state: TaskState }, attempt: number): boolean {
  return task.attempt === attempt && isLiveTaskState(task.state);
}

export function canTransitionTask(from: TaskState, to: TaskState): boolean {
  return TASK_TRANSITIONS[from].includes(to);
}

export class IllegalTransitionError extends Error {
  constructor(
    readonly entity: 'task' | 'job',
    readonly from: string,
    readonly to: string,
  ) {
    super(`illegal ${entity} transition ${from} -> ${to}`);
    this.name = 'IllegalTransitionError';
  }
}

/** Throws unless `from -> to` is an allowed task transition; returns `to` for chaining. */
export function assertTaskTransition(from: TaskState, to: TaskState): TaskState {
  if (!canTransitionTask(from, to)) throw new IllegalTransitionError('task', from, to);
  return to;
}

export interface AttemptOutcome {
  /** The state the failed attempt ended in. */
  state: 'failed' | 'timed_out';
  attempt: number;
  maxRetries: number;
}

/**
 * Decides what follows a failed attempt: another attempt (queued, attempt+1)
 * while retries remain, else the failure is final. `attempt` counts from 1, so
 * a task with max_retries R runs at most R+1 times.
 */
export function nextAfterFailure(outcome: AttemptOutcome): {
  state: TaskState;
  attempt: number;
  retry: boolean;
} {
  assertTaskTransition('running', outcome.state);
  if (outcome.attempt <= outcome.maxRetries) {
    assertTaskTransition(outcome.state, 'queued');
    return { state: 'queued', attempt: outcome.attempt + 1, retry: true };
  }
  return { state: outcome.state, attempt: outcome.attempt, retry: false };
}

/** A retry gets 1.5 times the time of the attempt before it (a day at most): the work may simply need longer. */
export function retryTimeoutSec(currentSec: number): number {
  return Math.min(86_400, Math.ceil(currentSec * 1.5));
}

export const JOB_STATUSES = ['planning', 'running', 'completed', 'partial', 'failed', 'cancelled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

const JOB_TRANSITIONS: Readonly<Record<JobStatus, readonly JobStatus[]>> = {
  // planning -> failed: the planner failed after its retries, so there is nothing to run.
  planning: ['running', 'failed', 'cancelled'],
  running: ['completed', 'partial', 'failed', 'cancelled'],
  completed: [],
  partial: [],
  failed: [],
  cancelled: [],
};

export function isTerminalJobStatus(status: JobStatus): boolean {
  return JOB_TRANSITIONS[status].length === 0;
}

export function canTransitionJob(from: JobStatus, to: JobStatus): boolean {
  return JOB_TRANSITIONS[from].includes(to);
}

export function assertJobTransition(from: JobStatus, to: JobStatus): JobStatus {
  if (!canTransitionJob(from, to)) throw new IllegalTransitionError('job', from, to);
  return to;
}

/** The job's final status from its tasks' final states: all good, some good, none good. */
export function finalJobStatus(states: readonly TaskState[]): 'completed' | 'partial' | 'failed' {
  const good = states.filter(isSuccessfulTaskState).length;
  if (states.length > 0 && good === states.length) return 'completed';
  return good > 0 ? 'partial' : 'failed';
}
