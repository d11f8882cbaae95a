/**
 * The Fargate launcher against a scripted fake ECS client: the RunTask request
 * it builds, how it reads failures and errors, its retries and backoff, and
 * the stop and describe calls the reconciler relies on.
 */
import {
  AccessDeniedException,
  ClientException,
  ClusterNotFoundException,
  ConflictException,
  ECSClient,
  InvalidParameterException,
  PlatformTaskDefinitionIncompatibilityException,
  PlatformUnknownException,
  ServerException,
  UnsupportedFeatureException,
} from '@aws-sdk/client-ecs';
import { describe, expect, it } from 'vitest';
import {
  clientTokenFor,
  EcsLauncher,
  type EcsLauncherConfig,
  type EcsLike,
  LaunchConflictError,
  stopReason,
} from '../../functions/adapters/ecs-launcher.ts';
import { LaunchRefusedError, type LaunchRequest } from '../../functions/adapters/launcher.ts';
import { parseTaskIdEnv, taskIdEnv } from '../../functions/core/tokens.ts';

type Step = unknown | Error | ((input: Record<string, unknown>) => unknown);

/** Records each command's class name and input; answers from a script, in order. */
class FakeEcs implements EcsLike {
  readonly calls: { name: string; input: Record<string, unknown> }[] = [];
  constructor(private readonly script: Step[] = []) {}

  push(...steps: Step[]): this {
    this.script.push(...steps);
    return this;
  }

  async send(command: unknown): Promise<unknown> {
    const { input } = command as { input: Record<string, unknown> };
    const name = (command as object).constructor.name;
    this.calls.push({ name, input: structuredClone(input) });
    if (this.script.length === 0) throw new Error(`unscripted ${name}`);
    const next = this.script.shift();
    if (next instanceof Error) throw next;
    return typeof next === 'function' ? (next as (i: Record<string, unknown>) => unknown)(input) : next;
  }
}

const CONFIG: EcsLauncherConfig = {
  cluster: 'arn:aws:ecs:eu-west-1:111122223333:cluster/fleet',
  taskDefinition: 'fleet-worker',
  gitTaskDefinition: 'fleet-git',
  containerName: 'worker',
  subnets: ['subnet-a', 'subnet-b'],
  securityGroups: ['sg-1'],
  assignPublicIp: false,
  capacityProvider: 'FARGATE_SPOT',
};

const REQUEST: LaunchRequest = {
  jobId: '0123456789abcdef0123',
  taskNo: 2,
  attempt: 1,
  taskToken: `tt1.0123456789abcdef0123.2.1.${'A'.repeat(43)}`,
  timeoutSec: 600,
  kind: 'work',
};

const TASK_ARN = 'arn:aws:ecs:eu-west-1:111122223333:task/fleet/0a1b2c3d4e5f';
const started = (arn = TASK_ARN) => ({ tasks: [{ taskArn: arn, lastStatus: 'PROVISIONING' }], failures: [] });

/** An error shaped as SDK v3 throws unmodeled ones (throttling, timeouts). */
function awsError(name: string, message: string, extra: Record<string, unknown> = {}): Error {
  return Object.assign(new Error(message), { name, $metadata: {}, ...extra });
}

function launcher(
  ecs: EcsLike,
  config: Partial<EcsLauncherConfig> = {},
  sleeps: number[] = [],
  random = 0.5,
) {
  return new EcsLauncher(
    ecs,
    { ...CONFIG, ...config },
    {
      sleep: async (ms) => {
        sleeps.push(ms);
      },
      random: () => random,
    },
  );
}

async function refusal(promise: Promise<unknown>): Promise<LaunchRefusedError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(LaunchRefusedError);
  return err as LaunchRefusedError;
}

describe('EcsLauncher.launch: the RunTask request', () => {
  it('runs one task with a capacity provider strategy, ids-only overrides, tags and a client token', async () => {
    const ecs = new FakeEcs([started()]);
    const handle = await launcher(ecs).launch(REQUEST);

    expect(handle).toEqual({ handle: TASK_ARN });
    expect(ecs.calls).toHaveLength(1);
    const [call] = ecs.calls;
    expect(call?.name).toBe('RunTaskCommand');
    const input = call?.input ?? {};
    expect(input).toEqual({
      cluster: CONFIG.cluster,
      taskDefinition: 'fleet-worker',
      count: 1,
      clientToken: clientTokenFor(REQUEST),
      capacityProviderStrategy: [{ capacityProvider: 'FARGATE_SPOT', weight: 1 }],
      networkConfiguration: {
        awsvpcConfiguration: {
          subnets: ['subnet-a', 'subnet-b'],
          securityGroups: ['sg-1'],
          assignPublicIp: 'DISABLED',
        },
      },
      overrides: {
        containerOverrides: [
          {
            name: 'worker',
            environment: [
              { name: 'TASK_ID', value: '0123456789abcdef0123/2/1' },
              { name: 'TASK_TOKEN', value: REQUEST.taskToken },
            ],
          },
        ],
      },
      startedBy: '0123456789abcdef0123',
      tags: [
        { key: 'job', value: '0123456789abcdef0123' },
        { key: 'task', value: '2' },
        { key: 'attempt', value: '1' },
      ],
      enableECSManagedTags: true,
      propagateTags: 'TASK_DEFINITION',
    });
    expect(input).not.toHaveProperty('launchType');
  });

  it('asks for a public IP only when configured to, and uses the configured capacity provider', async () => {
    const ecs = new FakeEcs([started()]);
    await launcher(ecs, { assignPublicIp: true, capacityProvider: 'FARGATE' }).launch(REQUEST);
    const input = ecs.calls[0]?.input as {
      networkConfiguration: { awsvpcConfiguration: { assignPublicIp: string } };
      capacityProviderStrategy: unknown;
    };
    expect(input.networkConfiguration.awsvpcConfiguration.assignPublicIp).toBe('ENABLED');
    expect(input.capacityProviderStrategy).toEqual([{ capacityProvider: 'FARGATE', weight: 1 }]);
    expect(input).not.toHaveProperty('launchType');
  });

  it('starts the steps without AI (fetch, push) from the git task definition, every other kind from the worker one', async () => {
    const ecs = new FakeEcs([started(), started(), started(), started(), started()]);
    for (const kind of ['source', 'push', 'work', 'plan', 'merge'] as const)
      await launcher(ecs).launch({ ...REQUEST, kind });
    expect(ecs.calls.map((c) => (c.input as { taskDefinition: string }).taskDefinition)).toEqual([
      'fleet-git',
      'fleet-git',
      'fleet-worker',
      'fleet-worker',
      'fleet-worker',
    ]);
  });

  it('refuses a credentialed step for good when no git task definition is configured', async () => {
    const ecs = new FakeEcs([started()]);
    const err = await refusal(
      launcher(ecs, { gitTaskDefinition: undefined }).launch({ ...REQUEST, kind: 'source' }),
    );
    expect(err.retryable).toBe(false);
    expect(ecs.calls).toHaveLength(0);
  });

  it('cuts startedBy to 36 characters for long job ids', async () => {
    const jobId = 'j'.repeat(64);
    const ecs = new FakeEcs([started()]);
    await launcher(ecs).launch({ ...REQUEST, jobId });
    const input = ecs.calls[0]?.input as { startedBy: string; tags: { key: string; value: string }[] };
    expect(input.startedBy).toBe('j'.repeat(36));
    expect(input.tags[0]).toEqual({ key: 'job', value: jobId });
  });

  it('refuses, without calling ECS, overrides over 8192 bytes', async () => {
    const ecs = new FakeEcs([started()]);
    const err = await refusal(launcher(ecs).launch({ ...REQUEST, taskToken: 'x'.repeat(8_100) }));
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/8192/);
    expect(ecs.calls).toHaveLength(0);
  });

  it('accepts overrides just under the limit', async () => {
    const ecs = new FakeEcs([started()]);
    await launcher(ecs).launch({ ...REQUEST, taskToken: 'x'.repeat(7_900) });
    expect(ecs.calls).toHaveLength(1);
  });
});

describe('clientTokenFor', () => {
  const ascii = /^[\x21-\x7e]{1,64}$/;

  it('is deterministic, at most 64 printable ASCII characters, and differs per job, task, attempt and task token', () => {
    const token = clientTokenFor(REQUEST);
    expect(token).toMatch(ascii);
    expect(clientTokenFor({ ...REQUEST })).toBe(token);
    const others = [
      clientTokenFor({ ...REQUEST, attempt: 2 }),
      clientTokenFor({ ...REQUEST, taskNo: 3 }),
      clientTokenFor({ ...REQUEST, jobId: 'fedcba98765432100123' }),
      // A redelivered dispatch of the same attempt mints a new task token: a distinct RunTask, never a ConflictException.
      clientTokenFor({ ...REQUEST, taskToken: `${REQUEST.taskToken}x` }),
    ];
    expect(new Set([token, ...others]).size).toBe(5);
  });

  it('stays within 64 characters and distinct for the longest job ids', () => {
    const jobId = 'z'.repeat(64);
    const taskToken = REQUEST.taskToken;
    const a = clientTokenFor({ jobId, taskNo: 999_999, attempt: 1, taskToken });
    const b = clientTokenFor({ jobId, taskNo: 999_999, attempt: 2, taskToken });
    expect(a).toMatch(ascii);
    expect(b).toMatch(ascii);
    expect(a).not.toBe(b);
    expect(clientTokenFor({ jobId, taskNo: 999_999, attempt: 1, taskToken })).toBe(a);
  });

  it('is a different token for each attempt the launcher sends', async () => {
    const ecs = new FakeEcs([started(), started()]);
    const l = launcher(ecs);
    await l.launch(REQUEST);
    await l.launch({ ...REQUEST, attempt: 2 });
    expect(ecs.calls[0]?.input.clientToken).not.toBe(ecs.calls[1]?.input.clientToken);
  });
});

describe('EcsLauncher.launch: failures[] in the answer', () => {
  const retryableFailures = [
    {
      reason:
        'Capacity is unavailable at this time. Please try again later or in a different availability zone',
    },
    { arn: 'arn:aws:ecs:eu-west-1:111122223333:container-instance/x', reason: 'RESOURCE:MEMORY' },
    { reason: 'RESOURCE:CPU' },
    { reason: 'AGENT' },
  ];
  for (const failure of retryableFailures) {
    it(`refuses retryably on ${failure.reason.slice(0, 30)}, after one RunTask`, async () => {
      const ecs = new FakeEcs([{ tasks: [], failures: [failure] }]);
      const err = await refusal(launcher(ecs).launch(REQUEST));
      expect(err.retryable).toBe(true);
      expect(err.message).toContain(failure.reason);
      expect(ecs.calls).toHaveLength(1);
    });
  }

  const finalFailures = [
    { arn: 'arn:aws:ecs:eu-west-1:111122223333:task-definition/fleet-worker', reason: 'MISSING' },
    { arn: 'arn:aws:ecs:eu-west-1:111122223333:task-definition/fleet-worker:3', reason: 'INACTIVE' },
  ];
  for (const failure of finalFailures) {
    it(`refuses for good on ${failure.reason}`, async () => {
      const ecs = new FakeEcs([{ tasks: [], failures: [failure] }]);
      const err = await refusal(launcher(ecs).launch(REQUEST));
      expect(err.retryable).toBe(false);
      expect(err.message).toContain(failure.reason);
      expect(err.message).toContain(failure.arn);
    });
  }

  it('never reports a launch without a task ARN', async () => {
    for (const answer of [{}, { tasks: [], failures: [] }, { tasks: [{ lastStatus: 'PROVISIONING' }] }]) {
      const err = await refusal(launcher(new FakeEcs([answer])).launch(REQUEST));
      expect(err.retryable).toBe(true);
    }
  });
});

describe('EcsLauncher.launch: errors from ECS', () => {
  it('retries throttling with the same client token, then returns the task', async () => {
    const sleeps: number[] = [];
    const ecs = new FakeEcs([
      awsError('ThrottlingException', 'Rate exceeded', { $metadata: { httpStatusCode: 400 } }),
      awsError('ThrottlingException', 'Rate exceeded', { $metadata: { httpStatusCode: 400 } }),
      started(),
    ]);
    const handle = await launcher(ecs, {}, sleeps).launch(REQUEST);
    expect(handle.handle).toBe(TASK_ARN);
    expect(ecs.calls).toHaveLength(3);
    const tokens = ecs.calls.map((c) => c.input.clientToken);
    expect(new Set(tokens)).toEqual(new Set([clientTokenFor(REQUEST)]));
    // The whole request is identical on every try, as ECS's idempotency requires.
    expect(ecs.calls[2]?.input).toEqual(ecs.calls[0]?.input);
    expect(sleeps).toHaveLength(2);
  });

  it('gives up after maxAttempts sends with a retryable refusal', async () => {
    const throttle = () => awsError('ThrottlingException', 'Rate exceeded');
    const ecs = new FakeEcs([throttle(), throttle(), throttle()]);
    const err = await refusal(launcher(ecs).launch(REQUEST));
    expect(err.retryable).toBe(true);
    expect(err.message).toMatch(/ThrottlingException: Rate exceeded/);
    expect(ecs.calls).toHaveLength(3);

    const five = new FakeEcs(Array.from({ length: 5 }, throttle));
    const l = new EcsLauncher(five, CONFIG, { maxAttempts: 5, sleep: async () => {}, random: () => 0 });
    expect((await refusal(l.launch(REQUEST))).retryable).toBe(true);
    expect(five.calls).toHaveLength(5);
  });

  const transient: [string, Error][] = [
    [
      'ServerException',
      new ServerException({ message: 'Service error', $metadata: { httpStatusCode: 500 } }),
    ],
    ['TooManyRequestsException', awsError('TooManyRequestsException', 'slow down')],
    ['RequestLimitExceeded', awsError('RequestLimitExceeded', 'Request limit exceeded.')],
    ['HTTP 429', awsError('UnknownError', 'too many', { $metadata: { httpStatusCode: 429 } })],
    ['ServiceUnavailableException', awsError('ServiceUnavailableException', 'unavailable')],
    ['HTTP 502', awsError('UnknownError', 'bad gateway', { $metadata: { httpStatusCode: 502 } })],
    ['TimeoutError', awsError('TimeoutError', 'Connection timed out after 3000 ms')],
    ['ECONNRESET', Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })],
    ['LimitExceededException', awsError('LimitExceededException', 'limit exceeded')],
    [
      'EC2 throttling wrapped in InvalidParameterException',
      new InvalidParameterException({
        message:
          'Error retrieving security group information for [sg-1]: Request limit exceeded. (ErrorCode: RequestLimitExceeded)',
        $metadata: { httpStatusCode: 400 },
      }),
    ],
  ];
  for (const [label, error] of transient) {
    it(`retries ${label}`, async () => {
      const ecs = new FakeEcs([error, started()]);
      expect((await launcher(ecs).launch(REQUEST)).handle).toBe(TASK_ARN);
      expect(ecs.calls).toHaveLength(2);
    });
  }

  const meta = { $metadata: { httpStatusCode: 400 } };
  const clientErrors: Error[] = [
    new ClientException({ message: 'The specified task definition does not exist.', ...meta }),
    new InvalidParameterException({ message: 'No Container Instances were found in your cluster.', ...meta }),
    new AccessDeniedException({ message: 'not authorized to perform: ecs:TagResource', ...meta }),
    new ClusterNotFoundException({ message: 'Cluster not found.', ...meta }),
    new PlatformUnknownException({ message: 'The specified platform version does not exist.', ...meta }),
    new PlatformTaskDefinitionIncompatibilityException({ message: 'requires capability X', ...meta }),
    new UnsupportedFeatureException({ message: 'not supported in this Region', ...meta }),
  ];
  for (const error of clientErrors) {
    it(`refuses ${error.name} at once, for good, with the AWS message`, async () => {
      const sleeps: number[] = [];
      const ecs = new FakeEcs([error, started()]);
      const err = await refusal(launcher(ecs, {}, sleeps).launch(REQUEST));
      expect(err.retryable).toBe(false);
      expect(err.message).toContain(error.name);
      expect(err.message).toContain(error.message);
      expect(ecs.calls).toHaveLength(1);
      expect(sleeps).toEqual([]);
    });
  }

  it('reports a client-token conflict with the tasks already started for it', async () => {
    const other = 'arn:aws:ecs:eu-west-1:111122223333:task/fleet/other';
    const ecs = new FakeEcs([
      new ConflictException({ message: 'clientToken in use', resourceIds: [other], $metadata: {} }),
    ]);
    const err = await refusal(launcher(ecs).launch(REQUEST));
    expect(err).toBeInstanceOf(LaunchConflictError);
    expect(err.retryable).toBe(false);
    expect((err as LaunchConflictError).existingHandles).toEqual([other]);
    expect(err.message).toContain(other);
    expect(ecs.calls).toHaveLength(1);
  });

  it('does not retry an unknown error, but lets the queue retry it', async () => {
    const ecs = new FakeEcs([new TypeError('boom'), started()]);
    const err = await refusal(launcher(ecs).launch(REQUEST));
    expect(err.retryable).toBe(true);
    expect(ecs.calls).toHaveLength(1);
  });
});

describe('EcsLauncher: backoff', () => {
  const throttles = (n: number) =>
    Array.from({ length: n }, () => awsError('ThrottlingException', 'Rate exceeded'));

  async function delays(
    random: number,
    options: { maxAttempts: number; baseDelayMs: number; maxDelayMs?: number },
  ) {
    const sleeps: number[] = [];
    const l = new EcsLauncher(new FakeEcs(throttles(options.maxAttempts)), CONFIG, {
      ...options,
      sleep: async (ms) => {
        sleeps.push(ms);
      },
      random: () => random,
    });
    await refusal(l.launch(REQUEST));
    return sleeps;
  }

  it('doubles the ceiling each retry and jitters within its upper half', async () => {
    const low = await delays(0, { maxAttempts: 3, baseDelayMs: 200 });
    const high = await delays(0.999, { maxAttempts: 3, baseDelayMs: 200 });
    expect(low).toEqual([100, 200]);
    expect(high).toEqual([200, 400]);
    const mid = await delays(0.5, { maxAttempts: 3, baseDelayMs: 200 });
    expect(mid).toEqual([150, 300]);
  });

  it('never waits longer than maxDelayMs, however many attempts', async () => {
    const sleeps = await delays(0.999, { maxAttempts: 8, baseDelayMs: 1_000, maxDelayMs: 5_000 });
    expect(sleeps).toHaveLength(7);
    for (const ms of sleeps) {
      expect(ms).toBeGreaterThan(0);
      expect(ms).toBeLessThanOrEqual(5_000);
    }
    // Ceilings 1s, 2s, 4s, then capped at 5s: the delay stays in the cap's upper half.
    expect(sleeps.slice(0, 3)).toEqual([1_000, 1_999, 3_998]);
    for (const ms of sleeps.slice(3)) expect(ms).toBeGreaterThanOrEqual(2_500);
  });

  it('sleeps nothing when the first send succeeds', async () => {
    const sleeps: number[] = [];
    await launcher(new FakeEcs([started()]), {}, sleeps).launch(REQUEST);
    expect(sleeps).toEqual([]);
  });
});

describe('EcsLauncher.stop', () => {
  it('sends StopTask with the cluster, the handle and the reason cut to 255 characters', async () => {
    const ecs = new FakeEcs([{ task: { taskArn: TASK_ARN } }]);
    await launcher(ecs).stop(TASK_ARN, 'r'.repeat(400));
    expect(ecs.calls).toEqual([
      {
        name: 'StopTaskCommand',
        input: { cluster: CONFIG.cluster, task: TASK_ARN, reason: 'r'.repeat(255) },
      },
    ]);
  });

  it('accepts a task that has already stopped or that ECS no longer knows', async () => {
    for (const message of ['The referenced task was not found.', 'The task is already stopped.']) {
      const ecs = new FakeEcs([
        new InvalidParameterException({ message, $metadata: { httpStatusCode: 400 } }),
      ]);
      await expect(launcher(ecs).stop(TASK_ARN, 'cancelled')).resolves.toBeUndefined();
    }
  });

  it('throws other errors', async () => {
    const denied = new AccessDeniedException({
      message: 'no ecs:StopTask',
      $metadata: { httpStatusCode: 400 },
    });
    await expect(launcher(new FakeEcs([denied])).stop(TASK_ARN, 'x')).rejects.toBe(denied);
    const invalid = new InvalidParameterException({ message: 'Task Identifier is invalid', $metadata: {} });
    await expect(launcher(new FakeEcs([invalid])).stop('bogus', 'x')).rejects.toBe(invalid);
  });

  it('retries throttling', async () => {
    const ecs = new FakeEcs([awsError('ThrottlingException', 'Rate exceeded'), {}]);
    await launcher(ecs).stop(TASK_ARN, 'timeout');
    expect(ecs.calls).toHaveLength(2);
  });
});

describe('EcsLauncher.describe', () => {
  const arn = (i: number) => `arn:aws:ecs:eu-west-1:111122223333:task/fleet/t${i}`;

  it('asks in chunks of 100 tasks', async () => {
    const handles = Array.from({ length: 150 }, (_, i) => arn(i));
    const answer = (input: Record<string, unknown>) => ({
      tasks: (input.tasks as string[]).map((taskArn) => ({ taskArn, lastStatus: 'RUNNING' })),
      failures: [],
    });
    const ecs = new FakeEcs([answer, answer]);
    const statuses = await launcher(ecs).describe(handles);
    expect(ecs.calls.map((c) => c.name)).toEqual(['DescribeTasksCommand', 'DescribeTasksCommand']);
    expect(ecs.calls.map((c) => (c.input.tasks as string[]).length)).toEqual([100, 50]);
    expect(ecs.calls[0]?.input.cluster).toBe(CONFIG.cluster);
    expect(statuses.size).toBe(150);
    expect(statuses.get(arn(149))).toEqual({ lastStatus: 'RUNNING' });
  });

  it('maps MISSING failures, reads the worker container, and leaves out what ECS did not mention', async () => {
    const ecs = new FakeEcs([
      {
        tasks: [
          {
            taskArn: arn(1),
            lastStatus: 'STOPPED',
            stopCode: 'EssentialContainerExited',
            stoppedReason: 'Essential container in task exited',
            containers: [
              { name: 'log-router', exitCode: 0 },
              {
                name: 'worker',
                exitCode: 137,
                reason: 'OutOfMemoryError: Container killed due to memory usage',
              },
            ],
          },
          {
            taskArn: arn(2),
            lastStatus: 'STOPPED',
            stopCode: 'SpotInterruption',
            stoppedReason: 'Your Spot Task was interrupted.',
            containers: [{ name: 'worker' }],
          },
          { taskArn: arn(3), lastStatus: 'RUNNING', containers: [{ name: 'worker' }] },
        ],
        failures: [
          { arn: arn(4), reason: 'MISSING' },
          { arn: arn(5), reason: 'SOMETHING_ELSE' },
        ],
      },
    ]);
    const statuses = await launcher(ecs).describe([arn(1), arn(2), arn(3), arn(4), arn(5), arn(6)]);
    expect(statuses.get(arn(1))).toEqual({
      lastStatus: 'STOPPED',
      stopCode: 'EssentialContainerExited',
      stoppedReason: 'Essential container in task exited',
      exitCode: 137,
      containerReason: 'OutOfMemoryError: Container killed due to memory usage',
    });
    expect(statuses.get(arn(2))).toEqual({
      lastStatus: 'STOPPED',
      stopCode: 'SpotInterruption',
      stoppedReason: 'Your Spot Task was interrupted.',
    });
    expect(statuses.get(arn(3))).toEqual({ lastStatus: 'RUNNING' });
    expect(statuses.get(arn(4))).toBe('MISSING');
    expect(statuses.has(arn(5))).toBe(false);
    expect(statuses.has(arn(6))).toBe(false);
  });

  it('sends nothing for no handles and asks once for duplicates', async () => {
    const none = new FakeEcs();
    expect((await launcher(none).describe([])).size).toBe(0);
    expect(none.calls).toHaveLength(0);

    const ecs = new FakeEcs([{ tasks: [{ taskArn: arn(1), lastStatus: 'RUNNING' }] }]);
    await launcher(ecs).describe([arn(1), arn(1)]);
    expect(ecs.calls[0]?.input.tasks).toEqual([arn(1)]);
  });
});

describe('taskIdEnv and parseTaskIdEnv', () => {
  it('round-trips job, task and attempt', () => {
    for (const ids of [
      { jobId: '0123456789abcdef0123', taskNo: 1, attempt: 1 },
      { jobId: 'a_b-C', taskNo: 0, attempt: 0 },
      { jobId: 'z'.repeat(64), taskNo: 999_999, attempt: 9_999 },
    ]) {
      expect(parseTaskIdEnv(taskIdEnv(ids))).toEqual(ids);
    }
    expect(taskIdEnv(REQUEST)).toBe('0123456789abcdef0123/2/1');
  });

  it('rejects malformed values', () => {
    for (const value of [
      '',
      'job',
      'job/1',
      'job/1/2/3',
      'job/x/1',
      'job/1/-1',
      'job/01/1',
      'job/1/1.5',
      'jo b/1/1',
      'job/1/1 ',
      '/1/1',
      `${'z'.repeat(65)}/1/1`,
      'job/1234567/1',
    ]) {
      expect(parseTaskIdEnv(value)).toBeUndefined();
    }
  });
});

describe('EcsLike', () => {
  it('is satisfied by the SDK client', () => {
    const client: EcsLike = new ECSClient({ region: 'eu-west-1' });
    expect(typeof client.send).toBe('function');
  });
});

describe('status and stopReason (what the reconciler reads)', () => {
  const arn = (id: string) => `arn:aws:ecs:us-east-1:123456789012:task/cluster/${id}`;

  it('maps described tasks to running, stopped (with why) and missing', async () => {
    const ecs = new FakeEcs([
      {
        tasks: [
          { taskArn: arn('a'), lastStatus: 'RUNNING', containers: [{ name: 'worker' }] },
          {
            taskArn: arn('b'),
            lastStatus: 'STOPPED',
            stopCode: 'EssentialContainerExited',
            stoppedReason: 'Essential container in task exited',
            containers: [
              {
                name: 'worker',
                exitCode: 137,
                reason: 'OutOfMemoryError: Container killed due to memory usage',
              },
            ],
          },
        ],
        failures: [{ arn: arn('c'), reason: 'MISSING' }],
      },
    ]);
    const statuses = await launcher(ecs).status([arn('a'), arn('b'), arn('c')]);
    expect(statuses.get(arn('a'))).toEqual({ state: 'running' });
    expect(statuses.get(arn('b'))).toMatchObject({ state: 'stopped', exitCode: 137 });
    expect((statuses.get(arn('b')) as { reason: string }).reason).toMatch(/ran out of memory/);
    expect(statuses.get(arn('c'))).toEqual({ state: 'missing' });
  });

  it('names Spot interruptions, memory, exit codes and ECS reasons in words', () => {
    expect(stopReason({ lastStatus: 'STOPPED', stopCode: 'SpotInterruption' })).toMatch(/Spot interrupted/);
    expect(stopReason({ lastStatus: 'STOPPED', containerReason: 'OutOfMemoryError: killed' })).toMatch(
      /out of memory/,
    );
    expect(
      stopReason({ lastStatus: 'STOPPED', exitCode: 2, stoppedReason: 'Essential container in task exited' }),
    ).toBe('the worker exited with code 2: Essential container in task exited');
    expect(stopReason({ lastStatus: 'STOPPED', stoppedReason: 'Task failed to start' })).toBe(
      'the worker stopped: Task failed to start',
    );
  });
});
