import { randomBytes } from 'node:crypto';
import { ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import type { SQSEvent, SQSRecord } from 'aws-lambda';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Artifacts } from '../../functions/adapters/artifacts.ts';
import {
  type AwsClients,
  type ClientOptions,
  createAwsClients,
} from '../../functions/adapters/aws-clients.ts';
import {
  LaunchRefusedError,
  type LaunchRequest,
  type WorkerStatus,
} from '../../functions/adapters/launcher.ts';
import { ensureResources } from '../../functions/adapters/provision.ts';
import { tableStores } from '../../functions/adapters/table-stores.ts';
import { WorkQueue } from '../../functions/adapters/work-queue.ts';
import { STEP_TASK_NO } from '../../functions/core/layout.ts';
import type { WorkMessage } from '../../functions/core/messages.ts';
import type { JobRecord, JobSource } from '../../functions/core/model.ts';
import type { JobStatus } from '../../functions/core/task-states.ts';
import { createQueueConsumer } from '../../functions/handlers/queue-consumer.ts';
import { createReconciler, type ReconcilerEvent } from '../../functions/handlers/reconciler.ts';
import { aggregateJob } from '../../functions/services/aggregate.ts';
import { handleDeadLetter } from '../../functions/services/dead-letters.ts';
import type { Deps } from '../../functions/services/deps.ts';
import { batchDeploymentSlots, dispatchRun } from '../../functions/services/dispatch.ts';
import { sweepActiveTasks } from '../../functions/services/reconcile.ts';
import { followUp } from '../../functions/services/record-result.ts';
import { workTasks } from '../../functions/services/submit-job.ts';
import { RECONCILER_TABLE_ACTIONS } from '../../infra/constructs/events.ts';
import { type Backend, resourceName } from '../support/backend.ts';
import { type EmulatorDeps, startEmulatorDeps } from '../support/emulator-deps.ts';

/** What the services counted as JobsFinished, in order. */
const finished: JobStatus[] = [];

/** A launcher whose answers the test sets, recording what it was asked. */
class FakeLauncher {
  launched: LaunchRequest[] = [];
  stopped: string[] = [];
  statuses = new Map<string, WorkerStatus>();
  refuse?: LaunchRefusedError;
  async launch(request: LaunchRequest) {
    if (this.refuse) throw this.refuse;
    this.launched.push(request);
    return {
      handle: `arn:aws:ecs:us-east-1:123456789012:task/cluster/${request.jobId}-${request.taskNo}-${request.attempt}`,
    };
  }
  async stop(handle: string) {
    this.stopped.push(handle);
  }
  async status(handles: readonly string[]) {
    return new Map(handles.map((h) => [h, this.statuses.get(h) ?? ({ state: 'running' } as WorkerStatus)]));
  }
}

/** What CDK's `grantSendMessages` gives the reconciler on the work queue (test/infra/stack.test.ts pins it). */
const RECONCILER_QUEUE_ACTIONS = ['sqs:SendMessage', 'sqs:GetQueueAttributes', 'sqs:GetQueueUrl'];
const IAM_SERVICE = { DYNAMODB: 'dynamodb', SQS: 'sqs', S3: 's3' } as const;

/**
 * SDK middleware that refuses, as IAM would, every call whose action is not
 * in `granted()` (SendMessageBatch is authorized as SendMessage), and records
 * the refusals.
 */
function iamGuard(granted: () => ReadonlySet<string> | 'all', denied: string[]): ClientOptions {
  return {
    instrument: (client, service) => {
      // biome-ignore lint/suspicious/noExplicitAny: one middleware for three client types
      (client.middlewareStack as any).add(
        // biome-ignore lint/suspicious/noExplicitAny: SDK middleware signature differs per client
        (next: any, ctx: any) => async (args: unknown) => {
          let action = `${IAM_SERVICE[service]}:${String(ctx.commandName).replace(/Command$/, '')}`;
          if (action === 'sqs:SendMessageBatch') action = 'sqs:SendMessage';
          const allowed = granted();
          if (allowed !== 'all' && !allowed.has(action)) {
            denied.push(action);
            throw Object.assign(new Error(`not authorized to perform: ${action}`), {
              name: 'AccessDeniedException',
              $fault: 'client',
              $metadata: { httpStatusCode: 400 },
            });
          }
          return next(args);
        },
        { step: 'initialize', name: 'iamGuard' },
      );
    },
  };
}

describe('reconciler, sweep and launch refusals (against the emulators)', () => {
  let emulators: EmulatorDeps;
  let backend: Backend;
  let clients: AwsClients;
  let queueUrl: string;
  let deps: Deps;
  let launcher: FakeLauncher;
  let clock: number;

  beforeAll(async () => {
    emulators = await startEmulatorDeps('reconcile', {
      metrics: {
        jobFinished: (status) => {
          finished.push(status);
        },
      },
      now: () => new Date(clock),
    });
    ({ backend, clients, queueUrl, deps } = emulators);
  });
  afterAll(async () => {
    await emulators?.stop();
  });
  beforeEach(async () => {
    clock = Date.now();
    launcher = new FakeLauncher();
    finished.length = 0;
    await drainQueue();
  });

  async function drainQueue(): Promise<WorkMessage[]> {
    const got: WorkMessage[] = [];
    for (let i = 0; i < 5; i++) {
      const out = await clients.sqs.send(
        new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }),
      );
      if (!out.Messages?.length) break;
      got.push(...out.Messages.map((m) => JSON.parse(m.Body ?? '{}') as WorkMessage));
    }
    return got;
  }

  /** A running job with `n` queued tasks (max_retries 2 unless given). */
  async function newJob(
    n: number,
    options: { maxRetries?: number; source?: JobSource; maxWorkers?: number; maxSpendUsd?: number } = {},
  ): Promise<JobRecord> {
    const jobId = randomBytes(10).toString('hex');
    const now = new Date(clock).toISOString();
    const job: JobRecord = {
      jobId,
      tenant: 't',
      status: 'running',
      request: 'r',
      config: {
        maxWorkers: options.maxWorkers ?? 5,
        defaultTimeoutSec: 60,
        maxRetries: options.maxRetries ?? 2,
        enableRecursion: false,
        maxRecursionDepth: 2,
        maxBudgetUsd: 25,
      },
      depth: 0,
      rootJobId: jobId,
      path: '',
      totalTasks: n,
      finishedTasks: [],
      createdAt: now,
      updatedAt: now,
      requestHash: 'h',
      ...(options.source ? { source: options.source } : {}),
      ...(options.maxSpendUsd !== undefined
        ? {
            budget: {
              maxTasks: 100,
              maxSpendUsd: options.maxSpendUsd,
              maxDepth: 0,
              reservedTasks: n,
              committedUsd: 0,
              spentUsd: 0,
            },
          }
        : {}),
    };
    await deps.jobs.createJob(job);
    await deps.tasks.putTasks(
      workTasks(
        job,
        Array.from({ length: n }, (_, i) => ({ title: `t${i + 1}`, prompt: 'p' })),
        now,
      ),
    );
    return job;
  }

  async function launchAndRun(jobId: string, taskNo: number): Promise<string> {
    expect(await dispatchRun({ ...deps, launcher }, { type: 'run', jobId, taskNo, attempt: 1 })).toBe(
      'launched',
    );
    await deps.tasks.markRunning(jobId, taskNo, 1, new Date(clock).toISOString());
    return (await deps.tasks.getTask(jobId, taskNo))?.launchHandle as string;
  }

  it('a retryable launch refusal gives the claim back and lets SQS redeliver; nothing is recorded as started', async () => {
    const job = await newJob(1);
    launcher.refuse = new LaunchRefusedError('RESOURCE:MEMORY', true);
    await expect(
      dispatchRun({ ...deps, launcher }, { type: 'run', jobId: job.jobId, taskNo: 1, attempt: 1 }),
    ).rejects.toThrow('RESOURCE');
    const task = await deps.tasks.getTask(job.jobId, 1);
    expect(task).toMatchObject({ state: 'queued', attempt: 1, attempts: [] });
    expect(task?.launchHandle).toBeUndefined();
    launcher.refuse = undefined;
    expect(
      await dispatchRun({ ...deps, launcher }, { type: 'run', jobId: job.jobId, taskNo: 1, attempt: 1 }),
    ).toBe('launched');
  });

  it('a launch refused for good fails the attempt with the reason and queues the retry', async () => {
    const job = await newJob(1);
    launcher.refuse = new LaunchRefusedError('task definition is INACTIVE', false);
    expect(
      await dispatchRun({ ...deps, launcher }, { type: 'run', jobId: job.jobId, taskNo: 1, attempt: 1 }),
    ).toBe('refused');
    const task = await deps.tasks.getTask(job.jobId, 1);
    expect(task).toMatchObject({ state: 'queued', attempt: 2 });
    expect(task?.attempts[0]?.error).toMatch(/could not be launched: task definition is INACTIVE/);
    expect(await drainQueue()).toContainEqual({ type: 'run', jobId: job.jobId, taskNo: 1, attempt: 2 });
  });

  /** Deps whose queue records what dispatch sends back (with its delay) and that count claims. */
  function watchedDeps() {
    const sent: { message: WorkMessage; delaySec: number }[] = [];
    const queue = Object.create(deps.queue) as WorkQueue;
    queue.send = async (message, delaySec = 0) => {
      sent.push({ message, delaySec });
    };
    const counted = { claims: 0 };
    const tasks = Object.create(deps.tasks) as Deps['tasks'];
    tasks.claimTask = (...args) => {
      counted.claims += 1;
      return deps.tasks.claimTask(...args);
    };
    return { deps: { ...deps, launcher, queue, tasks }, sent, counted };
  }
  type Run = WorkMessage & { type: 'run' };

  it("a task that finds its job's slot full claims nothing while it stays full, and starts once it frees", async () => {
    const job = await newJob(2, { maxWorkers: 1 });
    const { deps: waiting, sent, counted } = watchedDeps();
    const run = { type: 'run', jobId: job.jobId, attempt: 1 } as const;

    expect(await dispatchRun(waiting, { ...run, taskNo: 1 })).toBe('launched');
    expect(await dispatchRun(waiting, { ...run, taskNo: 2 })).toBe('waiting');
    expect(counted.claims).toBe(2);
    // The second task came back to the queue, not started, and says why: the job's one slot.
    let back = sent.at(-1);
    expect(back?.message).toEqual({ ...run, taskNo: 2, slotWait: { scope: 'job', times: 1 } });
    expect(back?.delaySec).toBeGreaterThanOrEqual(1);
    expect(back?.delaySec).toBeLessThanOrEqual(3);
    expect(await deps.tasks.getTask(job.jobId, 2)).toMatchObject({ state: 'queued', attempts: [] });

    // While the slot stays taken, each try only reads the counter.
    for (let i = 0; i < 3; i++) {
      expect(await dispatchRun(waiting, back?.message as Run)).toBe('waiting');
      back = sent.at(-1);
      expect(back?.delaySec).toBeLessThanOrEqual(3);
    }
    expect(counted.claims).toBe(2);
    expect(back?.message).toMatchObject({ slotWait: { scope: 'job', times: 4 } });
    expect(launcher.launched).toHaveLength(1);

    // The first worker's slot comes back: the next try starts the task.
    await deps.slots.releaseJob(job.jobId);
    expect(await dispatchRun(waiting, back?.message as Run)).toBe('launched');
    expect(launcher.launched.map((l) => l.taskNo)).toEqual([1, 2]);
    expect((await deps.jobs.getJob(job.jobId))?.runningTasks).toBe(1);
  });

  it("a task that finds the deployment's slots full gives its claim back and waits longer each time, up to a cap", async () => {
    const job = await newJob(1);
    const { deps: waiting, sent, counted } = watchedDeps();
    const max = waiting.settings.worker.maxRunning;
    const held = max - (await deps.slots.readGlobal());
    for (let i = 0; i < held; i++) await deps.slots.acquireGlobal(max);
    let holding = true;
    try {
      const first: Run = { type: 'run', jobId: job.jobId, taskNo: 1, attempt: 1 };
      expect(await dispatchRun(waiting, first)).toBe('waiting');
      expect(sent.at(-1)?.message).toMatchObject({ slotWait: { scope: 'deployment', times: 1 } });
      // The claim taken beside the slot was given back, and nothing else was taken.
      expect(counted.claims).toBe(1);
      expect((await deps.jobs.getJob(job.jobId))?.runningTasks ?? 0).toBe(0);
      expect(await deps.tasks.getTask(job.jobId, 1)).toMatchObject({ state: 'queued', attempts: [] });
      const delays: number[] = [];
      for (let i = 0; i < 5; i++) {
        expect(await dispatchRun(waiting, sent.at(-1)?.message as Run)).toBe('waiting');
        delays.push(sent.at(-1)?.delaySec ?? 0);
      }
      // While it stays full, each try only reads the counter.
      expect(counted.claims).toBe(1);
      expect(Math.max(...delays)).toBeGreaterThan(4);
      expect(Math.max(...delays)).toBeLessThanOrEqual(13);
      for (let i = 0; i < held; i++) await deps.slots.releaseGlobal();
      holding = false;
      expect(await dispatchRun(waiting, sent.at(-1)?.message as Run)).toBe('launched');
    } finally {
      for (let i = 0; holding && i < held; i++) await deps.slots.releaseGlobal();
    }
  });

  it("a root job's attempt reserves a full share with its slot before reading the job while plenty is left, and the share a read gives once little is", async () => {
    const share = deps.settings.limits.maxTaskBudgetUsd;
    const job = await newJob(3, { maxWorkers: 2, maxSpendUsd: 2.5 * share });
    const reads = { jobs: 0 };
    const jobs = Object.create(deps.jobs) as Deps['jobs'];
    jobs.getJob = (...args) => {
      reads.jobs += 1;
      return deps.jobs.getJob(...args);
    };
    const watched = { ...deps, launcher, jobs };
    const run: Run = { type: 'run', jobId: job.jobId, taskNo: 1, attempt: 1 };
    // 2.5 shares left, 2 slots: a full share leaves a full one for the other slot.
    expect(await dispatchRun(watched, run)).toBe('launched');
    expect(reads.jobs).toBe(0);
    expect((await deps.tasks.getTask(job.jobId, 1))?.budgetUsd).toBe(share);
    expect((await deps.jobs.getJob(job.jobId))?.budget?.committedUsd).toBeCloseTo(share, 9);
    // 1.5 shares left, 1 slot free: no longer sure without a read; the read's share is still a full one.
    expect(await dispatchRun(watched, { ...run, taskNo: 2 })).toBe('launched');
    expect(reads.jobs).toBe(1);
    expect((await deps.tasks.getTask(job.jobId, 2))?.budgetUsd).toBe(share);
    // Task 1 ends: its slot back, its reservation settled to a cost of 0.9 of a share.
    await deps.slots.releaseJob(job.jobId);
    await deps.budget.settleSpend(job.jobId, share, share * 0.9);
    // 0.6 of a share is left: the read gives that, not a full share.
    expect(await dispatchRun(watched, { ...run, taskNo: 3 })).toBe('launched');
    expect(reads.jobs).toBe(2);
    expect((await deps.tasks.getTask(job.jobId, 3))?.budgetUsd).toBeCloseTo(0.6 * share, 4);
    expect((await deps.jobs.getJob(job.jobId))?.budget?.committedUsd).toBeCloseTo(2.5 * share, 9);
  });

  it('when taking the deployment slot fails outright, the claim taken beside it is given back and the message comes again', async () => {
    const job = await newJob(1);
    const slots = Object.create(deps.slots) as Deps['slots'];
    slots.acquireGlobal = async () => {
      throw new Error('ProvisionedThroughputExceededException (after retries)');
    };
    const run: Run = { type: 'run', jobId: job.jobId, taskNo: 1, attempt: 1 };
    await expect(dispatchRun({ ...deps, launcher, slots }, run)).rejects.toThrow('ProvisionedThroughput');
    expect(await deps.tasks.getTask(job.jobId, 1)).toMatchObject({ state: 'queued', attempt: 1 });
    // The redelivery starts it.
    expect(await dispatchRun({ ...deps, launcher }, run)).toBe('launched');
  });

  /** An SQS event of these messages, as the event source mapping (or the local poller) hands it over. */
  const sqsEvent = (messages: WorkMessage[]): SQSEvent => ({
    Records: messages.map((m, i) => ({
      messageId: `m${i}`,
      receiptHandle: `r${i}`,
      body: JSON.stringify(m),
      attributes: {} as SQSRecord['attributes'],
      messageAttributes: {},
      md5OfBody: '',
      eventSource: 'aws:sqs',
      eventSourceARN: queueUrl,
      awsRegion: 'local',
    })),
  });
  /** Deps whose deployment-slot takes are counted (one count per write). */
  function countedSlots() {
    const takes: number[] = [];
    const slots = Object.create(deps.slots) as Deps['slots'];
    slots.acquireGlobal = (max, count = 1) => {
      takes.push(count);
      return deps.slots.acquireGlobal(max, count);
    };
    return { slots, takes };
  }

  it("a batch's new run messages take their deployment slots in one write; a duplicate among them gives its slot back", async () => {
    const job = await newJob(3);
    const before = await deps.slots.readGlobal();
    const { slots, takes } = countedSlots();
    const consume = createQueueConsumer({ ...deps, launcher, slots });
    const run = { type: 'run', jobId: job.jobId, attempt: 1 } as const;
    const out = await consume(
      sqsEvent([
        { ...run, taskNo: 1 },
        { ...run, taskNo: 2 },
        { ...run, taskNo: 3 },
        { ...run, taskNo: 3 },
      ]),
    );
    expect(out.batchItemFailures).toEqual([]);
    expect(takes).toEqual([4]);
    expect(launcher.launched.map((l) => l.taskNo).sort()).toEqual([1, 2, 3]);
    // Three workers hold three slots; the duplicate's went back.
    expect(await deps.slots.readGlobal()).toBe(before + 3);
    for (let i = 0; i < 3; i++) await deps.slots.releaseGlobal();
  });

  it('when the deployment has room for fewer than the batch, each message takes its own: the rest wait, and no slot is left taken', async () => {
    const job = await newJob(3);
    const max = deps.settings.worker.maxRunning;
    const held = max - 2 - (await deps.slots.readGlobal());
    for (let i = 0; i < held; i++) await deps.slots.acquireGlobal(max);
    try {
      const { slots, takes } = countedSlots();
      const { deps: watched, sent } = watchedDeps();
      const consume = createQueueConsumer({ ...watched, slots });
      const run = { type: 'run', jobId: job.jobId, attempt: 1 } as const;
      await consume(sqsEvent([1, 2, 3].map((taskNo) => ({ ...run, taskNo }))));
      // The batch's write failed (room for 2 of 3), then one take each.
      expect(takes).toEqual([3, 1, 1, 1]);
      expect(launcher.launched).toHaveLength(2);
      expect(sent.map((s) => s.message)).toEqual([
        expect.objectContaining({ type: 'run', slotWait: { scope: 'deployment', times: 1 } }),
      ]);
      expect(await deps.slots.readGlobal()).toBe(max);
      for (let i = 0; i < 2; i++) await deps.slots.releaseGlobal();
    } finally {
      for (let i = 0; i < held; i++) await deps.slots.releaseGlobal();
    }
  });

  it('slots taken for a batch and never handed out are given back', async () => {
    const before = await deps.slots.readGlobal();
    const slots = batchDeploymentSlots({ ...deps, launcher }, 3);
    expect(await slots.take()).toBe(true);
    expect(await deps.slots.readGlobal()).toBe(before + 3);
    await slots.settle();
    expect(await deps.slots.readGlobal()).toBe(before + 1);
    await deps.slots.releaseGlobal();
  });

  it('gives several deployment slots back at once, and never below zero', async () => {
    const before = await deps.slots.readGlobal();
    expect(await deps.slots.acquireGlobal(before + 10, 4)).toBe(true);
    await deps.slots.releaseGlobal(3);
    expect(await deps.slots.readGlobal()).toBe(before + 1);
    // More than the counter holds (a repair lowered it meanwhile): down to zero, not below.
    await deps.slots.repairGlobal(before + 1, 1);
    await deps.slots.releaseGlobal(3);
    expect(await deps.slots.readGlobal()).toBe(0);
    if (before > 0) await deps.slots.repairGlobal(0, before);
  });

  it('an ECS "task stopped" event for a worker that never reported fails its attempt with why, once', async () => {
    const job = await newJob(1);
    const handle = await launchAndRun(job.jobId, 1);
    const reconcile = createReconciler(deps, launcher, 'worker');
    const event = stoppedEvent(handle, `${job.jobId}/1/1`, { stopCode: 'SpotInterruption', exitCode: 143 });
    expect(await reconcile(event)).toEqual({ recorded: true });
    const task = await deps.tasks.getTask(job.jobId, 1);
    expect(task).toMatchObject({ state: 'queued', attempt: 2 });
    expect(task?.attempts[0]).toMatchObject({ attempt: 1, state: 'failed', exitCode: 143 });
    expect(task?.attempts[0]?.error).toMatch(/Spot interrupted/);
    // The same event again (EventBridge is at-least-once) changes nothing.
    expect(await reconcile(event)).toEqual({ recorded: false });
    expect((await deps.tasks.getTask(job.jobId, 1))?.attempts).toHaveLength(1);
  });

  it('a stopped event for a worker that already reported never moves a final task back', async () => {
    const job = await newJob(1);
    const handle = await launchAndRun(job.jobId, 1);
    const now = new Date(clock).toISOString();
    await deps.tasks.endAttempt(
      job.jobId,
      1,
      1,
      ['running'],
      { state: 'succeeded', attempt: 1 },
      { attempt: 1, state: 'succeeded', finishedAt: now },
      undefined,
      now,
    );
    const reconcile = createReconciler(deps, launcher, 'worker');
    expect(await reconcile(stoppedEvent(handle, `${job.jobId}/1/1`, { exitCode: 0 }))).toEqual({
      recorded: false,
    });
    expect((await deps.tasks.getTask(job.jobId, 1))?.state).toBe('succeeded');
  });

  it('the sweep repairs lost, overdue, never-launched and forgotten tasks and leaves healthy ones alone', async () => {
    // A table of its own, so tasks other tests left active do not count here.
    const swept = await ensureResources(clients, {
      tableName: resourceName('reconcile-sweep'),
      queueName: resourceName('reconcile-work'),
      deadLetterQueueName: resourceName('reconcile-dlq'),
      bucketName: resourceName('reconcile-artifacts'),
      maxReceiveCount: 5,
      visibilityTimeoutSec: 30,
    });
    const shared = deps;
    deps = { ...shared, ...tableStores(clients.ddb, swept.tableName) };
    try {
      await sweepScenario();
    } finally {
      deps = shared;
    }
  });

  async function sweepScenario(): Promise<void> {
    const job = await newJob(6);
    const lostHandle = await launchAndRun(job.jobId, 1); // the launcher no longer knows it
    const overdueHandle = await launchAndRun(job.jobId, 2); // still running, far past its 60 s timeout
    // Task 3: claimed, but the dispatcher died before launching (no handle).
    await deps.tasks.claimTask(job.jobId, 3, 1, 'f'.repeat(64), new Date(clock).toISOString());
    // Task 4: queued, its run message lost. Task 5: healthy, running, recently started.
    launcher.statuses.set(lostHandle, { state: 'missing' });
    await drainQueue();

    clock += 60 * 60_000; // an hour later
    const healthyHandle = await launchAndRun(job.jobId, 5);
    // Task 6: running, its last heartbeat 40 s before the sweep, over a 30 s heartbeat_timeout.
    const silentHandle = await launchAndRun(job.jobId, 6);
    await deps.tasks.recordHeartbeat(job.jobId, 6, 1, clock, 0);
    clock += 40_000;
    await deps.tasks.recordHeartbeat(job.jobId, 5, 1, clock, 0);
    const settings = deps.settings;
    deps = { ...deps, settings: { ...settings, worker: { ...settings.worker, heartbeatTimeoutSec: 30 } } };
    const report = await sweepActiveTasks(deps, launcher);

    expect(report).toMatchObject({ lost: 3, overdue: 1, requeued: 1 });
    expect(launcher.stopped).toEqual([overdueHandle, silentHandle]);
    const [t1, t2, t3, t4, t5, t6] = await Promise.all(
      [1, 2, 3, 4, 5, 6].map((n) => deps.tasks.getTask(job.jobId, n)),
    );
    expect(t6?.attempts[0]?.error).toMatch(
      /no progress or heartbeat for 40s \(workers\.heartbeat_timeout 30s\)/,
    );
    expect(t1?.attempts[0]?.error).toMatch(/no longer knows/);
    expect(t2?.attempts[0]).toMatchObject({ state: 'timed_out' });
    expect(t3?.attempts[0]?.error).toMatch(/never launched/);
    expect(t4).toMatchObject({ state: 'queued', attempt: 1 });
    expect(t5).toMatchObject({ state: 'running', attempt: 1, launchHandle: healthyHandle });
    const sent = await drainQueue();
    expect(sent).toContainEqual({ type: 'run', jobId: job.jobId, taskNo: 4, attempt: 1 });
    expect(sent).toContainEqual({ type: 'run', jobId: job.jobId, taskNo: 1, attempt: 2 });
    expect(report.examined).toBe(6);
  }

  it('a poison run message fails its queued task, without retries, and the job still finishes', async () => {
    const job = await newJob(1);
    await handleDeadLetter(deps, { type: 'run', jobId: job.jobId, taskNo: 1, attempt: 1 }, 5);
    const task = await deps.tasks.getTask(job.jobId, 1);
    expect(task).toMatchObject({ state: 'failed', attempt: 1 });
    expect(task?.attempts[0]?.error).toMatch(/could never start: .*failed 5 deliveries.*dead-letter queue/);
    // The task was the job's last: the aggregate message is on the queue.
    expect(await drainQueue()).toContainEqual({ type: 'aggregate', jobId: job.jobId });
    // The aggregator ends the job and counts it (JobsFinished), once however often it runs.
    expect(finished).toEqual([]);
    expect(await aggregateJob(deps, job.jobId)).toBe('aggregated');
    expect(await aggregateJob(deps, job.jobId)).toBe('already_final');
    expect(finished).toEqual(['failed']);
  });

  it('a poison run message for a running worker fails that attempt for good', async () => {
    const job = await newJob(1);
    await launchAndRun(job.jobId, 1);
    await handleDeadLetter(deps, { type: 'run', jobId: job.jobId, taskNo: 1, attempt: 1 }, 5);
    expect(await deps.tasks.getTask(job.jobId, 1)).toMatchObject({ state: 'failed', attempt: 1 });
  });

  it('a poison aggregate message fails the job with the reason; a stale one changes nothing', async () => {
    const job = await newJob(1);
    await handleDeadLetter(deps, { type: 'aggregate', jobId: job.jobId }, 5);
    const failed = await deps.jobs.getJob(job.jobId);
    expect(failed).toMatchObject({ status: 'failed' });
    expect(failed?.error).toMatch(/aggregation failed/);
    expect(finished).toEqual(['failed']);
    await handleDeadLetter(deps, { type: 'run', jobId: job.jobId, taskNo: 1, attempt: 7 }, 5);
    expect((await deps.tasks.getTask(job.jobId, 1))?.state).toBe('queued');
    // A second delivery of the same poison message counts nothing more.
    await handleDeadLetter(deps, { type: 'aggregate', jobId: job.jobId }, 5);
    expect(finished).toEqual(['failed']);
  });

  it('the sweep gives back running slots a crash left taken', async () => {
    const job = await newJob(2);
    await launchAndRun(job.jobId, 1);
    // A crash after a task's final write but before its slot release: the counter says 2, one runs.
    expect(await deps.slots.acquireJob(job.jobId)).toBe(true);
    expect(await deps.slots.acquireGlobal(1000)).toBe(true);
    expect((await deps.jobs.getJob(job.jobId))?.runningTasks).toBe(2);
    await sweepActiveTasks(deps, launcher);
    expect((await deps.jobs.getJob(job.jobId))?.runningTasks).toBe(1);
  });

  it('a final task stays in the sweep index until its job has counted it, and the sweep finishes that if its writer crashed', async () => {
    const job = await newJob(1);
    await launchAndRun(job.jobId, 1);
    const now = new Date(clock).toISOString();
    // The final write lands, then the writer dies before counting the task (or loses the response).
    await deps.tasks.endAttempt(
      job.jobId,
      1,
      1,
      ['running'],
      { state: 'succeeded', attempt: 1 },
      { attempt: 1, state: 'succeeded', finishedAt: now },
      undefined,
      now,
    );
    expect((await deps.tasks.listActiveTasks(1000)).some((t) => t.jobId === job.jobId)).toBe(true);
    await drainQueue();

    clock += 2 * 60_000;
    const report = await sweepActiveTasks(deps, launcher);
    expect(report.followedUp).toBeGreaterThanOrEqual(1);
    expect((await deps.jobs.getJob(job.jobId))?.finishedTasks).toEqual([1]);
    expect(await drainQueue()).toContainEqual({ type: 'aggregate', jobId: job.jobId });
    expect((await deps.tasks.listActiveTasks(1000)).some((t) => t.jobId === job.jobId)).toBe(false);
  });

  it('the sweep finishes a repository job whose last worker was lost, with only the actions the reconciler is granted', async () => {
    // A table of its own, so the sweep sees only this job; clients that refuse what IAM would refuse.
    const own = await ensureResources(clients, {
      tableName: resourceName('reconcile-repo'),
      queueName: resourceName('reconcile-work'),
      deadLetterQueueName: resourceName('reconcile-dlq'),
      bucketName: resourceName('reconcile-artifacts'),
      maxReceiveCount: 5,
      visibilityTimeoutSec: 30,
    });
    const full = new Set([
      ...RECONCILER_TABLE_ACTIONS.map((a) => `dynamodb:${a}`),
      ...RECONCILER_QUEUE_ACTIONS,
    ]);
    // What the reconciler had before: no PutItem.
    const before = new Set([...full].filter((a) => a !== 'dynamodb:PutItem'));
    let granted: ReadonlySet<string> | 'all' = 'all';
    const denied: string[] = [];
    const guarded = createAwsClients(
      backend.env,
      iamGuard(() => granted, denied),
    );
    const shared = deps;
    deps = {
      ...shared,
      ...tableStores(guarded.ddb, own.tableName),
      queue: new WorkQueue(guarded.sqs, queueUrl),
      artifacts: new Artifacts(guarded.s3, own.bucketName),
    };
    try {
      await repositoryScenario();
    } finally {
      deps = shared;
    }

    async function repositoryScenario(): Promise<void> {
      // Two work tasks on a known base, no retries: the lost one is final at once.
      const source: JobSource = {
        kind: 'bundle',
        baseCommit: 'a'.repeat(40),
        bundles: ['sources/t/base.bundle'],
      };
      // Setting up is the API's and the dispatcher's work, with their own grants.
      const job = await newJob(2, { maxRetries: 0, source });
      await launchAndRun(job.jobId, 1);
      const lostHandle = await launchAndRun(job.jobId, 2);
      // Task 1 reported a commit and was counted; task 2's container then died without a word.
      const now = new Date(clock).toISOString();
      const done = await deps.tasks.endAttempt(
        job.jobId,
        1,
        1,
        ['running'],
        { state: 'succeeded', attempt: 1 },
        { attempt: 1, state: 'succeeded', finishedAt: now },
        {
          output: 'done',
          outputTruncated: false,
          filesCreated: [],
          costUsd: 0,
          numTurns: 1,
          durationMs: 1,
          git: {
            kind: 'work',
            commit: 'b'.repeat(40),
            files: { added: ['a.txt'], modified: [], deleted: [] },
            insertions: 1,
            deletions: 0,
            excluded: [],
          },
        },
        now,
      );
      if (!done) throw new Error('task 1 did not end');
      await followUp(deps, done, now);
      launcher.statuses.set(lostHandle, {
        state: 'stopped',
        reason: 'the worker ran out of memory',
        exitCode: 137,
      });
      await drainQueue();
      clock += 10_000;

      // With the old grants the sweep records the lost worker, then cannot create the merge step.
      granted = before;
      await expect(sweepActiveTasks(deps, launcher)).rejects.toMatchObject({ name: 'AccessDeniedException' });
      expect(denied).toEqual(['dynamodb:PutItem']);
      expect(await deps.tasks.getTask(job.jobId, STEP_TASK_NO.merge)).toBeUndefined();
      expect((await deps.tasks.getTask(job.jobId, 2))?.state).toBe('failed');
      await drainQueue();

      // With the reconciler's grants, the next sweep redoes the follow-up and the job moves on to its merge.
      granted = full;
      denied.length = 0;
      clock += 2 * 60_000;
      const reconcile = createReconciler(deps, launcher, 'worker');
      const { sweep } = await reconcile(scheduledEvent());
      expect(sweep?.followedUp).toBeGreaterThanOrEqual(1);
      expect(denied).toEqual([]);
      expect(await deps.tasks.getTask(job.jobId, STEP_TASK_NO.merge)).toMatchObject({
        kind: 'merge',
        state: 'queued',
        attempt: 1,
      });
      expect(await drainQueue()).toContainEqual({
        type: 'run',
        jobId: job.jobId,
        taskNo: STEP_TASK_NO.merge,
        attempt: 1,
      });
      const lost = await deps.tasks.getTask(job.jobId, 2);
      expect(lost?.attempts[0]).toMatchObject({ state: 'failed', exitCode: 137 });
      expect((await deps.jobs.getJob(job.jobId))?.finishedTasks.sort()).toEqual([1, 2]);
      // The lost task has been counted: the sweep no longer watches it; the merge step it started, it does.
      const active = (await deps.tasks.listActiveTasks(1000)).map((t) => t.taskNo);
      expect(active).not.toContain(2);
      expect(active).toContain(STEP_TASK_NO.merge);
    }
  });
});

function stoppedEvent(
  taskArn: string,
  taskId: string,
  extra: { stopCode?: string; exitCode?: number },
): ReconcilerEvent {
  return {
    version: '0',
    id: 'e',
    'detail-type': 'ECS Task State Change',
    source: 'aws.ecs',
    account: '123456789012',
    time: new Date().toISOString(),
    region: 'us-east-1',
    resources: [taskArn],
    detail: {
      taskArn,
      lastStatus: 'STOPPED',
      stoppedReason: 'Task stopped',
      ...(extra.stopCode ? { stopCode: extra.stopCode } : {}),
      containers: [{ name: 'worker', ...(extra.exitCode !== undefined ? { exitCode: extra.exitCode } : {}) }],
      overrides: {
        containerOverrides: [
          {
            name: 'worker',
            environment: [
              { name: 'TASK_ID', value: taskId },
              { name: 'TASK_TOKEN', value: 'tt1.secret' },
            ],
          },
        ],
      },
    },
  };
}

function scheduledEvent(): ReconcilerEvent {
  return {
    version: '0',
    id: 's',
    'detail-type': 'Scheduled Event',
    source: 'aws.events',
    account: '123456789012',
    time: new Date().toISOString(),
    region: 'us-east-1',
    resources: [],
    detail: {},
  };
}
