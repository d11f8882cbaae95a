/**
 * Dispatch one run message: claim the task for its attempt with a conditional
 * write, then launch its worker. A duplicate or stale delivery fails the claim
 * and is dropped, so one attempt never starts twice.
 */
import { isCredentialedStep, LaunchRefusedError } from '../adapters/launcher.ts';
import type { RunMessage } from '../core/messages.ts';
import { formatTaskToken, sha256Hex } from '../core/tokens.ts';
import { type BudgetGrant, reserveAttemptSpend, returnAttemptSpend } from './attempt-budget.ts';
import type { DispatchDeps } from './deps.ts';
import { recordLostWorker } from './record-result.ts';

export type DispatchOutcome = 'launched' | 'duplicate' | 'refused' | 'waiting';

/** How long a task waits for other attempts to give spend back before it tries again. */
export const BUDGET_WAIT_SEC = 5;
/** How long a task waits for a running slot of its job (or of the deployment). */
export const SLOT_WAIT_SEC = 2;

export async function dispatchRun(deps: DispatchDeps, message: RunMessage): Promise<DispatchOutcome> {
  const { jobId, taskNo, attempt } = message;
  const token = formatTaskToken({ jobId, taskNo, attempt }, deps.randomBytes(32));
  const now = deps.now().toISOString();
  const claimed = await deps.store.claimTask(jobId, taskNo, attempt, sha256Hex(token), now);
  if (!claimed) {
    deps.log.info('run message dropped: task not queued for this attempt', { jobId, taskNo, attempt });
    return 'duplicate';
  }
  const grant = await attemptGrant(deps, claimed);
  if (grant.kind === 'busy') {
    // Other attempts hold the tree's spend for now: come back later, without using up a delivery.
    const at = deps.now().toISOString();
    await deps.store.releaseClaim(jobId, taskNo, attempt, at);
    // The job's status shows it too: a task that waits is not simply queued.
    await deps.tree.setWaiting(jobId, taskNo, attempt, 'spend_budget', at);
    await deps.queue.send(message, BUDGET_WAIT_SEC);
    deps.log.info('waiting for spend budget', { jobId, taskNo, attempt });
    return 'waiting';
  }
  if (claimed.waitingFor) await deps.tree.setWaiting(jobId, taskNo, attempt, undefined, now);
  if (grant.kind === 'exhausted') {
    await recordLostWorker(deps, { jobId, taskNo, attempt }, grant.message, undefined, 'failed', false);
    deps.log.warn('attempt refused: spend limit reached', {
      jobId,
      taskNo,
      attempt,
      limit: 'max_budget_usd',
    });
    return 'refused';
  }
  if (!(await deps.slots.acquire(jobId, deps.settings.worker.maxRunning))) {
    // The job already runs max_workers workers (or the deployment max_running): wait for one to end.
    await deps.store.releaseClaim(jobId, taskNo, attempt, deps.now().toISOString());
    await returnAttemptSpend(deps, claimed, grant.usd);
    await deps.queue.send(message, SLOT_WAIT_SEC);
    deps.log.info('waiting for a running slot', { jobId, taskNo, attempt });
    return 'waiting';
  }
  try {
    const { handle } = await deps.launcher.launch({
      jobId,
      taskNo,
      attempt,
      taskToken: token,
      timeoutSec: claimed.timeoutSec,
      kind: claimed.kind,
    });
    // The worker is started: from here on nothing may be undone. Without a stored handle the
    // worker still reports; if it dies, the sweep finds a claim without a handle and retries it.
    await deps.store.setLaunchHandle(jobId, taskNo, attempt, handle).catch((e: Error) => {
      deps.log.warn('launch handle not stored; the sweep covers this worker', {
        jobId,
        taskNo,
        attempt,
        error: e.message,
      });
    });
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
    // Nothing started: give the task, its slot and its spend back so the redelivered message can claim it again.
    await deps.store.releaseClaim(jobId, taskNo, attempt, deps.now().toISOString());
    await deps.slots.release(jobId);
    await returnAttemptSpend(deps, claimed, grant.usd);
    deps.log.warn('launch failed, will retry', { jobId, taskNo, attempt, reason: (err as Error).message });
    throw err;
  }
}

/**
 * Steps without AI spend nothing. A merge runs even when the tree's budget is
 * used up: it merges what merges cleanly and leaves out what would need a
 * Claude session to resolve.
 */
async function attemptGrant(
  deps: DispatchDeps,
  task: Parameters<typeof reserveAttemptSpend>[1],
): Promise<BudgetGrant> {
  if (isCredentialedStep(task.kind)) return { kind: 'granted', usd: 0 };
  const grant = await reserveAttemptSpend(deps, task);
  if (task.kind === 'merge' && grant.kind === 'exhausted') return { kind: 'granted', usd: 0 };
  return grant;
}
