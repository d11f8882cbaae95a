/**
 * Starting a worker: ECS RunTask in AWS, a child process locally. A worker
 * receives only ids and its task token; everything else it asks the API for.
 */
import type { TaskKind } from '../core/model.ts';

export interface LaunchRequest {
  jobId: string;
  taskNo: number;
  attempt: number;
  taskToken: string;
  /** The task's own timeout; the launcher stops the worker some time after it as a backstop. */
  timeoutSec: number;
  /**
   * Which container to start: `source` and `push` run no AI and are the only
   * steps that receive repository credentials; every other kind runs Claude
   * and never does.
   */
  kind: TaskKind;
}

/** Steps that never run Claude: they alone may hold repository credentials. */
export function isCredentialedStep(kind: TaskKind): boolean {
  return kind === 'source' || kind === 'push';
}

export interface LaunchHandle {
  /** ECS task ARN, or `local:<pid>`; stored on the task item. */
  handle: string;
}

/** What a monitor knows about a worker that was started, for the reconciler's sweep. */
export type WorkerStatus =
  | { state: 'running' }
  | { state: 'stopped'; reason: string; exitCode?: number | undefined }
  | { state: 'missing' };

/**
 * Watching and stopping workers already started: all the reconciler needs.
 * On AWS an `EcsTaskMonitor` (DescribeTasks, StopTask); locally the launcher
 * itself, which alone knows its child processes.
 */
export interface WorkerMonitor {
  /** Status of the given handles; a handle the monitor never heard of is `missing`. */
  status(handles: readonly string[]): Promise<Map<string, WorkerStatus>>;
  stop(handle: string, reason: string): Promise<void>;
}

/** Starting workers, and watching and stopping them: what the dispatcher holds. */
export interface Launcher extends WorkerMonitor {
  /**
   * Starts loading what a launch needs (the ECS launcher's SDK clients are
   * imported on first use) without waiting for it, so that it loads while the
   * dispatcher claims the task. Optional; calling it again does nothing.
   */
  prepare?(): void;
  launch(request: LaunchRequest): Promise<LaunchHandle>;
}

/** The launcher could not start the worker now (capacity, throttling); the claim is undone and retried. */
export class LaunchRefusedError extends Error {
  constructor(
    message: string,
    readonly retryable = true,
  ) {
    super(message);
    this.name = 'LaunchRefusedError';
  }
}
