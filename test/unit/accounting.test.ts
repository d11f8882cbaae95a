/**
 * The accounting rules, written once in functions/core/accounting.ts and
 * functions/core/task-states.ts: what a task and a set of tasks cost, how many
 * attempts a task made, which states are successful and which are live. Every
 * place that reports these numbers (result.json, the reports, the performance
 * section, a parent's child_results, the aggregator's log) must say the same.
 */
import { describe, expect, it } from 'vitest';
import { attemptsMade, tasksCostUsd, taskUsage } from '../../functions/core/accounting.ts';
import { childResultsOf } from '../../functions/core/recursion-policy.ts';
import { buildTreeResult } from '../../functions/core/result-format.ts';
import {
  isLiveAttempt,
  isLiveTaskState,
  isSuccessfulTaskState,
  TASK_STATES,
} from '../../functions/core/task-states.ts';
import { makeAttempt, makeJob, makeResult, makeTask, T0 } from '../support/records.ts';

const ctx = { bucket: 'artifacts', now: '2025-03-01T10:05:00.000Z' };

/** A task that failed `failedCosts.length` times, then succeeded for `lastCost`: its result is the last attempt's. */
function retried(taskNo: number, failedCosts: number[], lastCost: number) {
  const attempt = failedCosts.length + 1;
  return makeTask(taskNo, {
    attempt,
    result: makeResult({ costUsd: lastCost, durationMs: 1_000 }),
    attempts: [
      ...failedCosts.map((costUsd, i) => makeAttempt(i + 1, { state: 'failed', costUsd, durationMs: 500 })),
      makeAttempt(attempt, { costUsd: lastCost, durationMs: 1_000 }),
    ],
  });
}

describe('the cost of a task: every attempt it made', () => {
  it('counts retried and failed attempts, not only the latest result', () => {
    const task = retried(1, [0.02, 0.03], 0.01);
    expect(taskUsage(task)).toEqual({ costUsd: 0.06, durationMs: 2_000 });
  });

  it('adds the current attempt’s result while no record holds it yet', () => {
    const task = makeTask(1, {
      state: 'succeeded',
      attempt: 2,
      result: makeResult({ costUsd: 0.04, durationMs: 3_000 }),
      attempts: [makeAttempt(1, { state: 'failed', costUsd: 0.01, durationMs: 500 })],
    });
    expect(taskUsage(task)).toEqual({ costUsd: 0.05, durationMs: 3_500 });
  });

  it('never counts an earlier attempt’s result twice: queued for a retry, or a record without a cost', () => {
    const requeued = makeTask(1, {
      state: 'queued',
      attempt: 2,
      result: makeResult({ costUsd: 0.04 }),
      attempts: [makeAttempt(1, { state: 'failed', costUsd: 0.04 })],
    });
    expect(taskUsage(requeued).costUsd).toBe(0.04);
    const crashed = makeTask(1, {
      state: 'failed',
      attempt: 2,
      result: makeResult({ costUsd: 0.04 }),
      attempts: [makeAttempt(1, { state: 'failed', costUsd: 0.04 }), makeAttempt(2, { state: 'failed' })],
    });
    expect(taskUsage(crashed).costUsd).toBe(0.04);
  });

  it('counts what the model gateway metered for an attempt still running', () => {
    const task = makeTask(1, {
      state: 'running',
      attempt: 2,
      attempts: [makeAttempt(1, { state: 'failed', costUsd: 0.01 })],
      meter: { attempt: 2, limitUsd: 1, committedUsd: 0.5, meteredUsd: 0.02, requests: 3, open: {} },
    });
    expect(taskUsage(task).costUsd).toBe(0.03);
  });
});

describe('the cost of a set of tasks', () => {
  const planner = retried(0, [0.004], 0.006);
  const work = retried(1, [0.02], 0.01);
  const merge = makeTask(9002, { kind: 'merge', attempts: [makeAttempt(1, { costUsd: 0.003 })] });
  const tasks = [planner, work, merge];

  it('is every attempt of every task, planners and steps included', () => {
    expect(tasksCostUsd(tasks)).toBe(0.043);
    // The rule it replaces (the aggregator's log): the latest result of each task, which left out the retries.
    const latestResults = tasks.reduce((sum, t) => sum + (t.result?.costUsd ?? 0), 0);
    expect(tasksCostUsd(tasks)).toBeGreaterThan(latestResults);
  });

  it('is what a parent keeps of its child job, and what result.json totals for that job', () => {
    const job = makeJob({ source: { kind: 'bundle', bundles: ['b'], baseCommit: 'a'.repeat(40) } });
    expect(childResultsOf(tasks, 'completed').costUsd).toBe(tasksCostUsd(tasks));
    expect(buildTreeResult([{ job, tasks }], ctx).cost.total_usd).toBe(tasksCostUsd(tasks));
  });
});

describe('attempts made', () => {
  it('counts the attempt a task is on once it has launched', () => {
    for (const state of ['launching', 'running', 'succeeded', 'failed', 'timed_out'] as const)
      expect(attemptsMade(makeTask(1, { state, attempt: 3 }))).toBe(3);
  });

  it('leaves out an attempt not started yet', () => {
    expect(attemptsMade(makeTask(1, { state: 'queued', attempt: 3 }))).toBe(2);
    expect(attemptsMade(makeTask(1, { state: 'pending', attempt: 1 }))).toBe(0);
  });

  it('counts a cancelled attempt only if it had started', () => {
    const ended = [makeAttempt(1, { state: 'failed', finishedAt: '2025-03-01T10:01:00.000Z' })];
    const before = makeTask(1, { state: 'cancelled', attempt: 2, attempts: ended });
    const during = { ...before, startedAt: '2025-03-01T10:02:00.000Z' };
    expect(attemptsMade(before)).toBe(1);
    expect(attemptsMade(during)).toBe(2);
  });

  it('is the same number in the workers table and in the performance section', () => {
    const job = makeJob({ status: 'running', finishedAt: undefined });
    const launching = makeTask(1, {
      state: 'launching',
      attempt: 2,
      launchedAt: '2025-03-01T10:02:00.000Z',
      attempts: [makeAttempt(1, { state: 'failed', startedAt: T0, finishedAt: '2025-03-01T10:01:00.000Z' })],
    });
    const result = buildTreeResult([{ job, tasks: [launching] }], ctx);
    expect(result.results.tasks[0]?.attempts).toBe(2);
    expect(result.performance?.resources[0]?.attempts).toBe(2);
    expect(result.performance?.cost_by_depth[0]?.attempts).toBe(2);
  });
});

describe('state predicates', () => {
  it('successful: succeeded, or recursive_success through a child job', () => {
    expect(TASK_STATES.filter(isSuccessfulTaskState)).toEqual(['succeeded', 'recursive_success']);
  });

  it('live: launching or running', () => {
    expect(TASK_STATES.filter(isLiveTaskState)).toEqual(['launching', 'running']);
  });

  it('a live attempt is the task’s current one, in a live state', () => {
    expect(isLiveAttempt({ attempt: 2, state: 'running' }, 2)).toBe(true);
    expect(isLiveAttempt({ attempt: 2, state: 'launching' }, 2)).toBe(true);
    expect(isLiveAttempt({ attempt: 2, state: 'running' }, 1)).toBe(false);
    expect(isLiveAttempt({ attempt: 2, state: 'waiting_on_child' }, 2)).toBe(false);
  });
});
