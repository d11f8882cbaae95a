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
 *
 * Stopping and describing tasks is the monitor's (ecs-task-monitor.ts); the
 * launcher holds one so the dispatcher can stop a cancelled job's workers.
 */
import type { Failure, RunTaskCommandInput, RunTaskCommandOutput, TaskOverride } from '@aws-sdk/client-ecs';
import type { RateLimiter } from '../core/rate-limiter.ts';
import { clientTokenFor, startedByFor, workerIdentityEnv } from '../core/worker-identity.ts';
import { errorMessage, errorName } from './aws-errors.ts';
import {
  type EcsLike,
  EcsRetries,
  type EcsRetryOptions,
  EcsTaskMonitor,
  type EcsTaskMonitorConfig,
  ecsErrorClass,
} from './ecs-task-monitor.ts';
import {
  isCredentialedStep,
  type Launcher,
  type LaunchHandle,
  LaunchRefusedError,
  type LaunchRequest,
  type WorkerStatus,
} from './launcher.ts';
import { type ClientSource, clientOf, lazy } from './lazy.ts';
import type { TokenSealer } from './token-seal.ts';

/** The ECS commands, imported once on first use (each `import()` call resolves the module again). */
const ecsSdk = lazy(() => import('./sdk/ecs.ts'));

export interface EcsLauncherConfig extends EcsTaskMonitorConfig {
  /** Task definition family, `family:revision` or ARN: the Claude workers (plan, work, merge). */
  taskDefinition: string;
  /**
   * The task definition of the steps without AI (fetch a git URL, push a
   * result), the only one that receives the repository token. Its container
   * has the same name. Absent: such steps are refused.
   */
  gitTaskDefinition?: string | undefined;
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

export interface EcsLauncherOptions extends EcsRetryOptions {
  /**
   * Paces RunTask calls of this launcher (ECS allows 20 per second per account;
   * give each of the dispatchers that may run at once its share). None: unpaced.
   */
  runTaskLimiter?: RateLimiter;
}

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

export class EcsLauncher implements Launcher {
  private readonly retries: EcsRetries;
  private readonly monitor: EcsTaskMonitor;
  private readonly runTaskLimiter: RateLimiter | undefined;
  /** The ECS client, made on first use (lazy.ts): a dispatcher that only aggregates never loads it. */
  private readonly client: () => Promise<EcsLike>;

  constructor(
    ecs: ClientSource<EcsLike>,
    private readonly config: EcsLauncherConfig,
    options: EcsLauncherOptions = {},
  ) {
    if (!config.cluster || !config.taskDefinition || !config.containerName)
      throw new Error('EcsLauncher: cluster, taskDefinition and containerName are required');
    if (config.subnets.length === 0) throw new Error('EcsLauncher: at least one subnet is required');
    this.retries = new EcsRetries(options);
    this.client = clientOf(ecs);
    this.monitor = new EcsTaskMonitor(this.client, config, options);
    this.runTaskLimiter = options.runTaskLimiter;
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
          environment: Object.entries(workerIdentityEnv(request, sealedToken)).map(([name, value]) => ({
            name,
            value,
          })),
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
      startedBy: startedByFor(jobId),
      tags: [
        { key: 'job', value: jobId },
        { key: 'task', value: String(taskNo) },
        { key: 'attempt', value: String(attempt) },
      ],
      enableECSManagedTags: true,
      propagateTags: 'TASK_DEFINITION',
    };
  }

  prepare(): void {
    // A failure to load is thrown again by the launch that awaits it.
    this.sdk().catch(() => {});
    this.config.tokenSealer?.prepare?.();
  }

  async launch(request: LaunchRequest): Promise<LaunchHandle> {
    const what = `task ${request.jobId}/${request.taskNo} attempt ${request.attempt}`;
    // The ECS package loads while the token is sealed; a failure to load is thrown where it is awaited.
    const sdk = this.sdk();
    sdk.catch(() => {});
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
      const [{ RunTaskCommand }, ecs] = await sdk;
      // The same input, and so the same client token, on every try: ECS starts at most one task for it.
      out = (await this.retries.run(async () => {
        await this.runTaskLimiter?.acquire();
        return ecs.send(new RunTaskCommand(input));
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
  stop(handle: string, reason: string): Promise<void> {
    return this.monitor.stop(handle, reason);
  }

  status(handles: readonly string[]): Promise<Map<string, WorkerStatus>> {
    return this.monitor.status(handles);
  }

  private sdk() {
    return Promise.all([ecsSdk(), this.client()]);
  }
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
  const kind = ecsErrorClass(err);
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
