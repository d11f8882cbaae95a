/** What the use cases need from the outside world; handlers and local mode build it. */

import type { ApiKeyStore } from '../adapters/api-key-store.ts';
import type { Artifacts } from '../adapters/artifacts.ts';
import type { EventStore } from '../adapters/event-store.ts';
import type { JobStore } from '../adapters/job-store.ts';
import type { Launcher } from '../adapters/launcher.ts';
import type { ModelUpstream } from '../adapters/model-upstream.ts';
import type { RootBudget } from '../adapters/root-budget.ts';
import type { RunSlots } from '../adapters/run-slots.ts';
import type { TaskStore } from '../adapters/task-store.ts';
import type { WorkQueue } from '../adapters/work-queue.ts';
import type { ApiLimits, JobDefaults } from '../core/api-schemas.ts';
import type { JobRecord, TaskRecord } from '../core/model.ts';
import type { PriceTable } from '../core/model-metering.ts';
import type { JobStatus } from '../core/task-states.ts';

export interface WorkerSettings {
  /** Workers running at once across the deployment (each job is also capped by its max_workers). */
  maxRunning: number;
  permissionMode: string;
  maxTurns?: number | undefined;
  /** Least time between a worker's progress posts. */
  progressIntervalMs: number;
  /** Silence after which the sweep treats a running worker as lost. */
  heartbeatTimeoutSec: number;
}

export interface Settings {
  defaults: JobDefaults;
  limits: ApiLimits;
  /** Base URL workers call back on. */
  apiUrl: string;
  /** Lifetime of presigned upload and download links. */
  presignExpirySec: number;
  worker: WorkerSettings;
  git: GitSettings;
  /** The model gateway; absent or disabled: workers call the model with their own credentials. */
  gateway?: GatewaySettings | undefined;
}

/** The model gateway (services/model-gateway.ts): workers' Messages API requests, metered. */
export interface GatewaySettings {
  enabled: boolean;
  /** Workers' ANTHROPIC_BASE_URL; default `${apiUrl}/gateway`. */
  baseUrl?: string | undefined;
  /** Model id → price; a model not in it is refused. */
  prices: PriceTable;
  /** Where requests go (the Anthropic upstream); the upstream adapter reads it. */
  upstreamUrl: string;
}

export interface GitSettings {
  /** Accept http:// remotes (tests, trusted networks). */
  allowHttp: boolean;
  /** Push a git URL source's merged branch back to its remote. */
  pushResults: boolean;
  /** User name sent with the repository token. */
  tokenUsername: string;
}

export interface Log {
  debug(message: string, extra?: Record<string, unknown>): void;
  info(message: string, extra?: Record<string, unknown>): void;
  warn(message: string, extra?: Record<string, unknown>): void;
  error(message: string, extra?: Record<string, unknown>): void;
}

/** Counts the deployment is watched by: CloudWatch metrics (EMF) on AWS, a debug line in local mode. */
export interface Metrics {
  /** A job reached a final status; counted by whoever moved it there, once. */
  jobFinished(status: JobStatus): void;
}

/** The table's stores (adapters/table-stores.ts builds them), one per kind of item it writes. */
export interface Deps {
  /** Job items: creation, status, finished tasks, listings of jobs. */
  jobs: JobStore;
  /** Task items: every write to a task (attempts, uploads, spend, hand-offs, cancellation). */
  tasks: TaskStore;
  /** API key items. */
  keys: ApiKeyStore;
  /** The tree's budget on its root job item: tasks and spend reserved and settled. */
  budget: RootBudget;
  /** Running-worker counters: on the job item and the deployment's. */
  slots: RunSlots;
  /** Workers' live progress and logs. */
  events: EventStore;
  queue: WorkQueue;
  artifacts: Artifacts;
  settings: Settings;
  log: Log;
  metrics: Metrics;
  now(): Date;
  randomBytes(size: number): Buffer;
  /** Where the model gateway sends requests; absent: the gateway answers that it is not enabled. */
  upstream?: ModelUpstream | undefined;
  /**
   * Set where this process may write a small finished job's reports itself,
   * in the request that finished it, instead of queueing an `aggregate`
   * message (it may write reports: the API and the dispatcher, not the
   * reconciler). The composition root hands in the aggregator
   * (services/aggregate.ts), which itself follows up on the tasks it ends.
   */
  aggregateInline?: InlineAggregator | undefined;
}

export type AggregateOutcome = 'aggregated' | 'already_final' | 'not_ready' | 'missing';
/** `early`: the job's tasks, read beside the write that completed it (checked before use). */
export type InlineAggregator = (
  deps: Deps,
  jobId: string,
  job: JobRecord,
  early?: Promise<TaskRecord[]>,
) => Promise<AggregateOutcome>;

export interface DispatchDeps extends Deps {
  launcher: Launcher;
}
