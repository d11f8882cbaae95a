import { describe, expect, it } from 'vitest';
import type { AttemptRecord, JobRecord, TaskRecord } from '../../functions/core/model.ts';
import {
  buildPerformance,
  ganttChart,
  type PerformanceNode,
  type PerformanceView,
} from '../../functions/core/performance.ts';
import { renderTreeReports } from '../../functions/core/reports.ts';
import { buildTreeResult } from '../../functions/core/result-format.ts';

const ORIGIN = Date.parse('2025-05-01T12:00:00.000Z');
/** An instant `s` seconds after the root job was created. */
const at = (s: number) => new Date(ORIGIN + s * 1000).toISOString();
const ROOT = 'job-root';

function job(jobId: string, overrides: Partial<JobRecord> = {}): JobRecord {
  return {
    jobId,
    tenant: 't',
    status: 'completed',
    request: 'r',
    config: {
      maxWorkers: 2,
      defaultTimeoutSec: 600,
      maxRetries: 2,
      enableRecursion: true,
      maxRecursionDepth: 3,
      maxBudgetUsd: 10,
    },
    depth: 0,
    rootJobId: ROOT,
    path: '',
    totalTasks: 2,
    finishedTasks: [1, 2],
    createdAt: at(0),
    updatedAt: at(100),
    finishedAt: at(100),
    requestHash: 'h',
    ...overrides,
  };
}

function record(
  attempt: number,
  times: { launched: number; running: number; finished: number },
  overrides: Partial<AttemptRecord> = {},
): AttemptRecord {
  return {
    attempt,
    state: 'succeeded',
    launchedAt: at(times.launched),
    startedAt: at(times.running),
    finishedAt: at(times.finished),
    durationMs: (times.finished - times.running) * 1000,
    costUsd: 0.01,
    numTurns: 3,
    resultHash: `hash-${attempt}`,
    ...overrides,
  };
}

function task(owner: JobRecord, taskNo: number, overrides: Partial<TaskRecord> = {}): TaskRecord {
  return {
    jobId: owner.jobId,
    taskNo,
    kind: taskNo === 0 ? 'plan' : 'work',
    title: `Task ${taskNo}`,
    prompt: 'p',
    state: 'succeeded',
    attempt: 1,
    maxRetries: 2,
    timeoutSec: 600,
    depth: owner.depth,
    rootJobId: ROOT,
    jobPath: owner.path,
    createdAt: at(0),
    updatedAt: at(0),
    attempts: [],
    ...overrides,
  };
}

function perf(tree: PerformanceNode[], now = at(100)): PerformanceView {
  return buildPerformance(tree, { now });
}

/**
 * A planned root job (max_workers 2): the planner runs 0..10 s; worker_1
 * runs 12..40 s; worker_2 fails its first attempt (12..30 s) and succeeds on
 * its second (launched 34 s, running 36..95 s); the job ends at 100 s.
 */
function retryJob(): PerformanceNode[] {
  const root = job(ROOT);
  return [
    {
      job: root,
      tasks: [
        task(root, 0, { attempts: [record(1, { launched: 1, running: 2, finished: 10 })] }),
        task(root, 1, {
          createdAt: at(10),
          attempts: [record(1, { launched: 11, running: 12, finished: 40 })],
        }),
        task(root, 2, {
          createdAt: at(10),
          attempt: 2,
          attempts: [
            record(1, { launched: 11, running: 12, finished: 30 }, { state: 'failed', error: 'boom' }),
            record(2, { launched: 34, running: 36, finished: 95 }, { budgetWaitMs: 3000 }),
          ],
        }),
      ],
    },
  ];
}

describe('the timeline', () => {
  it('has one entry per attempt with its queued, launched, running and finished times and offsets', () => {
    const p = perf(retryJob());
    expect(p.origin).toBe(at(0));
    expect(p.wall_time_ms).toBe(100_000);
    expect(p.timeline.map((t) => [t.worker_id, t.attempt, t.status])).toEqual([
      ['planner', 1, 'succeeded'],
      ['worker_1', 1, 'succeeded'],
      ['worker_2', 1, 'failed'],
      ['worker_2', 2, 'succeeded'],
    ]);
    const retry = p.timeline[3];
    // Attempt 2 was queued when attempt 1 ended.
    expect(retry).toMatchObject({
      queued_at: at(30),
      launched_at: at(34),
      running_at: at(36),
      finished_at: at(95),
      queued_ms: 30_000,
      launched_ms: 34_000,
      running_ms: 36_000,
      finished_ms: 95_000,
      budget_wait_ms: 3000,
      log_key: 'jobs/job-root/logs/depth_0_worker_2.attempt-2.log',
      reported: true,
    });
    expect(p.timeline[2]?.log_key).toBe('jobs/job-root/logs/depth_0_worker_2.log');
    expect(p.timeline[1]?.queued_at).toBe(at(10));
  });

  it('shows the attempt a task is running now, until now, without inventing its end', () => {
    const root = job(ROOT, { status: 'running', finishedAt: undefined });
    const running = task(root, 1, {
      state: 'running',
      launchedAt: at(5),
      startedAt: at(6),
    });
    const p = perf([{ job: root, tasks: [running] }], at(20));
    expect(p.wall_time_ms).toBe(20_000);
    expect(p.timeline).toHaveLength(1);
    expect(p.timeline[0]).toMatchObject({ status: 'running', launched_ms: 5000, running_ms: 6000 });
    expect(p.timeline[0]?.finished_at).toBeUndefined();
    expect(p.timeline[0]?.reported).toBe(false);
    expect(p.efficiency.busy_ms).toBe(14_000);
  });

  it('does not take a stale launch time for a retry that is still queued', () => {
    const root = job(ROOT, { status: 'running', finishedAt: undefined });
    const queued = task(root, 1, {
      state: 'queued',
      attempt: 2,
      launchedAt: at(40),
      attempts: [record(1, { launched: 1, running: 2, finished: 30 }, { state: 'failed' })],
    });
    const p = perf([{ job: root, tasks: [queued] }], at(50));
    expect(p.timeline[1]).toMatchObject({ attempt: 2, status: 'queued', queued_ms: 30_000 });
    expect(p.timeline[1]?.launched_ms).toBeUndefined();
  });
});

describe('parallel efficiency', () => {
  it('is busy worker time over wall time times max_workers, with the peak concurrency', () => {
    const e = perf(retryJob()).efficiency;
    // planner 8 s + worker_1 28 s + worker_2 18 s + 59 s = 113 s busy, over 100 s x 2 workers.
    expect(e).toEqual({
      busy_ms: 113_000,
      wall_time_ms: 100_000,
      max_workers: 2,
      parallel_efficiency: 0.565,
      peak_concurrency: 2,
    });
  });

  it('is null for a job with no wall time yet', () => {
    const root = job(ROOT, { status: 'planning', finishedAt: undefined });
    expect(perf([{ job: root, tasks: [] }], at(0)).efficiency.parallel_efficiency).toBeNull();
  });
});

describe('the critical path', () => {
  it('follows the last worker back through its retry to the planner, and every millisecond is counted once', () => {
    const path = perf(retryJob()).critical_path;
    expect(path.steps.map((s) => [s.worker_id, s.attempt, s.retry])).toEqual([
      ['planner', 1, false],
      ['worker_2', 1, true],
      ['worker_2', 2, false],
    ]);
    expect(path).toMatchObject({
      total_ms: 100_000,
      // planner 8 s + worker_2's second attempt 59 s
      running_ms: 67_000,
      // planner 1 s + attempt 2: 4 s from its queueing to its launch, less 3 s of budget wait
      queueing_ms: 2_000,
      budget_wait_ms: 3_000,
      launch_ms: 1_000 + 2_000,
      // the whole first attempt of worker_2, 10..30 s
      retries_ms: 20_000,
      // 95 -> 100 s aggregating
      other_ms: 5_000,
    });
    const parts =
      path.running_ms +
      path.queueing_ms +
      path.budget_wait_ms +
      path.launch_ms +
      path.retries_ms +
      path.other_ms;
    expect(parts).toBe(path.total_ms);
  });

  it('goes through a hand-off into the child job and back to the parent attempt that created it', () => {
    const root = job(ROOT, { hasChildren: true });
    const child = job('job-child', {
      depth: 1,
      path: '1',
      parentJobId: ROOT,
      parentTaskNo: 1,
      parentAttempt: 1,
      childMode: 'handoff',
      createdAt: at(20),
      finishedAt: at(90),
    });
    const parent = task(root, 1, {
      state: 'recursive_success',
      childJobId: 'job-child',
      finishedAt: at(92),
      attempts: [
        {
          attempt: 1,
          state: 'waiting_on_child',
          launchedAt: at(1),
          startedAt: at(3),
          finishedAt: at(20),
          costUsd: 0.002,
        },
      ],
    });
    const fast = task(root, 2, { attempts: [record(1, { launched: 1, running: 2, finished: 15 })] });
    const slow = task(child, 1, {
      createdAt: at(20),
      attempts: [record(1, { launched: 22, running: 25, finished: 88 })],
    });
    const quick = task(child, 2, {
      createdAt: at(20),
      attempts: [record(1, { launched: 22, running: 24, finished: 40 })],
    });
    const p = perf([
      { job: root, tasks: [parent, fast] },
      { job: child, tasks: [slow, quick] },
    ]);
    expect(p.critical_path.steps.map((s) => [s.worker_id, s.depth])).toEqual([
      ['worker_1', 0],
      ['worker_1_1', 1],
    ]);
    expect(p.timeline.find((t) => t.worker_id === 'worker_1')).toMatchObject({
      status: 'waiting_on_child',
      child_job_id: 'job-child',
      reported: true,
      on_critical_path: true,
    });
    expect(p.timeline.find((t) => t.worker_id === 'worker_2')?.on_critical_path).toBe(false);
    expect(p.critical_path.running_ms).toBe(17_000 + 63_000);
    expect(p.bottleneck).toMatchObject({ worker_id: 'worker_1_1', job_id: 'job-child', run_ms: 63_000 });
    expect(p.cost_by_depth).toEqual([
      { depth: 0, jobs: 1, tasks: 2, attempts: 2, cost_usd: 0.012 },
      { depth: 1, jobs: 1, tasks: 2, attempts: 2, cost_usd: 0.02 },
    ]);
  });

  it('follows a merge step back to the worker that finished last', () => {
    const root = job(ROOT);
    const merge = task(root, 9002, {
      kind: 'merge',
      createdAt: at(50),
      attempts: [record(1, { launched: 51, running: 53, finished: 60 })],
    });
    const early = task(root, 1, { attempts: [record(1, { launched: 1, running: 2, finished: 20 })] });
    const late = task(root, 2, { attempts: [record(1, { launched: 1, running: 2, finished: 49 })] });
    const p = perf([{ job: root, tasks: [early, late, merge] }], at(60));
    expect(p.critical_path.steps.map((s) => s.worker_id)).toEqual(['worker_2', 'merge']);
  });
});

describe('the bottleneck', () => {
  it('names the attempt that ran longest on the critical path and the time lost', () => {
    expect(perf(retryJob()).bottleneck).toEqual({
      worker_id: 'worker_2',
      job_id: ROOT,
      attempt: 2,
      run_ms: 59_000,
      share: 0.59,
      cause: 'running',
      lost: { queueing_ms: 2_000, launch_ms: 3_000, retries_ms: 20_000, budget_wait_ms: 3_000 },
    });
  });

  it('says the time went to waiting for the spend budget while a task waits for it', () => {
    const root = job(ROOT, { status: 'running', finishedAt: undefined });
    const waiting = task(root, 1, { state: 'queued', waitingFor: 'spend_budget', waitingSince: at(4) });
    const p = perf([{ job: root, tasks: [waiting] }], at(10));
    expect(p.bottleneck).toMatchObject({
      worker_id: 'worker_1',
      run_ms: 0,
      cause: 'budget_wait',
      lost: { queueing_ms: 4_000, launch_ms: 0, retries_ms: 0, budget_wait_ms: 6_000 },
    });
  });

  it('is absent while no task exists', () => {
    const root = job(ROOT, { status: 'planning', finishedAt: undefined });
    expect(perf([{ job: root, tasks: [] }], at(10)).bottleneck).toBeUndefined();
  });
});

describe('resources by worker', () => {
  it('sums tokens, turns and cost over the attempts, and leaves out what no attempt reported', () => {
    const root = job(ROOT);
    const usage = {
      inputTokens: 100,
      outputTokens: 50,
      cacheReadInputTokens: 1000,
      cacheCreationInputTokens: 200,
    };
    const measured = task(root, 1, {
      attempt: 2,
      attempts: [
        record(1, { launched: 1, running: 2, finished: 10 }, { state: 'failed', usage, peakMemoryMb: 300 }),
        record(2, { launched: 11, running: 12, finished: 20 }, { usage, peakMemoryMb: 420 }),
      ],
    });
    const unmeasured = task(root, 2, { attempts: [record(1, { launched: 1, running: 2, finished: 5 })] });
    const [a, b] = perf([{ job: root, tasks: [measured, unmeasured] }]).resources;
    expect(a).toEqual({
      worker_id: 'worker_1',
      job_id: ROOT,
      kind: 'work',
      depth: 0,
      attempts: 2,
      input_tokens: 200,
      output_tokens: 100,
      cache_tokens: 2400,
      cache_read_tokens: 2000,
      cache_creation_tokens: 400,
      cost_usd: 0.02,
      turns: 6,
      duration_ms: 16_000,
      peak_memory_mb: 420,
    });
    expect(b).not.toHaveProperty('input_tokens');
    expect(b).not.toHaveProperty('peak_memory_mb');
  });
});

describe('the gantt chart', () => {
  it('draws one bar per attempt in sections per job, the critical path in crit', () => {
    const chart = ganttChart(perf(retryJob()));
    expect(chart).toMatchObject({ shown: 4, omitted: 0 });
    const lines = chart.source.split('\n');
    expect(lines.slice(0, 2)).toEqual(['gantt', '  dateFormat x']);
    expect(lines).toContain('  section depth 0 · root');
    const bars = lines.filter((l) => l.includes(' try '));
    expect(bars).toHaveLength(4);
    expect(bars).toContain(
      `  worker_2 try 2 succeeded :crit, done, b3, ${ORIGIN + 34_000}, ${ORIGIN + 95_000}`,
    );
    expect(bars.find((b) => b.startsWith('  worker_1 try 1'))).toMatch(/:done, /);
  });

  it('keeps a huge tree to the bound, the critical path first, and says how many were left out', () => {
    const root = job(ROOT, { totalTasks: 1110 });
    const tasks = Array.from({ length: 1110 }, (_, i) =>
      task(root, i + 1, {
        attempts: [record(1, { launched: 1, running: 2, finished: 3 + (i % 50) })],
      }),
    );
    tasks.push(task(root, 1111, { attempts: [record(1, { launched: 1, running: 2, finished: 99 })] }));
    const p = perf([{ job: root, tasks }]);
    expect(p.timeline).toHaveLength(1111);
    const chart = ganttChart(p);
    expect(chart.shown).toBe(200);
    expect(chart.omitted).toBe(911);
    expect(chart.source.split('\n').filter((l) => l.includes(' try '))).toHaveLength(200);
    expect(chart.source).toContain('worker_1111 try 1 succeeded :crit, done');
  });
});

describe('in result.json and FINAL_RESULT.md', () => {
  it('puts the performance section in the result and renders it with a mermaid gantt and each attempt’s log', () => {
    const tree = retryJob();
    const ctx = { bucket: 'b', now: at(100) };
    expect(buildTreeResult(tree, ctx).performance?.timeline).toHaveLength(4);
    const md = renderTreeReports(tree, ctx).finalReport;
    expect(md).toContain('## Performance');
    expect(md).toContain('Parallel efficiency: 56.5%');
    expect(md).toContain('Bottleneck: **worker_2** (attempt 2) ran 59s, 59.0% of the wall time');
    expect(md).toContain('```mermaid\ngantt\n');
    expect(md).toContain(
      '[attempt 1](logs/depth_0_worker_2.log), [attempt 2](logs/depth_0_worker_2.attempt-2.log)',
    );
    expect(md).toMatch(/\| 0 \| 1 \| 3 \| 4 \| \$0\.0400 \|/);
    expect(md).toContain(
      [
        '| Part | Time | Share of wall time |',
        '|---|---:|---:|',
        '| Running | 1m 07s | 67.0% |',
        '| Queueing | 2s | 2.0% |',
        '| Waiting for spend budget | 3s | 3.0% |',
        '| Launching | 3s | 3.0% |',
        '| Retries (earlier attempts) | 20s | 20.0% |',
        '| Hand-overs between steps | 5s | 5.0% |',
      ].join('\n'),
    );
  });
});
