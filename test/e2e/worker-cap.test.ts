import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack, type TestStack } from '../support/harness.ts';

/** The largest number of runs alive at the same instant (at each run's start, count those still alive). */
function peakOverlap(runs: { start: number; end: number | null }[]): number {
  return Math.max(
    ...runs.map((r) => runs.filter((o) => o.start <= r.start && (o.end as number) > r.start).length),
  );
}

describe('running-worker caps', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack('workers: {max_workers: 2}');
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('the local launcher runs at most max_workers workers at once and still finishes every task', async () => {
    const tasks = [1, 2, 3, 4, 5].map((n) => ({ prompt: `capped task ${n} [[sleep:600]]` }));
    const res = await stack.api('POST', '/api/v1/orchestrate', {
      body: { request: 'five tasks, two slots', tasks },
    });
    expect(await stack.waitForJob(res.json.job_id)).toBe('completed');

    const runs = (await stack.invocations()).filter(
      (r) => r.end !== null && (r.prompt ?? '').includes('capped task'),
    );
    expect(runs).toHaveLength(5);
    expect(peakOverlap(runs)).toBe(2);
  });
});

describe('a job with fewer workers than the deployment', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack('workers: {max_workers: 5}');
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('runs at most its own max_workers at once, and gives every slot back', async () => {
    const tasks = [1, 2, 3, 4, 5].map((n) => ({ prompt: `per-job cap ${n} [[sleep:600]]` }));
    const res = await stack.api('POST', '/api/v1/orchestrate', {
      body: { request: 'five tasks, a job limit of two', config: { max_workers: 2 }, tasks },
    });
    const jobId = res.json.job_id as string;
    expect(await stack.waitForJob(jobId)).toBe('completed');
    const runs = (await stack.invocations()).filter(
      (r) => r.end !== null && (r.prompt ?? '').includes('per-job cap'),
    );
    expect(runs).toHaveLength(5);
    expect(peakOverlap(runs)).toBe(2);
    expect((await stack.deps.jobs.getJob(jobId))?.runningTasks).toBe(0);
    expect(await stack.deps.slots.readGlobal()).toBe(0);
  });
});
