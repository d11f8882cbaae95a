/**
 * JobStore, TaskStore and ApiKeyStore against the embedded DynamoDB emulator
 * over the wire protocol: every state change is a conditional write, so
 * duplicates and races resolve to exactly one winner.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AwsClients, createAwsClients } from '../../functions/adapters/aws-clients.ts';
import { InvalidCursorError } from '../../functions/adapters/job-store.ts';
import { ensureResources } from '../../functions/adapters/provision.ts';
import { type TableStores, tableStores } from '../../functions/adapters/table-stores.ts';
import type { ApiKeyRecord, AttemptRecord, JobRecord, TaskRecord } from '../../functions/core/model.ts';
import { IllegalTransitionError } from '../../functions/core/task-states.ts';
import { sha256Hex } from '../../functions/core/tokens.ts';
import { plannerTask, workTasks } from '../../functions/services/submit-job.ts';
import { type Backend, resourceName, startBackend } from '../support/backend.ts';

const NAMES = {
  tableName: resourceName('job-store-test'),
  queueName: resourceName('job-store-work'),
  deadLetterQueueName: resourceName('job-store-work-dlq'),
  bucketName: resourceName('job-store-artifacts'),
  maxReceiveCount: 3,
  visibilityTimeoutSec: 30,
};

const T0 = '2025-04-01T09:00:00.000Z';
const T1 = '2025-04-01T09:00:01.000Z';
const T2 = '2025-04-01T09:00:02.000Z';

/** A fresh id per test, so tests share one table without seeing each other. */
const newJobId = () => randomUUID().replaceAll('-', '').slice(0, 20);

function makeJob(overrides: Partial<JobRecord> = {}): JobRecord {
  const jobId = overrides.jobId ?? newJobId();
  return {
    jobId,
    tenant: 'acme',
    status: 'running',
    request: 'Write three poems',
    config: {
      maxWorkers: 5,
      defaultTimeoutSec: 600,
      maxRetries: 2,
      enableRecursion: false,
      maxRecursionDepth: 2,
      maxBudgetUsd: 25,
    },
    depth: 0,
    rootJobId: jobId,
    path: '',
    totalTasks: 0,
    finishedTasks: [],
    createdAt: T0,
    updatedAt: T0,
    requestHash: sha256Hex(jobId),
    ...overrides,
  };
}

const subtasks = (n: number) =>
  Array.from({ length: n }, (_, i) => ({ title: `Poem ${i + 1}`, prompt: `Write poem ${i + 1}` }));

function failedAttempt(attempt: number): AttemptRecord {
  return { attempt, state: 'failed', error: 'exit code 1', exitCode: 1, durationMs: 900, finishedAt: T2 };
}

describe('the job, task and API key stores on the embedded emulator', () => {
  let backend: Backend;
  let clients: AwsClients;
  let stores: TableStores;

  beforeAll(async () => {
    backend = await startBackend();
    clients = createAwsClients({ ...backend.env });
    await ensureResources(clients, NAMES);
    stores = tableStores(clients.ddb, NAMES.tableName);
  });

  afterAll(async () => {
    clients?.ddb.destroy();
    clients?.sqs.destroy();
    clients?.s3.destroy();
    await backend?.stop();
  });

  /** A running job with `n` queued work tasks. */
  async function jobWithTasks(n: number): Promise<{ job: JobRecord; tasks: TaskRecord[] }> {
    const job = makeJob({ totalTasks: n });
    const tasks = workTasks(job, subtasks(n), T0);
    await stores.tasks.putTasks(tasks);
    expect(await stores.jobs.createJob(job)).toBe(true);
    return { job, tasks };
  }

  describe('jobs', () => {
    it('creates a job once; a second create with the same id returns false and changes nothing', async () => {
      const job = makeJob({ status: 'planning' });
      expect(await stores.jobs.createJob(job)).toBe(true);
      expect(await stores.jobs.createJob({ ...job, request: 'something else' })).toBe(false);
      const stored = await stores.jobs.getJob(job.jobId);
      expect(stored).toMatchObject({ jobId: job.jobId, status: 'planning', request: 'Write three poems' });
      expect(stored?.finishedTasks).toEqual([]);
      expect(stored).not.toHaveProperty('PK');
    });

    it('returns undefined for an unknown job', async () => {
      expect(await stores.jobs.getJob('doesnotexist')).toBeUndefined();
    });

    it('moves a job along a legal transition and stamps finishedAt on a terminal status', async () => {
      const job = makeJob({ status: 'planning' });
      await stores.jobs.createJob(job);
      const running = await stores.jobs.transitionJob(job.jobId, 'planning', 'running', T1, {
        totalTasks: 3,
      });
      expect(running).toMatchObject({ status: 'running', totalTasks: 3, updatedAt: T1 });
      expect(running?.finishedAt).toBeUndefined();
      const done = await stores.jobs.transitionJob(job.jobId, 'running', 'failed', T2, {
        error: 'all failed',
      });
      expect(done).toMatchObject({ status: 'failed', error: 'all failed', finishedAt: T2 });
    });

    it('refuses an illegal move by throwing, before writing anything', async () => {
      const job = makeJob({ status: 'running' });
      await stores.jobs.createJob(job);
      await expect(stores.jobs.transitionJob(job.jobId, 'running', 'planning', T1)).rejects.toBeInstanceOf(
        IllegalTransitionError,
      );
      await expect(stores.jobs.transitionJob(job.jobId, 'completed', 'running', T1)).rejects.toBeInstanceOf(
        IllegalTransitionError,
      );
      expect((await stores.jobs.getJob(job.jobId))?.status).toBe('running');
    });

    it('returns undefined for a stale `from` and for a missing job', async () => {
      const job = makeJob({ status: 'running' });
      await stores.jobs.createJob(job);
      expect(await stores.jobs.transitionJob(job.jobId, 'planning', 'cancelled', T1)).toBeUndefined();
      expect(await stores.jobs.getJob(job.jobId)).toMatchObject({ status: 'running', updatedAt: T0 });
      expect(await stores.jobs.transitionJob('missingjob', 'running', 'completed', T1)).toBeUndefined();
    });

    it('lets exactly one of two racing terminal transitions win', async () => {
      const job = makeJob({ status: 'running' });
      await stores.jobs.createJob(job);
      const [a, b] = await Promise.all([
        stores.jobs.transitionJob(job.jobId, 'running', 'completed', T1),
        stores.jobs.transitionJob(job.jobId, 'running', 'cancelled', T1),
      ]);
      expect([a, b].filter((r) => r !== undefined)).toHaveLength(1);
    });
  });

  describe('listJobs', () => {
    const tenant = `lister-${randomUUID().slice(0, 8)}`;
    const ids: string[] = [];

    beforeAll(async () => {
      for (let i = 0; i < 5; i++) {
        const job = makeJob({ tenant, createdAt: `2025-04-0${i + 1}T00:00:00.000Z` });
        ids.push(job.jobId);
        await stores.jobs.createJob(job);
      }
      // Neither another tenant's job nor a child job shows up in the tenant's list.
      await stores.jobs.createJob(
        makeJob({ tenant: `${tenant}-other`, createdAt: '2025-04-09T00:00:00.000Z' }),
      );
      const root = ids[0] as string;
      await stores.jobs.createJob(
        makeJob({ tenant, depth: 1, rootJobId: root, parentJobId: root, parentTaskNo: 1, createdAt: T2 }),
      );
    });

    it('lists a tenant’s root jobs newest first', async () => {
      const page = await stores.jobs.listJobs(tenant, 10);
      expect(page.jobs.map((j) => j.jobId)).toEqual([...ids].reverse());
      expect(page.jobs.every((j) => j.tenant === tenant && j.depth === 0)).toBe(true);
      expect(page.jobs[0]).not.toHaveProperty('GSI1PK');
    });

    it('pages with a cursor without gaps or repeats', async () => {
      const seen: string[] = [];
      const sizes: number[] = [];
      let cursor: string | undefined;
      for (let i = 0; i < 10; i++) {
        const page = await stores.jobs.listJobs(tenant, 2, cursor);
        seen.push(...page.jobs.map((j) => j.jobId));
        sizes.push(page.jobs.length);
        cursor = page.nextCursor;
        if (!cursor) break;
      }
      expect(cursor).toBeUndefined();
      expect(seen).toEqual([...ids].reverse());
      expect(sizes.slice(0, 2)).toEqual([2, 2]);
      expect(Math.max(...sizes)).toBeLessThanOrEqual(2);
    });

    it('rejects a cursor from another tenant’s listing', async () => {
      const other = `${tenant}-b`;
      for (let i = 0; i < 3; i++) await stores.jobs.createJob(makeJob({ tenant: other }));
      const page = await stores.jobs.listJobs(other, 1);
      expect(page.nextCursor).toBeDefined();
      await expect(stores.jobs.listJobs(tenant, 1, page.nextCursor)).rejects.toBeInstanceOf(
        InvalidCursorError,
      );
    });

    it.each([
      ['garbage', 'not a cursor!'],
      ['JSON null', Buffer.from('null').toString('base64url')],
      ['a JSON string', Buffer.from('"x"').toString('base64url')],
    ])('rejects a %s cursor', async (_label, cursor) => {
      await expect(stores.jobs.listJobs(tenant, 2, cursor)).rejects.toBeInstanceOf(InvalidCursorError);
    });

    it('returns an empty page for a tenant without jobs', async () => {
      expect(await stores.jobs.listJobs('nobody-here', 5)).toEqual({ jobs: [], nextCursor: undefined });
    });
  });

  describe('tasks', () => {
    it('lists tasks in task order, the planner (task 0) first, past task 9', async () => {
      const job = makeJob({ status: 'planning' });
      await stores.jobs.createJob(job);
      await stores.tasks.putTasks([...workTasks(job, subtasks(11), T1).reverse(), plannerTask(job, T0)]);
      const tasks = await stores.tasks.listTasks(job.jobId);
      expect(tasks.map((t) => t.taskNo)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
      expect(tasks[0]).toMatchObject({ kind: 'plan', state: 'queued', attempt: 1 });
      expect(tasks[11]).toMatchObject({ kind: 'work', title: 'Poem 11', prompt: 'Write poem 11' });
      expect(tasks[0]).not.toHaveProperty('SK');
    });

    it('reads a task together with its job, and either one missing as undefined', async () => {
      const { job } = await jobWithTasks(2);
      await stores.tasks.claimTask(job.jobId, 2, 1, 'hash', T1);
      const both = await stores.tasks.getTaskWithJob(job.jobId, 2);
      expect(both.task).toEqual(await stores.tasks.getTask(job.jobId, 2));
      expect(both.task).toMatchObject({ taskNo: 2, state: 'launching', tokenHash: 'hash' });
      expect(both.job).toEqual(await stores.jobs.getJob(job.jobId));
      expect(await stores.tasks.getTaskWithJob(job.jobId, 9)).toEqual({
        task: undefined,
        job: expect.anything(),
      });
      const orphan = makeJob();
      await stores.tasks.putTasks(workTasks(orphan, subtasks(1), T0));
      expect(await stores.tasks.getTaskWithJob(orphan.jobId, 1)).toEqual({
        task: expect.objectContaining({ taskNo: 1 }),
        job: undefined,
      });
      expect(await stores.tasks.getTaskWithJob(newJobId(), 1)).toEqual({ task: undefined, job: undefined });
    });

    it('leaves an existing task alone when putTasks is replayed', async () => {
      const { job, tasks } = await jobWithTasks(1);
      const first = tasks[0] as TaskRecord;
      await stores.tasks.claimTask(job.jobId, 1, 1, 'hash', T1);
      await stores.tasks.putTasks([{ ...first, prompt: 'replayed' }]);
      expect(await stores.tasks.getTask(job.jobId, 1)).toMatchObject({
        state: 'launching',
        prompt: 'Write poem 1',
      });
    });

    it('lets exactly one of 10 concurrent claims of the same attempt win', async () => {
      const { job } = await jobWithTasks(1);
      const claims = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          stores.tasks.claimTask(job.jobId, 1, 1, sha256Hex(`token-${i}`), T1),
        ),
      );
      const winners = claims.filter((c): c is TaskRecord => c !== undefined);
      expect(winners).toHaveLength(1);
      const winner = winners[0] as TaskRecord;
      expect(winner).toMatchObject({ state: 'launching', attempt: 1, launchedAt: T1 });
      // The stored token hash is the winner's, not a loser's written afterwards.
      expect((await stores.tasks.getTask(job.jobId, 1))?.tokenHash).toBe(winner.tokenHash);
    });

    it('refuses a claim for the wrong attempt or a missing task', async () => {
      const { job } = await jobWithTasks(1);
      expect(await stores.tasks.claimTask(job.jobId, 1, 2, 'hash', T1)).toBeUndefined();
      expect(await stores.tasks.claimTask(job.jobId, 7, 1, 'hash', T1)).toBeUndefined();
      expect((await stores.tasks.getTask(job.jobId, 1))?.state).toBe('queued');
    });

    it('releases a refused launch back to queued with the same attempt, forgetting the token', async () => {
      const { job } = await jobWithTasks(1);
      await stores.tasks.claimTask(job.jobId, 1, 1, 'hash-1', T1);
      await stores.tasks.setLaunchHandle(job.jobId, 1, 1, 'arn:task/1');
      const released = await stores.tasks.releaseClaim(job.jobId, 1, 1, T2);
      expect(released).toMatchObject({ state: 'queued', attempt: 1 });
      expect(released?.tokenHash).toBeUndefined();
      expect(released?.launchHandle).toBeUndefined();
      // Released twice: the second finds it no longer launching.
      expect(await stores.tasks.releaseClaim(job.jobId, 1, 1, T2)).toBeUndefined();
      // And it can be claimed again.
      expect(await stores.tasks.claimTask(job.jobId, 1, 1, 'hash-2', T2)).toMatchObject({
        tokenHash: 'hash-2',
      });
    });

    it('stores the launch handle only for the current attempt while launching or running', async () => {
      const { job } = await jobWithTasks(1);
      expect(await stores.tasks.setLaunchHandle(job.jobId, 1, 1, 'arn:early')).toBe(false);
      await stores.tasks.claimTask(job.jobId, 1, 1, 'hash', T1);
      expect(await stores.tasks.setLaunchHandle(job.jobId, 1, 2, 'arn:wrong')).toBe(false);
      expect(await stores.tasks.setLaunchHandle(job.jobId, 1, 1, 'arn:task/1')).toBe(true);
      expect((await stores.tasks.getTask(job.jobId, 1))?.launchHandle).toBe('arn:task/1');
    });

    it('marks a launching task running once', async () => {
      const { job } = await jobWithTasks(1);
      expect(await stores.tasks.markRunning(job.jobId, 1, 1, T1)).toBeUndefined(); // still queued
      await stores.tasks.claimTask(job.jobId, 1, 1, 'hash', T1);
      const running = await stores.tasks.markRunning(job.jobId, 1, 1, T2);
      expect(running).toMatchObject({ state: 'running', startedAt: T2, attempt: 1 });
      expect(await stores.tasks.markRunning(job.jobId, 1, 1, T2)).toBeUndefined();
    });

    it("takes a live attempt's heartbeat at most once per interval, and none from another attempt", async () => {
      const { job } = await jobWithTasks(1);
      expect(await stores.tasks.recordHeartbeat(job.jobId, 1, 1, 1_000, 400)).toBe('not_live'); // still queued
      await stores.tasks.claimTask(job.jobId, 1, 1, 'hash', T1);
      expect(await stores.tasks.recordHeartbeat(job.jobId, 1, 1, 1_000, 400)).toBe('ok');
      expect(await stores.tasks.recordHeartbeat(job.jobId, 1, 1, 1_300, 400)).toBe('too_soon');
      expect(await stores.tasks.recordHeartbeat(job.jobId, 1, 1, 1_400, 400)).toBe('ok');
      expect(await stores.tasks.recordHeartbeat(job.jobId, 1, 2, 1_900, 400)).toBe('not_live');
      expect(await stores.tasks.getTask(job.jobId, 1)).toMatchObject({
        heartbeatAt: 1_400,
        heartbeatAttempt: 1,
      });
    });

    it('ends a failed attempt with a retry: queued, attempt+1, attempt recorded, only once', async () => {
      const { job } = await jobWithTasks(1);
      await stores.tasks.claimTask(job.jobId, 1, 1, 'hash', T1);
      await stores.tasks.setLaunchHandle(job.jobId, 1, 1, 'arn:task/1');
      await stores.tasks.markRunning(job.jobId, 1, 1, T1);
      const result = {
        output: '',
        outputTruncated: false,
        filesCreated: [],
        costUsd: 0.01,
        numTurns: 1,
        durationMs: 900,
        error: 'exit code 1',
      };
      const retried = await stores.tasks.endAttempt(
        job.jobId,
        1,
        1,
        ['running'],
        { state: 'queued', attempt: 2 },
        failedAttempt(1),
        result,
        T2,
      );
      expect(retried).toMatchObject({ state: 'queued', attempt: 2, result, updatedAt: T2 });
      expect(retried?.attempts).toEqual([failedAttempt(1)]);
      expect(retried?.tokenHash).toBeUndefined();
      expect(retried?.launchHandle).toBeUndefined();
      expect(retried?.startedAt).toBeUndefined();
      expect(retried?.finishedAt).toBeUndefined();

      // A duplicate report of the same attempt finds the task moved on.
      const again = await stores.tasks.endAttempt(
        job.jobId,
        1,
        1,
        ['running'],
        { state: 'queued', attempt: 2 },
        failedAttempt(1),
        result,
        T2,
      );
      expect(again).toBeUndefined();
      expect((await stores.tasks.getTask(job.jobId, 1))?.attempts).toHaveLength(1);

      // The retry runs as attempt 2 and its final failure appends a second record.
      expect(await stores.tasks.claimTask(job.jobId, 1, 2, 'hash-2', T2)).toBeDefined();
      await stores.tasks.markRunning(job.jobId, 1, 2, T2);
      const final = await stores.tasks.endAttempt(
        job.jobId,
        1,
        2,
        ['running'],
        { state: 'failed', attempt: 2 },
        failedAttempt(2),
        result,
        T2,
      );
      expect(final).toMatchObject({ state: 'failed', attempt: 2, finishedAt: T2 });
      expect(final?.attempts.map((a) => a.attempt)).toEqual([1, 2]);
    });

    it('ends a successful attempt with its result and finishedAt', async () => {
      const { job } = await jobWithTasks(1);
      await stores.tasks.claimTask(job.jobId, 1, 1, 'hash', T1);
      await stores.tasks.markRunning(job.jobId, 1, 1, T1);
      const result = {
        output: 'three poems',
        outputTruncated: false,
        filesCreated: ['poems.md'],
        costUsd: 0.05,
        numTurns: 4,
        durationMs: 1_000,
        sessionId: 'sess-1',
      };
      const done = await stores.tasks.endAttempt(
        job.jobId,
        1,
        1,
        ['running'],
        { state: 'succeeded', attempt: 1 },
        { attempt: 1, state: 'succeeded', finishedAt: T2 },
        result,
        T2,
      );
      expect(done).toMatchObject({ state: 'succeeded', attempt: 1, result, finishedAt: T2 });
    });

    it('refuses an illegal endAttempt by throwing', async () => {
      const { job } = await jobWithTasks(1);
      await expect(
        stores.tasks.endAttempt(
          job.jobId,
          1,
          1,
          ['queued'],
          { state: 'succeeded', attempt: 1 },
          { attempt: 1, state: 'succeeded', finishedAt: T2 },
          undefined,
          T2,
        ),
      ).rejects.toBeInstanceOf(IllegalTransitionError);
      expect((await stores.tasks.getTask(job.jobId, 1))?.state).toBe('queued');
    });
  });

  describe('markTaskFinished', () => {
    it('gives firstTime to exactly one of 10 concurrent calls for the same task', async () => {
      const { job } = await jobWithTasks(3);
      const calls = await Promise.all(
        Array.from({ length: 10 }, () => stores.jobs.markTaskFinished(job.jobId, 2, T1)),
      );
      expect(calls.filter((c) => c.firstTime)).toHaveLength(1);
      for (const call of calls) expect(call.job.finishedTasks).toEqual([2]);
      expect((await stores.jobs.getJob(job.jobId))?.finishedTasks).toEqual([2]);
    });

    it('fills the set for 5 tasks of a 5-task job, each first call firstTime, one seeing it complete', async () => {
      const { job } = await jobWithTasks(5);
      const calls = await Promise.all(
        [1, 2, 3, 4, 5].map((n) => stores.jobs.markTaskFinished(job.jobId, n, T1)),
      );
      expect(calls.map((c) => c.firstTime)).toEqual([true, true, true, true, true]);
      // The write that completed the set is the one that enqueues aggregation: exactly one saw it.
      expect(calls.filter((c) => c.job.finishedTasks.length === 5)).toHaveLength(1);
      const stored = await stores.jobs.getJob(job.jobId);
      expect(stored?.finishedTasks).toEqual([1, 2, 3, 4, 5]);

      const replay = await stores.jobs.markTaskFinished(job.jobId, 3, T2);
      expect(replay.firstTime).toBe(false);
      expect(replay.job.finishedTasks).toEqual([1, 2, 3, 4, 5]);
    });

    it('throws for a job that does not exist rather than creating one', async () => {
      await expect(stores.jobs.markTaskFinished('nosuchjob', 1, T1)).rejects.toThrow(/nosuchjob/);
      expect(await stores.jobs.getJob('nosuchjob')).toBeUndefined();
    });
  });

  describe('API keys', () => {
    const key = (sha256: string): ApiKeyRecord => ({
      sha256,
      keyId: 'k-1',
      tenant: 'acme',
      name: 'ci',
      createdAt: T0,
    });

    it('stores a key by hash and reads it back', async () => {
      const hash = sha256Hex(`cok_${randomUUID()}`);
      await stores.keys.putApiKey(key(hash));
      expect(await stores.keys.getApiKey(hash)).toEqual(key(hash));
      expect(await stores.keys.getApiKey(sha256Hex('unknown'))).toBeUndefined();
    });

    it('refuses a second key with the same hash', async () => {
      const hash = sha256Hex(`cok_${randomUUID()}`);
      await stores.keys.putApiKey(key(hash));
      await expect(stores.keys.putApiKey({ ...key(hash), tenant: 'evil' })).rejects.toMatchObject({
        name: 'ConditionalCheckFailedException',
      });
      expect((await stores.keys.getApiKey(hash))?.tenant).toBe('acme');
    });
  });
});
