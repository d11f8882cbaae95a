/**
 * With the model gateway off, an attempt reserves its CLI budget on the tree
 * before it starts. When other attempts' reservations hold what is left, the
 * task waits, and the job's status says so (not only the log); it starts as
 * soon as the spend comes back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HostileStack, startHostileStack } from '../support/hostile-worker.ts';

describe('waiting for spend budget', () => {
  let hostile: HostileStack;
  beforeAll(async () => {
    // One worker at a time across the deployment: a second job's task waits for the slot (not
    // yet for spend) until the test has reserved the tree's spend, then the slot comes back.
    hostile = await startHostileStack('workers: {max_workers: 4, max_running: 1}');
    expect(hostile.deps.settings.gateway?.enabled).toBe(false);
  });
  afterAll(async () => {
    await hostile?.stop();
  });

  it("shows in the job's status while other attempts hold the tree's spend, and starts once it comes back", async () => {
    const busy = await hostile.capture({
      request: 'holds the only slot',
      tasks: [{ prompt: 'x [[hold:slot]]' }],
    });
    const submitted = await hostile.api('POST', '/api/v1/orchestrate', {
      body: { request: 'waits', tasks: [{ prompt: 'waiting task' }], config: { max_budget_usd: 2 } },
    });
    expect(submitted.status).toBe(202);
    const jobId = submitted.json.job_id as string;

    // Stand-in for other attempts of the tree: all but half a cent of it reserved.
    const held = 1.995;
    const deadline = Date.now() + 60_000;
    let reserved = false;
    while (!reserved && Date.now() < deadline) {
      const root = await hostile.deps.jobs.getJob(jobId);
      if (root) reserved = await hostile.deps.budget.reserveSpend(root, held);
      if (!reserved) await new Promise((r) => setTimeout(r, 50));
    }
    expect(reserved).toBe(true);
    await busy.release();

    let status = (await hostile.api('GET', `/api/v1/jobs/${jobId}/status`)).json;
    while (!status.waiting && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 300));
      status = (await hostile.api('GET', `/api/v1/jobs/${jobId}/status`)).json;
    }
    expect(status.waiting).toEqual({ spend_budget: 1 });
    expect(status.tasks.queued).toBe(1);
    expect(
      hostile.logs.some((l) => l.message === 'waiting for spend budget' && l.extra?.jobId === jobId),
    ).toBe(true);

    // The spend comes back: the task starts on its next try, and the mark is gone.
    await hostile.deps.budget.settleSpend(jobId, held, 0);
    expect(await hostile.waitForJob(jobId, 60_000)).toBe('completed');
    const after = (await hostile.api('GET', `/api/v1/jobs/${jobId}/status`)).json;
    expect(after.waiting).toBeUndefined();
    expect((await hostile.deps.tasks.getTask(jobId, 1))?.waitingFor).toBeUndefined();
  }, 120_000);
});
