/**
 * The task and job state machines, checked pair by pair against a table written
 * here from docs/architecture.md ("Task states") rather than copied from the module.
 */
import { describe, expect, it } from 'vitest';
import {
  assertJobTransition,
  assertTaskTransition,
  canTransitionJob,
  canTransitionTask,
  finalJobStatus,
  IllegalTransitionError,
  isTerminalJobStatus,
  isTerminalTaskState,
  JOB_STATUSES,
  type JobStatus,
  nextAfterFailure,
  TASK_STATES,
  type TaskState,
} from '../../functions/core/task-states.ts';

const ALL_TASK_STATES: readonly TaskState[] = [
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
];

/**
 * `queued → launching → running → succeeded | failed | timed_out`,
 * `running → waiting_on_child → recursive_success | failed`,
 * any non-terminal state `→ cancelled`, `failed | timed_out → queued` (retry),
 * plus launching → queued (launch refused), → failed (worker lost before it started),
 * and queued → failed (its work message went to the dead-letter queue: it can never start),
 * and pending → queued | cancelled (a task waiting for its job's repository to be fetched).
 */
const ALLOWED_TASK_MOVES: readonly (readonly [TaskState, TaskState])[] = [
  ['queued', 'launching'],
  ['launching', 'running'],
  ['running', 'succeeded'],
  ['running', 'failed'],
  ['running', 'timed_out'],
  ['running', 'waiting_on_child'],
  ['waiting_on_child', 'recursive_success'],
  ['waiting_on_child', 'failed'],
  ['queued', 'cancelled'],
  ['queued', 'failed'],
  ['launching', 'cancelled'],
  ['running', 'cancelled'],
  ['waiting_on_child', 'cancelled'],
  ['failed', 'queued'],
  ['timed_out', 'queued'],
  ['launching', 'queued'],
  ['launching', 'failed'],
  ['pending', 'queued'],
  ['pending', 'cancelled'],
];

const ALL_JOB_STATUSES: readonly JobStatus[] = [
  'planning',
  'running',
  'completed',
  'partial',
  'failed',
  'cancelled',
];

const ALLOWED_JOB_MOVES: readonly (readonly [JobStatus, JobStatus])[] = [
  ['planning', 'running'],
  ['planning', 'failed'],
  ['planning', 'cancelled'],
  ['running', 'completed'],
  ['running', 'partial'],
  ['running', 'failed'],
  ['running', 'cancelled'],
];

function everyPair<S extends string>(states: readonly S[], allowed: readonly (readonly [S, S])[]) {
  const allowedKeys = new Set(allowed.map(([from, to]) => `${from}->${to}`));
  return states.flatMap((from) =>
    states.map((to) => ({ from, to, allowed: allowedKeys.has(`${from}->${to}`) })),
  );
}

describe('task state machine', () => {
  it('knows exactly the ten documented states', () => {
    expect([...TASK_STATES].sort()).toEqual([...ALL_TASK_STATES].sort());
  });

  const pairs = everyPair(ALL_TASK_STATES, ALLOWED_TASK_MOVES);

  it('covers all 100 (from, to) pairs, 19 of them allowed', () => {
    expect(pairs).toHaveLength(100);
    expect(pairs.filter((p) => p.allowed)).toHaveLength(ALLOWED_TASK_MOVES.length);
  });

  it.each(pairs.filter((p) => p.allowed))('allows $from -> $to', ({ from, to }) => {
    expect(canTransitionTask(from, to)).toBe(true);
    expect(assertTaskTransition(from, to)).toBe(to);
  });

  it.each(pairs.filter((p) => !p.allowed))('refuses $from -> $to', ({ from, to }) => {
    expect(canTransitionTask(from, to)).toBe(false);
    let thrown: unknown;
    try {
      assertTaskTransition(from, to);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(IllegalTransitionError);
    expect(thrown).toMatchObject({ entity: 'task', from, to, name: 'IllegalTransitionError' });
    expect((thrown as Error).message).toContain(`${from} -> ${to}`);
  });

  it('treats succeeded, recursive_success, failed, timed_out and cancelled as terminal', () => {
    const terminal = ALL_TASK_STATES.filter(isTerminalTaskState);
    expect(terminal.sort()).toEqual(['cancelled', 'failed', 'recursive_success', 'succeeded', 'timed_out']);
  });

  it('lets every non-terminal state be cancelled and no terminal state be cancelled again', () => {
    for (const state of ALL_TASK_STATES) {
      expect(canTransitionTask(state, 'cancelled')).toBe(!isTerminalTaskState(state));
    }
  });
});

describe('nextAfterFailure', () => {
  it('retries attempt 1 of a task with max_retries 2 as attempt 2', () => {
    expect(nextAfterFailure({ state: 'failed', attempt: 1, maxRetries: 2 })).toEqual({
      state: 'queued',
      attempt: 2,
      retry: true,
    });
  });

  it('still retries the last allowed retry (attempt 2 of max_retries 2 becomes attempt 3)', () => {
    expect(nextAfterFailure({ state: 'failed', attempt: 2, maxRetries: 2 })).toEqual({
      state: 'queued',
      attempt: 3,
      retry: true,
    });
  });

  it('keeps attempt 3 of max_retries 2 failed: a task runs at most max_retries + 1 times', () => {
    expect(nextAfterFailure({ state: 'failed', attempt: 3, maxRetries: 2 })).toEqual({
      state: 'failed',
      attempt: 3,
      retry: false,
    });
  });

  it('treats timed_out the same way, ending in timed_out when retries are spent', () => {
    expect(nextAfterFailure({ state: 'timed_out', attempt: 1, maxRetries: 2 })).toEqual({
      state: 'queued',
      attempt: 2,
      retry: true,
    });
    expect(nextAfterFailure({ state: 'timed_out', attempt: 3, maxRetries: 2 })).toEqual({
      state: 'timed_out',
      attempt: 3,
      retry: false,
    });
  });

  it('never retries with max_retries 0', () => {
    expect(nextAfterFailure({ state: 'failed', attempt: 1, maxRetries: 0 })).toEqual({
      state: 'failed',
      attempt: 1,
      retry: false,
    });
    expect(nextAfterFailure({ state: 'timed_out', attempt: 1, maxRetries: 0 })).toEqual({
      state: 'timed_out',
      attempt: 1,
      retry: false,
    });
  });
});

describe('job state machine', () => {
  it('knows exactly the six documented statuses', () => {
    expect([...JOB_STATUSES].sort()).toEqual([...ALL_JOB_STATUSES].sort());
  });

  const pairs = everyPair(ALL_JOB_STATUSES, ALLOWED_JOB_MOVES);

  it('covers all 36 (from, to) pairs', () => {
    expect(pairs).toHaveLength(36);
  });

  it.each(pairs.filter((p) => p.allowed))('allows $from -> $to', ({ from, to }) => {
    expect(canTransitionJob(from, to)).toBe(true);
    expect(assertJobTransition(from, to)).toBe(to);
  });

  it.each(pairs.filter((p) => !p.allowed))('refuses $from -> $to', ({ from, to }) => {
    expect(canTransitionJob(from, to)).toBe(false);
    expect(() => assertJobTransition(from, to)).toThrow(IllegalTransitionError);
    expect(() => assertJobTransition(from, to)).toThrow(`illegal job transition ${from} -> ${to}`);
  });

  it('treats completed, partial, failed and cancelled as terminal', () => {
    expect(ALL_JOB_STATUSES.filter(isTerminalJobStatus).sort()).toEqual([
      'cancelled',
      'completed',
      'failed',
      'partial',
    ]);
  });
});

describe('finalJobStatus', () => {
  it('is completed when every task succeeded, directly or through a child job', () => {
    expect(finalJobStatus(['succeeded', 'succeeded'])).toBe('completed');
    expect(finalJobStatus(['succeeded', 'recursive_success'])).toBe('completed');
    expect(finalJobStatus(['recursive_success'])).toBe('completed');
  });

  it('is partial when some tasks succeeded and others did not', () => {
    expect(finalJobStatus(['succeeded', 'failed'])).toBe('partial');
    expect(finalJobStatus(['recursive_success', 'timed_out', 'cancelled'])).toBe('partial');
  });

  it('is failed when no task succeeded', () => {
    expect(finalJobStatus(['failed', 'timed_out', 'cancelled'])).toBe('failed');
    expect(finalJobStatus(['failed'])).toBe('failed');
  });

  it('is failed for a job without tasks', () => {
    expect(finalJobStatus([])).toBe('failed');
  });
});

describe('retryTimeoutSec', () => {
  it('gives a retry 1.5 times the previous timeout, rounded up, at most a day', async () => {
    const { retryTimeoutSec } = await import('../../functions/core/task-states.ts');
    expect(retryTimeoutSec(600)).toBe(900);
    expect(retryTimeoutSec(7)).toBe(11);
    expect(retryTimeoutSec(80_000)).toBe(86_400);
  });
});
