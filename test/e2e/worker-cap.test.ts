import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack, type TestStack } from '../support/harness.ts';

describe('the local launcher', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack('workers: {max_workers: 2}');
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('runs at most max_workers workers at once and still finishes every task', async () => {
    const tasks = [1, 2, 3, 4, 5].map((n) => ({ prompt: `capped task ${n} [[sleep:600]]` }));
    const res = await stack.api('POST', '/api/v1/orchestrate', {
      body: { request: 'five tasks, two slots', tasks },
    });
    expect(await stack.waitForJob(res.json.job_id)).toBe('completed');

    const runs = (await stack.invocations()).filter(
      (r) => r.end !== null && (r.prompt ?? '').includes('capped task'),
    );
    expect(runs).toHaveLength(5);
    // At any run's start, count the runs alive at that instant (including itself).
    const peak = Math.max(
      ...runs.map((r) => runs.filter((o) => o.start <= r.start && (o.end as number) > r.start).length),
    );
    expect(peak).toBe(2);
  });
});
