/**
 * Dispatch one run message: claim the task for its attempt with a conditional
 * write, then launch its worker. A duplicate or stale delivery fails the claim
 * and is dropped, so one attempt never starts twice.
 */
import { LaunchRefusedError } from '../adapters/launcher.ts';
import type { RunMessage } from '../core/messages.ts';
import { formatTaskToken, sha256Hex } from '../core/tokens.ts';
import type { DispatchDeps } from './deps.ts';

export type DispatchOutcome = 'launched' | 'duplicate';

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
    // Nothing started: give the task back so the redelivered message can claim it again.
    await deps.store.releaseClaim(jobId, taskNo, attempt, deps.now().toISOString());
    if (err instanceof LaunchRefusedError)
      deps.log.warn('launch refused, will retry', { jobId, taskNo, attempt, reason: err.message });
    throw err;
  }
}
