/**
 * Watching and stopping worker tasks that are already running: DescribeTasks
 * and StopTask in one cluster, all the reconciler needs. It knows nothing of
 * task definitions, networks or RunTask (the launcher, ecs-launcher.ts, adds
 * those), so a function holding only a monitor needs neither `ecs:RunTask`
 * nor `iam:PassRole`.
 *
 * ECS calls are retried here with jittered backoff while they fail for
 * throttling, server or network reasons; the launcher shares this policy.
 */
import type { DescribeTasksCommandOutput, Task } from '@aws-sdk/client-ecs';
import { awsErrorKind, errorMessage, errorName } from './aws-errors.ts';
import type { WorkerMonitor, WorkerStatus } from './launcher.ts';
import { type ClientSource, clientOf, lazy } from './lazy.ts';

/** The ECS commands, imported once on first use (each `import()` call resolves the module again). */
const ecsSdk = lazy(() => import('./sdk/ecs.ts'));

/** The one method of `ECSClient` used here and by the launcher; tests pass a fake. */
export interface EcsLike {
  send(command: unknown): Promise<unknown>;
}

export interface EcsTaskMonitorConfig {
  /** Cluster name or ARN. */
  cluster: string;
  /** The worker container inside the task definitions: its exit code and reason explain a stop. */
  containerName: string;
}

export interface EcsRetryOptions {
  /** Sends per ECS call, first one included. @default 3 */
  maxAttempts?: number;
  /** Backoff before the second send; doubles each retry. @default 200 */
  baseDelayMs?: number;
  /** Upper bound of one backoff delay. @default 5000 */
  maxDelayMs?: number;
  sleep?: (ms: number) => Promise<void>;
  /** Uniform in [0, 1); jitters the backoff. */
  random?: () => number;
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

const MAX_STOP_REASON = 255;
/** DescribeTasks takes at most 100 tasks per call. */
const DESCRIBE_CHUNK = 100;

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

export type EcsErrorClass = 'transient' | 'later' | 'permanent';

/** ECS's own request errors: the only ones that may wrap another service's throttling. */
const ECS_CLIENT = new Set(['ClientException', 'InvalidParameterException']);
/** Throttling of a service ECS calls for us (EC2 DescribeSecurityGroups) arrives wrapped in a client error. */
const WRAPPED_THROTTLING = /request limit exceeded|rate exceeded|throttl/i;
/** Account quotas (concurrent Fargate tasks or vCPUs) free up as tasks finish: worth a later retry. */
const QUOTA_REACHED = /reached the limit on the number of/i;

/**
 * An ECS error, classified (aws-errors.ts) with ECS's own rules on top.
 * `transient`: retry now with backoff (throttling, 5xx, network). `later`:
 * give up now but let the queue retry (quota reached, unknown failures).
 * `permanent`: the request itself is wrong; retrying cannot help.
 */
export function ecsErrorClass(err: unknown): EcsErrorClass {
  const kind = awsErrorKind(err);
  if (kind === 'throttling' || kind === 'transient') return 'transient';
  const message = errorMessage(err);
  if (QUOTA_REACHED.test(message)) return 'later';
  if (ECS_CLIENT.has(errorName(err)) && WRAPPED_THROTTLING.test(message)) return 'transient';
  return kind === 'unknown' ? 'later' : 'permanent';
}

/** Bounded, jittered exponential backoff around ECS calls. */
export class EcsRetries {
  private readonly maxAttempts: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;

  constructor(options: EcsRetryOptions = {}) {
    this.maxAttempts = Math.max(1, Math.floor(options.maxAttempts ?? 3));
    this.baseDelayMs = Math.max(0, options.baseDelayMs ?? 200);
    this.maxDelayMs = Math.max(this.baseDelayMs, options.maxDelayMs ?? 5_000);
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.random = options.random ?? Math.random;
  }

  /** Runs `call`, retrying transient errors. */
  async run<T>(call: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await call();
      } catch (err) {
        if (attempt >= this.maxAttempts || ecsErrorClass(err) !== 'transient') throw err;
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

export class EcsTaskMonitor implements WorkerMonitor {
  private readonly retries: EcsRetries;
  /** The ECS client, made on first use (lazy.ts): a sweep with nothing to look at never loads it. */
  private readonly client: () => Promise<EcsLike>;

  constructor(
    ecs: ClientSource<EcsLike>,
    private readonly config: EcsTaskMonitorConfig,
    options: EcsRetryOptions = {},
  ) {
    if (!config.cluster || !config.containerName)
      throw new Error('EcsTaskMonitor: cluster and containerName are required');
    this.retries = new EcsRetries(options);
    this.client = clientOf(ecs);
  }

  /** Stops a task; one that has already stopped or that ECS no longer knows is not an error. */
  async stop(handle: string, reason: string): Promise<void> {
    const [{ StopTaskCommand }, ecs] = await this.sdk();
    try {
      await this.retries.run(() =>
        ecs.send(
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
  async describe(handles: readonly string[]): Promise<Map<string, EcsTaskStatus>> {
    const result = new Map<string, EcsTaskStatus>();
    const unique = [...new Set(handles)];
    if (unique.length === 0) return result;
    const [{ DescribeTasksCommand }, ecs] = await this.sdk();
    for (let i = 0; i < unique.length; i += DESCRIBE_CHUNK) {
      const chunk = unique.slice(i, i + DESCRIBE_CHUNK);
      const out = (await this.retries.run(() =>
        ecs.send(new DescribeTasksCommand({ cluster: this.config.cluster, tasks: chunk })),
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
    const described = await this.describe(handles);
    const out = new Map<string, WorkerStatus>();
    for (const [handle, s] of described) {
      if (s === 'MISSING') out.set(handle, { state: 'missing' });
      else if (s.lastStatus === 'STOPPED')
        out.set(handle, { state: 'stopped', reason: stopReason(s), exitCode: s.exitCode });
      else out.set(handle, { state: 'running' });
    }
    return out;
  }

  private sdk() {
    return Promise.all([ecsSdk(), this.client()]);
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
