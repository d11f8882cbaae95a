import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAwsClients } from '../../functions/adapters/aws-clients.ts';
import type { JobStore } from '../../functions/adapters/job-store.ts';
import { ensureResources } from '../../functions/adapters/provision.ts';
import type { RootBudget } from '../../functions/adapters/root-budget.ts';
import { tableStores } from '../../functions/adapters/table-stores.ts';
import type { JobRecord } from '../../functions/core/model.ts';
import { type Backend, resourceName, startBackend } from '../support/backend.ts';

/** 20 workers reserve from one root at the same moment, against the emulator (real conditional writes). */
describe('a fan-out race on the root budget', () => {
  let backend: Backend;
  let jobs: JobStore;
  let budget: RootBudget;

  beforeAll(async () => {
    backend = await startBackend();
    const clients = createAwsClients(backend.env);
    const names = {
      tableName: resourceName('budget-race'),
      queueName: resourceName('budget-race-work'),
      deadLetterQueueName: resourceName('budget-race-dlq'),
      bucketName: resourceName('budget-race'),
      maxReceiveCount: 5,
      visibilityTimeoutSec: 30,
    };
    await ensureResources(clients, names);
    ({ jobs, budget } = tableStores(clients.ddb, names.tableName));
  });
  afterAll(async () => {
    await backend?.stop();
  });

  async function root(maxTasks: number, maxSpendUsd: number, reservedTasks = 0): Promise<JobRecord> {
    const jobId = randomBytes(10).toString('hex');
    const now = new Date().toISOString();
    const job: JobRecord = {
      jobId,
      tenant: 't',
      status: 'running',
      request: 'r',
      config: {
        maxWorkers: 5,
        defaultTimeoutSec: 60,
        maxRetries: 0,
        enableRecursion: true,
        maxRecursionDepth: 2,
        maxBudgetUsd: maxSpendUsd,
      },
      depth: 0,
      rootJobId: jobId,
      path: '',
      totalTasks: 0,
      finishedTasks: [],
      createdAt: now,
      updatedAt: now,
      requestHash: 'h',
      budget: { maxTasks, maxSpendUsd, maxDepth: 2, reservedTasks, committedUsd: 0, spentUsd: 0 },
    };
    await jobs.createJob(job);
    return job;
  }

  it('never reserves more tasks than the root allows', async () => {
    // 20 workers each ask for 3 child tasks; 10 are left, so exactly 3 can win.
    const job = await root(12, 10, 2);
    const wins = await Promise.all(
      Array.from({ length: 20 }, () => budget.reserveTasks(job, 3, new Date().toISOString())),
    );
    const after = await jobs.getJob(job.jobId);
    expect(wins.filter(Boolean)).toHaveLength(3);
    expect(after?.budget?.reservedTasks).toBe(11);
    expect(after?.budget?.reservedTasks).toBeLessThanOrEqual(12);
  });

  it('never commits more spend than the root allows', async () => {
    // 20 attempts each reserve $0.30 of a $2.00 limit: at most 6 fit.
    const job = await root(100, 2);
    const wins = await Promise.all(Array.from({ length: 20 }, () => budget.reserveSpend(job, 0.3)));
    const after = await jobs.getJob(job.jobId);
    expect(wins.filter(Boolean)).toHaveLength(6);
    expect(after?.budget?.committedUsd).toBeCloseTo(1.8, 6);
    expect(after?.budget?.committedUsd ?? 99).toBeLessThanOrEqual(2 + 1e-9);
  });

  it('settling gives unspent reservations back, and the limit still holds afterwards', async () => {
    const job = await root(100, 1);
    expect(await budget.reserveSpend(job, 0.6)).toBe(true);
    expect(await budget.reserveSpend(job, 0.6)).toBe(false);
    await budget.settleSpend(job.jobId, 0.6, 0.25); // the attempt cost less than it reserved
    const settled = await jobs.getJob(job.jobId);
    expect(settled?.budget).toMatchObject({ spentUsd: 0.25 });
    expect(settled?.budget?.committedUsd).toBeCloseTo(0.25, 9);
    const wins = await Promise.all(Array.from({ length: 20 }, () => budget.reserveSpend(job, 0.2)));
    expect(wins.filter(Boolean)).toHaveLength(3);
    expect((await jobs.getJob(job.jobId))?.budget?.committedUsd ?? 99).toBeLessThanOrEqual(1 + 1e-9);
  });
});
