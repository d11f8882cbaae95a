/**
 * Dispatch one run message: claim the task for its attempt with a conditional
 * write, then launch its worker. A duplicate or stale delivery fails the claim
 * and is dropped, so one attempt never starts twice.
 */
import { LaunchRefusedError } from '../adapters/launcher.ts';
import type { RunMessage } from '../core/messages.ts';
import { formatTaskToken, sha256Hex } from '../core/tokens.ts';
import type { DispatchDeps } from './deps.ts';
import { recordLostWorker } from './record-result.ts';

export type DispatchOutcome = 'launched' | 'duplicate' | 'refused';

export async function dispatchRun(deps: DispatchDeps, message: RunMessage): Promise<DispatchOutcome> {
  const { jobId, taskNo, attempt } = message;
  const token = formatTaskToken({ jobId, taskNo, attempt }, deps.randomBytes(32));
  const now = deps.now().toISOString();
  const claimed = await deps.store.claimTask(jobId, taskNo, attempt, sha256Hex(token), now);
  if (!claimed) {
    deps.log.info('run message dropped: task not queued for this attempt', { jobId, taskNo, attempt });
    return 'duplicate';
  }
  try {
    const { handle } = await deps.launcher.launch({
      jobId,
      taskNo,
      attempt,
      taskToken: token,
      timeoutSec: claimed.timeoutSec,
    });
    await deps.store.setLaunchHandle(jobId, taskNo, attempt, handle);
    deps.log.info('worker launched', { jobId, taskNo, attempt, handle });
    return 'launched';
  } catch (err) {
    if (err instanceof LaunchRefusedError && !err.retryable) {
      // Redelivering cannot help (bad task definition, permissions): the attempt fails, and retries follow the task's policy.
      deps.log.error('launch refused for good', { jobId, taskNo, attempt, reason: err.message });
      await recordLostWorker(
        deps,
        { jobId, taskNo, attempt },
        `the worker could not be launched: ${err.message}`,
      );
      return 'refused';
    }
    // Nothing started: give the task back so the redelivered message can claim it again.
    await deps.store.releaseClaim(jobId, taskNo, attempt, deps.now().toISOString());
    deps.log.warn('launch failed, will retry', { jobId, taskNo, attempt, reason: (err as Error).message });
    throw err;
  }
}
