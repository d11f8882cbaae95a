/**
 * Starting a worker: ECS RunTask in AWS, a child process locally. A worker
 * receives only ids and its task token; everything else it asks the API for.
 */

export interface LaunchRequest {
  jobId: string;
  taskNo: number;
  attempt: number;
  taskToken: string;
  /** The task's own timeout; the launcher stops the worker some time after it as a backstop. */
  timeoutSec: number;
}

export interface LaunchHandle {
  /** ECS task ARN, or `local:<pid>`; stored on the task item. */
  handle: string;
}

export interface Launcher {
  launch(request: LaunchRequest): Promise<LaunchHandle>;
  stop(handle: string, reason: string): Promise<void>;
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
