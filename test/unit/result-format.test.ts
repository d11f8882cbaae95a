import { describe, expect, it } from 'vitest';
import type { TaskRecord } from '../../functions/core/model.ts';
import {
  buildTreeResult,
  countTasksByState,
  type ResultContext,
} from '../../functions/core/result-format.ts';
import { makeAttempt, makeJob, makeResult, makeTask } from '../support/records.ts';

const ctx: ResultContext = { bucket: 'artifacts', now: '2025-03-01T10:05:00.000Z' };

/** A task whose single attempt succeeded and was recorded. */
function succeededTask(taskNo: number, costUsd: number, numTurns: number, files: string[] = []): TaskRecord {
  return makeTask(taskNo, {
    startedAt: '2025-03-01T10:00:10.000Z',
    finishedAt: '2025-03-01T10:00:30.000Z',
    result: makeResult({ costUsd, numTurns, filesCreated: files, durationMs: 20_000 }),
    attempts: [makeAttempt(1, { costUsd, durationMs: 20_000 })],
  });
}

describe('buildTreeResult of one job', () => {
  it('reports a completed job with three workers, sorted, without the planner', () => {
    // Prepare
    const planner = makeTask(0, {
      result: makeResult({ costUsd: 0.002 }),
      attempts: [makeAttempt(1, { costUsd: 0.002 })],
    });
    const tasks = [
      succeededTask(3, 0.0125, 3),
      planner,
      succeededTask(1, 0.01, 5, ['index.html', 'css/site.css']),
      succeededTask(2, 0.02, 7),
    ];

    // Act
    const result = buildTreeResult([{ job: makeJob(), tasks }], {
      ...ctx,
      workspace: 's3://artifacts/jobs/job-a/',
    });

    // Assess
    expect(result.results.tasks.map((t) => t.worker_id)).toEqual(['worker_1', 'worker_2', 'worker_3']);
    const first = result.results.tasks[0];
    expect(first).toMatchObject({
      task_no: 1,
      title: 'Task 1',
      prompt: 'Do part 1',
      status: 'succeeded',
      attempts: 1,
      files_created: ['index.html', 'css/site.css'],
      files_prefix: 'jobs/job-a/depth_0/worker_1/',
      log_key: 'jobs/job-a/logs/depth_0_worker_1.log',
      num_turns: 5,
      cost_usd: 0.01,
      duration_ms: 20_000,
    });
    expect(first?.error).toBeUndefined();
    expect(result.results.summary).toEqual({
      total: 3,
      succeeded: 3,
      failed: 0,
      timed_out: 0,
      cancelled: 0,
      running: 0,
      total_cost_usd: 0.0425,
      total_turns: 15,
      total_duration_ms: 60_000,
      depths: 1,
      jobs: 1,
    });
    expect(result.planning).toEqual({ status: 'succeeded', attempts: 1, cost_usd: 0.002 });
    expect(result.status).toBe('completed');
    expect(result.wall_time_ms).toBe(65_000);
    expect(result.config).toEqual({
      max_workers: 5,
      default_timeout: 600,
      max_retries: 2,
      enable_recursion: false,
      max_recursion_depth: 2,
      max_budget_usd: 10,
    });
    expect(result.final_report).toBe('s3://artifacts/jobs/job-a/FINAL_RESULT.md');
    expect(result.result_json).toBe('s3://artifacts/jobs/job-a/result.json');
    expect(result.workspace).toBe('s3://artifacts/jobs/job-a/');
    expect(result).not.toHaveProperty('error');
  });

  it('keeps the reason of every attempt of a worker that failed after its retries', () => {
    // Prepare
    const failed = makeTask(2, {
      state: 'failed',
      attempt: 3,
      result: makeResult({ output: '', error: 'npm install failed', costUsd: 0.004, exitCode: 1 }),
      attempts: [
        makeAttempt(1, {
          state: 'failed',
          error: 'container exited with code 137 (OOM)',
          exitCode: 137,
          costUsd: 0.003,
        }),
        makeAttempt(2, {
          state: 'timed_out',
          error: 'timed out after 600s',
          durationMs: 600_000,
          costUsd: 0.005,
        }),
        makeAttempt(3, { state: 'failed', error: 'npm install failed', exitCode: 1, costUsd: 0.004 }),
      ],
    });
    const tasks = [succeededTask(1, 0.01, 5), failed];

    // Act
    const result = buildTreeResult([{ job: makeJob({ status: 'partial' }), tasks }], ctx);

    // Assess
    const view = result.results.tasks[1];
    expect(view?.status).toBe('failed');
    expect(view?.attempts).toBe(3);
    expect(view?.error).toBe('npm install failed');
    expect(view?.cost_usd).toBe(0.012);
    expect(view?.attempt_history).toEqual([
      {
        attempt: 1,
        status: 'failed',
        error: 'container exited with code 137 (OOM)',
        exit_code: 137,
        cost_usd: 0.003,
        finished_at: '2025-03-01T10:01:00.000Z',
        log_key: 'jobs/job-a/logs/depth_0_worker_2.log',
      },
      {
        attempt: 2,
        status: 'timed_out',
        error: 'timed out after 600s',
        duration_ms: 600_000,
        cost_usd: 0.005,
        finished_at: '2025-03-01T10:02:00.000Z',
        log_key: 'jobs/job-a/logs/depth_0_worker_2.attempt-2.log',
      },
      {
        attempt: 3,
        status: 'failed',
        error: 'npm install failed',
        exit_code: 1,
        cost_usd: 0.004,
        finished_at: '2025-03-01T10:03:00.000Z',
        log_key: 'jobs/job-a/logs/depth_0_worker_2.attempt-3.log',
      },
    ]);
    expect(result.results.summary).toMatchObject({
      total: 2,
      succeeded: 1,
      failed: 1,
      total_cost_usd: 0.022,
    });
  });

  it('reports a timed-out worker with a reason even when none was recorded', () => {
    // Prepare
    const timedOut = makeTask(1, {
      state: 'timed_out',
      attempt: 1,
      maxRetries: 0,
      timeoutSec: 300,
      attempts: [makeAttempt(1, { state: 'timed_out', durationMs: 300_000 })],
    });

    // Act
    const result = buildTreeResult([{ job: makeJob({ status: 'failed' }), tasks: [timedOut] }], ctx);

    // Assess
    expect(result.results.tasks[0]).toMatchObject({
      status: 'timed_out',
      attempts: 1,
      error: 'timed out after 300s',
      duration_ms: 300_000,
      cost_usd: 0,
    });
    expect(result.results.summary).toMatchObject({ total: 1, succeeded: 0, failed: 0, timed_out: 1 });
  });

  it('measures a running job until now and counts unfinished workers as running', () => {
    // Prepare
    const job = makeJob({ status: 'running', finishedAt: undefined, finishedTasks: [1] });
    const tasks = [
      succeededTask(1, 0.01, 5),
      makeTask(2, { state: 'running', startedAt: '2025-03-01T10:00:10.000Z' }),
      makeTask(3, { state: 'queued' }),
      makeTask(4, { state: 'launching' }),
      makeTask(5, { state: 'waiting_on_child', result: makeResult({ costUsd: 0.002, numTurns: 1 }) }),
    ];

    // Act
    const result = buildTreeResult([{ job, tasks }], ctx);

    // Assess
    expect(result.wall_time_ms).toBe(5 * 60_000);
    expect(result).not.toHaveProperty('finished_at');
    expect(result.results.summary).toMatchObject({
      total: 5,
      succeeded: 1,
      running: 4,
      total_cost_usd: 0.012,
    });
    expect(result.results.tasks.map((t) => t.attempts)).toEqual([1, 1, 0, 1, 1]);
    expect(result.results.tasks.every((t) => t.error === undefined)).toBe(true);
  });

  it('reports a job that failed at planning, with no workers and the job error', () => {
    // Prepare
    const job = makeJob({
      status: 'failed',
      totalTasks: 0,
      finishedTasks: [],
      error: 'planning failed: invalid JSON',
    });
    const planner = makeTask(0, {
      state: 'failed',
      attempt: 2,
      attempts: [
        makeAttempt(1, { state: 'failed', error: 'invalid JSON', costUsd: 0.001 }),
        makeAttempt(2, { state: 'failed', error: 'invalid JSON again', costUsd: 0.0015 }),
      ],
    });

    // Act
    const result = buildTreeResult([{ job, tasks: [planner] }], ctx);

    // Assess
    expect(result.results.tasks).toEqual([]);
    expect(result.results.summary).toMatchObject({ total: 0, succeeded: 0, failed: 0, total_cost_usd: 0 });
    expect(result.planning).toEqual({
      status: 'failed',
      attempts: 2,
      cost_usd: 0.0025,
      error: 'invalid JSON again',
    });
    expect(result.error).toBe('planning failed: invalid JSON');
  });

  describe('counting attempts and cost', () => {
    it('adds the latest result when its attempt has no record yet', () => {
      // Prepare
      const task = makeTask(1, { result: makeResult({ costUsd: 0.03, durationMs: 9_000 }), attempts: [] });

      // Act
      const view = buildTreeResult([{ job: makeJob(), tasks: [task] }], ctx).results.tasks[0];

      // Assess
      expect(view).toMatchObject({ attempts: 1, cost_usd: 0.03, duration_ms: 9_000 });
    });

    it('does not count a previous attempt’s result again while a retry waits in the queue', () => {
      // Prepare
      const task = makeTask(1, {
        state: 'queued',
        attempt: 2,
        result: makeResult({ costUsd: 0.02, error: 'crashed' }),
        attempts: [makeAttempt(1, { state: 'failed', error: 'crashed', costUsd: 0.02 })],
      });

      // Act
      const view = buildTreeResult([{ job: makeJob({ status: 'running' }), tasks: [task] }], ctx).results
        .tasks[0];

      // Assess
      expect(view).toMatchObject({ status: 'queued', attempts: 1, cost_usd: 0.02 });
      expect(view?.error).toBeUndefined();
      expect(view?.attempt_history[0]?.error).toBe('crashed');
    });

    it('adds a succeeded retry’s result to the failed attempt before it', () => {
      // Prepare
      const task = makeTask(1, {
        attempt: 2,
        result: makeResult({ costUsd: 0.03 }),
        attempts: [makeAttempt(1, { state: 'failed', error: 'exit 1', costUsd: 0.01 })],
      });

      // Act
      const view = buildTreeResult([{ job: makeJob(), tasks: [task] }], ctx).results.tasks[0];

      // Assess
      expect(view).toMatchObject({ attempts: 2, cost_usd: 0.04 });
      expect(view?.error).toBeUndefined();
    });

    it('counts no attempt for a worker cancelled before it started', () => {
      // Prepare
      const task = makeTask(1, { state: 'cancelled' });

      // Act
      const result = buildTreeResult([{ job: makeJob({ status: 'cancelled' }), tasks: [task] }], ctx);

      // Assess
      expect(result.results.tasks[0]).toMatchObject({ attempts: 0, cost_usd: 0, error: 'cancelled' });
      expect(result.results.summary).toMatchObject({ cancelled: 1, running: 0 });
    });

    it('counts a cancelled worker’s started attempt and its reported cost', () => {
      // Prepare
      const task = makeTask(1, {
        state: 'cancelled',
        startedAt: '2025-03-01T10:00:10.000Z',
        result: makeResult({ costUsd: 0.005 }),
      });

      // Act
      const view = buildTreeResult([{ job: makeJob({ status: 'cancelled' }), tasks: [task] }], ctx).results
        .tasks[0];

      // Assess
      expect(view).toMatchObject({ attempts: 1, cost_usd: 0.005 });
    });

    it('derives a failure reason from the exit code when none was given', () => {
      // Prepare
      const task = makeTask(1, {
        state: 'failed',
        attempts: [makeAttempt(1, { state: 'failed', exitCode: 2 })],
      });

      // Act
      const view = buildTreeResult([{ job: makeJob({ status: 'failed' }), tasks: [task] }], ctx).results
        .tasks[0];

      // Assess
      expect(view?.error).toBe('exited with code 2');
    });
  });
});

describe('countTasksByState', () => {
  it('counts work tasks in every state, zero-filled, without the planner', () => {
    // Prepare
    const tasks = [
      makeTask(0, { state: 'succeeded' }),
      makeTask(1, { state: 'succeeded' }),
      makeTask(2, { state: 'failed' }),
      makeTask(3, { state: 'failed' }),
      makeTask(4, { state: 'running' }),
    ];

    // Act
    const counts = countTasksByState(tasks);

    // Assess
    expect(counts).toEqual({
      pending: 0,
      queued: 0,
      launching: 0,
      running: 1,
      waiting_on_child: 0,
      succeeded: 1,
      recursive_success: 0,
      failed: 2,
      timed_out: 0,
      cancelled: 0,
    });
  });
});
