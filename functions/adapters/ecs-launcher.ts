/**
 * The Fargate launcher: one worker is one ECS task started with RunTask. The
 * task definition carries everything static (image, API_URL, secrets, roles);
 * the RunTask overrides carry only the ids and the task token, sealed with
 * KMS so that DescribeTasks and CloudTrail show only a ciphertext.
 *
 * A launch is idempotent per attempt: every RunTask for one attempt sends the
 * same client token, so a retry after a timeout returns the task the first
 * call started instead of starting a second one. Throttling and server errors
 * are retried here with jittered backoff; capacity refusals and exhausted
 * retries become a retryable `LaunchRefusedError`, so the dispatcher releases
 * the claim and SQS redelivers later; client errors are not retryable.
 */
import { createHash } from 'node:crypto';
import {
  DescribeTasksCommand,
  type DescribeTasksCommandOutput,
  type Failure,
  RunTaskCommand,
  type RunTaskCommandInput,
  type RunTaskCommandOutput,
  StopTaskCommand,
  type Task,
  type TaskOverride,
} from '@aws-sdk/client-ecs';
import type { RateLimiter } from '../core/rate-limiter.ts';
import { taskIdEnv } from '../core/tokens.ts';
import {
  isCredentialedStep,
  type Launcher,
  type LaunchHandle,
  LaunchRefusedError,
  type LaunchRequest,
  type WorkerStatus,
} from './launcher.ts';
import { SEALED_TOKEN_ENV, type TokenSealer } from './token-seal.ts';

export interface EcsLauncherConfig {
  /** Cluster name or ARN. */
  cluster: string;
  /** Task definition family, `family:revision` or ARN: the Claude workers (plan, work, merge). */
  taskDefinition: string;
  /**
   * The task definition of the steps without AI (fetch a git URL, push a
   * result), the only one that receives the repository token. Its container
   * has the same name. Absent: such steps are refused.
   */
  gitTaskDefinition?: string | undefined;
  /** The worker container inside the task definitions; it receives the overrides. */
  containerName: string;
  subnets: string[];
  securityGroups: string[];
  assignPublicIp: boolean;
  capacityProvider: 'FARGATE' | 'FARGATE_SPOT';
  /**
   * Seals the task token for the overrides (KMS). Without one the token
   * travels in the clear, which only tests and trusted setups should accept.
   */
  tokenSealer?: TokenSealer | undefined;
}

/** The one method of `ECSClient` the launcher uses; tests pass a fake. */
export interface EcsLike {
  send(command: unknown): Promise<unknown>;
}

export interface EcsLauncherOptions {
  /** Sends per RunTask/StopTask/DescribeTasks call, first one included. @default 3 */
  maxAttempts?: number;
  /** Backoff before the second send; doubles each retry. @default 200 */
  baseDelayMs?: number;
  /** Upper bound of one backoff delay. @default 5000 */
  maxDelayMs?: number;
  sleep?: (ms: number) => Promise<void>;
  /** Uniform in [0, 1); jitters the backoff. */
  random?: () => number;
  /**
   * Paces RunTask calls of this launcher (ECS allows 20 per second per account;
   * give each of the dispatchers that may run at once its share). None: unpaced.
   */
  runTaskLimiter?: RateLimiter;
}

/** What the reconciler learns about one task handle. */
export type EcsTaskStatus =
  | {
      lastStatus: string;
      stoppedReason?: string;
      stopCode?: string;
      /** Exit code of the worker container, once it has stopped. */
      exitCode?: number;
      /** The worker container's own reason, e.g. `OutOfMemoryError: Container killed due to memory usage`. */
      containerReason?: string;
    }
  | 'MISSING';

/**
 * RunTask answered `ConflictException`: this attempt's client token was already
 * used with other parameters (e.g. an earlier dispatch of the same attempt with
 * another task token). `existingHandles` are the tasks ECS associates with it.
 */
export class LaunchConflictError extends LaunchRefusedError {
  constructor(
    message: string,
    readonly existingHandles: string[],
  ) {
    super(message, false);
    this.name = 'LaunchConflictError';
  }
}

/** ECS's limit on the serialized overrides, JSON punctuation included. */
export const MAX_OVERRIDES_BYTES = 8192;
const MAX_CLIENT_TOKEN = 64;
const MAX_STARTED_BY = 36;
const MAX_STOP_REASON = 255;
/** DescribeTasks takes at most 100 tasks per call. */
const DESCRIBE_CHUNK = 100;

/**
 * The RunTask client token of one dispatch: the same for every try inside one
 * `launch` call (so a timed-out RunTask that did start a task is not started
 * twice), and different for every other dispatch. It covers the task token
 * because ECS refuses a reused client token whose parameters differ, and each
 * dispatch of an attempt mints a new task token. A task left over from an
 * earlier, lost dispatch holds a token whose hash is no longer stored, so it
 * is refused at its first API call and exits without doing any work.
 */
export function clientTokenFor(
  request: Pick<LaunchRequest, 'jobId' | 'taskNo' | 'attempt' | 'taskToken'>,
): string {
  const digest = createHash('sha256')
    .update(`${request.jobId}\n${request.taskNo}\n${request.attempt}\n${request.taskToken}`, 'utf8')
    .digest('hex');
  return `cf1h${digest.slice(0, MAX_CLIENT_TOKEN - 4)}`;
}

/**
 * Why a worker's task stopped, in words a report reader understands: Spot
 * interruption, out of memory, exit code, or ECS's own reason.
 */
export function stopReason(s: Exclude<EcsTaskStatus, 'MISSING'>): string {
  if (s.stopCode === 'SpotInterruption') return 'Fargate Spot interrupted the worker';
  if (s.containerReason?.startsWith('OutOfMemoryError'))
    return `the worker ran out of memory (${s.containerReason})`;
  const parts = [
    s.exitCode !== undefined ? `the worker exited with code ${s.exitCode}` : 'the worker stopped',
    s.stoppedReason ? `: ${s.stoppedReason}` : '',
    s.containerReason && !s.stoppedReason?.includes(s.containerReason) ? ` (${s.containerReason})` : '',
  ];
  return parts.join('');
}

export class EcsLauncher implements Launcher {
  private readonly maxAttempts: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;
  private readonly runTaskLimiter: RateLimiter | undefined;

  constructor(
    private readonly ecs: EcsLike,
    private readonly config: EcsLauncherConfig,
    options: EcsLauncherOptions = {},
  ) {
    if (!config.cluster || !config.taskDefinition || !config.containerName)
      throw new Error('EcsLauncher: cluster, taskDefinition and containerName are required');
    if (config.subnets.length === 0) throw new Error('EcsLauncher: at least one subnet is required');
    this.maxAttempts = Math.max(1, Math.floor(options.maxAttempts ?? 3));
    this.runTaskLimiter = options.runTaskLimiter;
    this.baseDelayMs = Math.max(0, options.baseDelayMs ?? 200);
    this.maxDelayMs = Math.max(this.baseDelayMs, options.maxDelayMs ?? 5_000);
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.random = options.random ?? Math.random;
  }

  /**
   * The RunTask input for one attempt; throws a non-retryable refusal if it
   * cannot be sent. `sealedToken` replaces the plain token in the overrides.
   */
  runTaskInput(request: LaunchRequest, sealedToken?: string): RunTaskCommandInput {
    const { jobId, taskNo, attempt } = request;
    if (!Number.isSafeInteger(taskNo) || taskNo < 0 || !Number.isSafeInteger(attempt) || attempt < 0)
      throw new LaunchRefusedError(`invalid task number ${taskNo} or attempt ${attempt}`, false);
    const overrides: TaskOverride = {
      containerOverrides: [
        {
          name: this.config.containerName,
          environment: [
            { name: 'TASK_ID', value: taskIdEnv(request) },
            sealedToken === undefined
              ? { name: 'TASK_TOKEN', value: request.taskToken }
              : { name: SEALED_TOKEN_ENV, value: sealedToken },
          ],
        },
      ],
    };
    const size = Buffer.byteLength(JSON.stringify(overrides), 'utf8');
    if (size > MAX_OVERRIDES_BYTES)
      throw new LaunchRefusedError(
        `RunTask overrides would be ${size} bytes, over the ECS limit of ${MAX_OVERRIDES_BYTES}`,
        false,
      );
    let taskDefinition = this.config.taskDefinition;
    if (isCredentialedStep(request.kind)) {
      if (!this.config.gitTaskDefinition)
        throw new LaunchRefusedError(`no task definition for ${request.kind} steps is configured`, false);
      taskDefinition = this.config.gitTaskDefinition;
    }
    return {
      cluster: this.config.cluster,
      taskDefinition,
      count: 1,
      clientToken: clientTokenFor(request),
      // A capacity provider strategy, never a launch type: ECS refuses both at once, and Spot needs this form.
      capacityProviderStrategy: [{ capacityProvider: this.config.capacityProvider, weight: 1 }],
      networkConfiguration: {
        awsvpcConfiguration: {
          subnets: [...this.config.subnets],
          securityGroups: [...this.config.securityGroups],
          assignPublicIp: this.config.assignPublicIp ? 'ENABLED' : 'DISABLED',
        },
      },
      overrides,
      startedBy: cutChars(jobId.replace(/[^A-Za-z0-9_/-]/g, '_'), MAX_STARTED_BY),
      tags: [
        { key: 'job', value: jobId },
        { key: 'task', value: String(taskNo) },
        { key: 'attempt', value: String(attempt) },
      ],
      enableECSManagedTags: true,
      propagateTags: 'TASK_DEFINITION',
    };
  }

  async launch(request: LaunchRequest): Promise<LaunchHandle> {
    const what = `task ${request.jobId}/${request.taskNo} attempt ${request.attempt}`;
    let sealed: string | undefined;
    if (this.config.tokenSealer) {
      try {
        sealed = await this.config.tokenSealer.seal(request.taskToken, request);
      } catch (err) {
        // Nothing started: the message comes back and the next delivery seals a new token.
        throw new LaunchRefusedError(`cannot seal the token of ${what}: ${(err as Error).message}`, true);
      }
    }
    // Sealed once: every RunTask retry below sends the same input under the same client token.
    const input = this.runTaskInput(request, sealed);
    let out: RunTaskCommandOutput;
    try {
      // The same input, and so the same client token, on every try: ECS starts at most one task for it.
      out = (await this.withRetries(async () => {
        await this.runTaskLimiter?.acquire();
        return this.ecs.send(new RunTaskCommand(input));
      })) as RunTaskCommandOutput;
    } catch (err) {
      throw refusalFor(err, what);
    }
    const arn = out.tasks?.find((t) => t.taskArn)?.taskArn;
    if (arn) return { handle: arn };
    const failures = out.failures ?? [];
    if (failures.length === 0)
      throw new LaunchRefusedError(`RunTask for ${what} returned neither a task nor a failure`, true);
    const text = failures.map(describeFailure).join('; ');
    throw new LaunchRefusedError(`ECS could not start ${what}: ${text}`, failures.some(isCapacityFailure));
  }

  /** Stops a task; one that has already stopped or that ECS no longer knows is not an error. */
  async stop(handle: string, reason: string): Promise<void> {
    try {
      await this.withRetries(() =>
        this.ecs.send(
          new StopTaskCommand({
            cluster: this.config.cluster,
            task: handle,
            reason: cutChars(reason, MAX_STOP_REASON),
          }),
        ),
      );
    } catch (err) {
      if (errorName(err) === 'InvalidParameterException' && /not found|stopped/i.test(errorMessage(err)))
        return;
      throw err;
    }
  }

  /**
   * Status of each handle, for the reconciler's sweep. A handle ECS reports as
   * `MISSING` maps to `'MISSING'`; a handle the answer does not mention at all
   * is left out, so the caller does not act on a guess.
   */
  async describe(handles: string[]): Promise<Map<string, EcsTaskStatus>> {
    const result = new Map<string, EcsTaskStatus>();
    const unique = [...new Set(handles)];
    for (let i = 0; i < unique.length; i += DESCRIBE_CHUNK) {
      const chunk = unique.slice(i, i + DESCRIBE_CHUNK);
      const out = (await this.withRetries(() =>
        this.ecs.send(new DescribeTasksCommand({ cluster: this.config.cluster, tasks: chunk })),
      )) as DescribeTasksCommandOutput;
      const byKey = new Map<string, Task>();
      for (const task of out.tasks ?? []) {
        if (!task.taskArn) continue;
        byKey.set(task.taskArn, task);
        byKey.set(taskIdOf(task.taskArn), task);
      }
      const missing = new Set<string>();
      for (const f of out.failures ?? []) {
        if (f.arn && f.reason === 'MISSING') {
          missing.add(f.arn);
          missing.add(taskIdOf(f.arn));
        }
      }
      for (const handle of chunk) {
        const task = byKey.get(handle) ?? byKey.get(taskIdOf(handle));
        if (task) result.set(handle, this.statusOf(task));
        else if (missing.has(handle) || missing.has(taskIdOf(handle))) result.set(handle, 'MISSING');
      }
    }
    return result;
  }

  /** The launcher-neutral view the reconciler uses: running, stopped (with why), or missing. */
  async status(handles: readonly string[]): Promise<Map<string, WorkerStatus>> {
    const described = await this.describe([...handles]);
    const out = new Map<string, WorkerStatus>();
    for (const [handle, s] of described) {
      if (s === 'MISSING') out.set(handle, { state: 'missing' });
      else if (s.lastStatus === 'STOPPED')
        out.set(handle, { state: 'stopped', reason: stopReason(s), exitCode: s.exitCode });
      else out.set(handle, { state: 'running' });
    }
    return out;
  }

  private statusOf(task: Task): EcsTaskStatus {
    const container = task.containers?.find((c) => c.name === this.config.containerName);
    return {
      lastStatus: task.lastStatus ?? 'UNKNOWN',
      ...(task.stoppedReason !== undefined && { stoppedReason: task.stoppedReason }),
      ...(task.stopCode !== undefined && { stopCode: task.stopCode }),
      ...(container?.exitCode !== undefined && { exitCode: container.exitCode }),
      ...(container?.reason !== undefined && { containerReason: container.reason }),
    };
  }

  /** Runs `call`, retrying transient errors with bounded, jittered exponential backoff. */
  private async withRetries<T>(call: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await call();
      } catch (err) {
        if (attempt >= this.maxAttempts || classify(err) !== 'transient') throw err;
        await this.sleep(this.backoffMs(attempt));
      }
    }
  }

  /** Delay after the `n`th failed send: between half and all of min(max, base·2^(n-1)). */
  private backoffMs(n: number): number {
    const ceiling = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** (n - 1));
    return Math.round(ceiling / 2 + (this.random() * ceiling) / 2);
  }
}

type ErrorClass = 'transient' | 'later' | 'permanent';

const THROTTLING = new Set([
  'ThrottlingException',
  'Throttling',
  'ThrottledException',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'RequestThrottled',
  'RequestThrottledException',
  'SlowDown',
  'LimitExceededException',
]);
const SERVER = new Set([
  'ServerException',
  'ServiceUnavailableException',
  'ServiceUnavailable',
  'InternalFailure',
  'InternalServerError',
  'InternalError',
  'RequestTimeout',
  'RequestTimeoutException',
  'TimeoutError',
]);
const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
]);
const CLIENT = new Set([
  'ClientException',
  'InvalidParameterException',
  'AccessDeniedException',
  'ClusterNotFoundException',
  'PlatformUnknownException',
  'PlatformTaskDefinitionIncompatibilityException',
  'UnsupportedFeatureException',
  'BlockedException',
  'ConflictException',
  'ValidationException',
  'UnrecognizedClientException',
]);
/** Throttling of a service ECS calls for us (EC2 DescribeSecurityGroups) arrives wrapped in a client error. */
const WRAPPED_THROTTLING = /request limit exceeded|rate exceeded|throttl/i;
/** Account quotas (concurrent Fargate tasks or vCPUs) free up as tasks finish: worth a later retry. */
const QUOTA_REACHED = /reached the limit on the number of/i;

/**
 * `transient`: retry now with backoff (throttling, 5xx, network). `later`:
 * give up now but let the queue retry (quota reached, unknown failures).
 * `permanent`: the request itself is wrong; retrying cannot help.
 */
function classify(err: unknown): ErrorClass {
  const name = errorName(err);
  const message = errorMessage(err);
  const meta = (err as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata;
  const status = meta?.httpStatusCode;
  const code = (err as { code?: unknown } | undefined)?.code;
  const retryable = (err as { $retryable?: { throttling?: boolean } } | undefined)?.$retryable;
  if (THROTTLING.has(name) || SERVER.has(name) || retryable) return 'transient';
  if (typeof code === 'string' && NETWORK_CODES.has(code)) return 'transient';
  if (status === 429 || (status !== undefined && status >= 500)) return 'transient';
  if (QUOTA_REACHED.test(message)) return 'later';
  if (CLIENT.has(name) && WRAPPED_THROTTLING.test(message)) return 'transient';
  if (CLIENT.has(name)) return 'permanent';
  if ((err as { $fault?: unknown } | undefined)?.$fault === 'client') return 'permanent';
  if (status !== undefined && status >= 400) return 'permanent';
  return 'later';
}

function refusalFor(err: unknown, what: string): LaunchRefusedError {
  if (err instanceof LaunchRefusedError) return err;
  const name = errorName(err) || 'Error';
  const message = errorMessage(err);
  if (name === 'ConflictException') {
    const existing = (err as { resourceIds?: string[] }).resourceIds ?? [];
    return new LaunchConflictError(
      `RunTask for ${what}: client token already used with other parameters` +
        `${existing.length > 0 ? ` (existing tasks: ${existing.join(', ')})` : ''}: ${message}`,
      existing,
    );
  }
  const kind = classify(err);
  const refusal = new LaunchRefusedError(
    kind === 'transient'
      ? `RunTask for ${what} still failing after retries: ${name}: ${message}`
      : `RunTask for ${what} refused: ${name}: ${message}`,
    kind !== 'permanent',
  );
  refusal.cause = err;
  return refusal;
}

/** Capacity, resource and agent refusals pass; a missing or inactive task definition does not. */
function isCapacityFailure(f: Failure): boolean {
  const text = `${f.reason ?? ''} ${f.detail ?? ''}`;
  // Upper case on purpose: ECS's codes are `RESOURCE:CPU`, `RESOURCE:ENI`, `AGENT`; prose may say "resource".
  return /RESOURCE|AGENT/.test(text) || /capacity|reached the limit on the number of/i.test(text);
}

function describeFailure(f: Failure): string {
  return [f.reason ?? 'unknown reason', f.detail, f.arn && `(${f.arn})`].filter(Boolean).join(' ');
}

function errorName(err: unknown): string {
  return typeof (err as { name?: unknown } | undefined)?.name === 'string' ? (err as Error).name : '';
}

function errorMessage(err: unknown): string {
  const message = (err as { message?: unknown } | undefined)?.message;
  return typeof message === 'string' ? message : String(err);
}

/** The task id at the end of a task ARN (`arn:…:task/<cluster>/<id>` or the older `arn:…:task/<id>`). */
function taskIdOf(arnOrId: string): string {
  return arnOrId.slice(arnOrId.lastIndexOf('/') + 1);
}

/** Cuts to `max` characters without splitting a surrogate pair. */
function cutChars(value: string, max: number): string {
  const chars = Array.from(value);
  return chars.length <= max ? value : chars.slice(0, max).join('');
}
