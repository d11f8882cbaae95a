/**
 * Deterministic repros of what the random scenarios hit now and then: one
 * DynamoDB write whose response is lost (the write is applied, the SDK sees a
 * timeout and retries, the retry fails its condition, and our code takes the
 * "someone else did it" path). Each test injects exactly one such fault and
 * expects the job to end anyway, driving the sweep with short graces.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { isTerminalJobStatus, type JobStatus } from '../../functions/core/task-states.ts';
import { sweepActiveTasks } from '../../functions/services/reconcile.ts';
import { FaultInjector } from './fault-injector.ts';
import { type FaultStack, startFaultStack } from './fault-stack.ts';
import { checkInvariants } from './invariants.ts';

const SWEEP = {
  limit: 100,
  launchGraceMs: 2_000,
  overrunGraceMs: 5_000,
  requeueAfterMs: 3_000,
  followUpGraceMs: 1_000,
};

async function settle(stack: FaultStack, jobId: string, ms: number): Promise<JobStatus | undefined> {
  const deadline = Date.now() + ms;
  for (;;) {
    const job = await stack.deps.jobs.getJob(jobId);
    if (job && isTerminalJobStatus(job.status)) return job.status;
    if (Date.now() > deadline) return job?.status;
    await sweepActiveTasks(stack.deps, stack.launcher, SWEEP).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 500));
  }
}

describe('one lost DynamoDB response', () => {
  let stack: FaultStack | undefined;
  afterEach(async () => {
    await stack?.stop();
    stack = undefined;
  });

  it("the planner's final write loses its response: the plan's tasks are still created and the job ends", async () => {
    const injector = new FaultInjector(1, { rates: { DYNAMODB: 0, SQS: 0, S3: 0 } });
    const rule = injector.addRule({
      service: 'DYNAMODB',
      bodyIncludes: ['"TASK#0000"', '":to":{"S":"succeeded"}'],
      kind: 'lost_response',
      times: 1,
    });
    stack = await startFaultStack('workers: {max_retries: 1}', {}, injector);
    const jobId = await stack.submit({ request: 'lost planner response [[plan:2]]' }, 'lost-planner');
    const status = await settle(stack, jobId, 25_000);
    expect(rule.hits).toBe(1);
    const report = await checkInvariants(stack, [jobId], { drainMs: 3_000 });
    expect(status, report.violations.join('\n')).toBe('completed');
    expect(report.violations).toEqual([]);
  });

  it('the reconciler fails a lost task (no retries left) and that write loses its response: the job still ends', async () => {
    const injector = new FaultInjector(2, { rates: { DYNAMODB: 0, SQS: 0, S3: 0 } });
    const rule = injector.addRule({
      service: 'DYNAMODB',
      bodyIncludes: ['"TASK#0001"', '":to":{"S":"failed"}'],
      kind: 'lost_response',
      times: 1,
    });
    stack = await startFaultStack('workers: {max_retries: 0}', {}, injector);
    const tasks = stack.deps.tasks;
    const claim = tasks.claimTask.bind(tasks);
    let killed = 0;
    // The dispatcher dies right after its claim, so the sweep has to fail the attempt.
    tasks.claimTask = async (...args) => {
      const claimed = await claim(...args);
      if (claimed && killed++ === 0) throw new Error('injected: dispatcher killed between claim and launch');
      return claimed;
    };
    const jobId = await stack.submit(
      { request: 'lost reconciler response', tasks: [{ prompt: 'never launched' }] },
      'lost-reconciler',
    );
    const status = await settle(stack, jobId, 20_000);
    expect(rule.hits).toBe(1);
    const report = await checkInvariants(stack, [jobId], { drainMs: 3_000 });
    expect(status, report.violations.join('\n')).toBe('failed');
    expect(report.violations).toEqual([]);
  });
});
