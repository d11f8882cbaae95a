/**
 * Dispatch one run message: claim the task for its attempt with a conditional
 * write while taking a running slot of the deployment, take its spend and its
 * job's slot, then launch its worker. A duplicate or stale delivery fails the claim
 * and is dropped (its slot given back), so one attempt never starts twice. A
 * task that finds a slot full goes back to the queue with a delay.
 */
import { isCredentialedStep, LaunchRefusedError } from '../adapters/launcher.ts';
import type { RunMessage } from '../core/messages.ts';
import type { JobRecord, TaskRecord } from '../core/model.ts';
import { formatTaskToken, sha256Hex } from '../core/tokens.ts';
import {
  type BudgetGrant,
  fullShareWithoutRead,
  planAttemptSpend,
  recordAttemptSpend,
  reserveOnRoot,
  returnAttemptSpend,
  spendVerdict,
} from './attempt-budget.ts';
import type { DispatchDeps } from './deps.ts';
import { recordLostWorker } from './record-result.ts';

export type DispatchOutcome = 'launched' | 'duplicate' | 'refused' | 'waiting';

/** How long a task waits for other attempts to give spend back before it tries again. */
export const BUDGET_WAIT_SEC = 5;
/** How long a task first waits for a running slot of its job (or of the deployment)... */
export const SLOT_WAIT_SEC = 2;
/** ...doubling, for the deployment's slots, on each wait in a row up to this. */
export const SLOT_WAIT_MAX_SEC = 10;

/**
 * The delay before the next try, with ±25 % jitter so waiters spread out. A
 * job's own slot comes back within one task's run and few tasks wait for it:
 * those keep the first delay. The deployment's may keep hundreds waiting.
 */
export function slotWaitDelaySec(scope: 'job' | 'deployment', times: number, random01: number): number {
  const doublings = scope === 'job' ? 0 : Math.max(0, times - 1);
  const base = Math.min(SLOT_WAIT_MAX_SEC, SLOT_WAIT_SEC * 2 ** doublings);
  return Math.max(1, Math.round(base * (0.75 + 0.5 * random01)));
}

/** Where a run message gets its slot of the deployment. */
export interface DeploymentSlots {
  /** One slot of the deployment, or false when it is full. */
  take(): Promise<boolean>;
  /** Gives back the slots taken for the batch and never handed out. */
  settle(): Promise<void>;
}

/**
 * The deployment's slots for `count` run messages of one batch, taken in one
 * write when there is room for all of them, beside the messages' claims; each
 * `take()` hands one out. When that write fails (too little room, or an error
 * past its retries), each message takes its own, as a lone message does. Every
 * message of the batch that reaches its claim calls `take()` once, so the
 * batch's slots are all handed out; `settle()` returns any that were not.
 */
export function batchDeploymentSlots(deps: DispatchDeps, count: number): DeploymentSlots {
  const max = deps.settings.worker.maxRunning;
  let left = 0;
  const batch =
    count > 1
      ? deps.slots.acquireGlobal(max, count).then(
          (took) => {
            if (took) left = count;
          },
          () => undefined,
        )
      : Promise.resolve();
  return {
    async take() {
      await batch;
      if (left === 0) return deps.slots.acquireGlobal(max);
      left -= 1;
      return true;
    },
    async settle() {
      await batch;
      const unused = left;
      left = 0;
      if (unused > 0) await deps.slots.releaseGlobal(unused);
    },
  };
}

/** A lone message: its own slot, side by side with its claim. */
const loneSlots = (deps: DispatchDeps): DeploymentSlots => ({
  take: () => deps.slots.acquireGlobal(deps.settings.worker.maxRunning),
  settle: async () => {},
});

export async function dispatchRun(
  deps: DispatchDeps,
  message: RunMessage,
  slots: DeploymentSlots = loneSlots(deps),
): Promise<DispatchOutcome> {
  const { jobId, taskNo, attempt } = message;
  const scope = { jobId, taskNo, attempt };
  const slotWait = async (slot: 'job' | 'deployment') => {
    const times = message.slotWait?.scope === slot ? message.slotWait.times + 1 : 1;
    const random01 = (deps.randomBytes(1)[0] ?? 0) / 255;
    await deps.queue.send(
      { ...message, slotWait: { scope: slot, times } },
      slotWaitDelaySec(slot, times, random01),
    );
    deps.log.info('waiting for a running slot', { ...scope, slot, times });
    return 'waiting' as const;
  };
  // A task that came back for a full slot first looks at that slot's counter: while it is
  // still full, one read replaces the claim, the reservations and their undo.
  if (
    message.slotWait &&
    (await deps.slots.looksFull(message.slotWait.scope, jobId, deps.settings.worker.maxRunning))
  )
    return slotWait(message.slotWait.scope);
  const token = formatTaskToken({ jobId, taskNo, attempt }, deps.randomBytes(32));
  const now = deps.now().toISOString();
  // The claim and the deployment's slot side by side: one round trip when both are free; while
  // the deployment is full (hundreds of tasks may wait for it), a try costs the failed take and
  // the claim's release, not the job's slot, the spend and their undo as well.
  const [tookSlot, tookClaim] = await Promise.allSettled([
    slots.take(),
    deps.tasks.claimTask(jobId, taskNo, attempt, sha256Hex(token), now),
  ]);
  if (tookSlot.status === 'rejected' || tookClaim.status === 'rejected') {
    // One of the two failed (throttled past its retries, say): give back what the other took,
    // and let the message come again.
    if (tookSlot.status === 'fulfilled' && tookSlot.value) await deps.slots.releaseGlobal();
    if (tookClaim.status === 'fulfilled' && tookClaim.value)
      await deps.tasks.releaseClaim(jobId, taskNo, attempt, deps.now().toISOString());
    throw tookSlot.status === 'rejected' ? tookSlot.reason : (tookClaim as PromiseRejectedResult).reason;
  }
  const global = tookSlot.value;
  const claimed = tookClaim.value;
  if (!claimed) {
    if (global) await deps.slots.releaseGlobal();
    deps.log.info('run message dropped: task not queued for this attempt', { jobId, taskNo, attempt });
    return 'duplicate';
  }
  if (!global) {
    await deps.tasks.releaseClaim(jobId, taskNo, attempt, deps.now().toISOString());
    return slotWait('deployment');
  }
  // What was taken so far, given back newest first if the worker does not start after all.
  const taken: (() => Promise<unknown>)[] = [
    () => deps.slots.releaseGlobal(),
    () => deps.tasks.releaseClaim(jobId, taskNo, attempt, deps.now().toISOString()),
  ];
  const giveBack = async () => {
    for (const step of taken.reverse()) await step();
  };
  // Refused before its job's slot was taken (any part taken is given back first): the
  // deployment's slot goes back here, and the attempt is recorded as holding none.
  const refuse = async (message: string) => {
    await deps.slots.releaseGlobal();
    await recordLostWorker(deps, scope, message, undefined, 'failed', false, false);
    deps.log.warn('attempt refused: spend limit reached', { ...scope, limit: 'max_budget_usd' });
    return 'refused' as const;
  };
  const waitFor = async (what: 'spend' | 'job') => {
    await giveBack();
    if (what !== 'spend') return slotWait(what);
    // Logged first: a reader who sees the wait in the job's status finds it in the log too.
    deps.log.info('waiting for spend budget', scope);
    // The job's status shows a wait for spend: a task that waits for it is not simply queued.
    await deps.tasks.setWaiting(jobId, taskNo, attempt, 'spend_budget', deps.now().toISOString());
    const { slotWait: _, ...plain } = message;
    await deps.queue.send(plain, BUDGET_WAIT_SEC);
    return 'waiting' as const;
  };

  const took = await takeJobSlotAndSpend(deps, claimed);
  if (took.kind === 'refused') return refuse(took.message);
  if (took.kind === 'wait') return waitFor(took.what);
  taken.push(() => deps.slots.releaseJob(jobId));
  let usd = took.usd;
  // Given back at the value recordAttemptSpend settles on: a replay keeps the one recorded first.
  if (usd > 0) taken.push(() => returnAttemptSpend(deps, claimed, usd));
  usd = await recordAttemptSpend(deps, claimed, usd);
  if (claimed.waitingFor) await deps.tasks.setWaiting(jobId, taskNo, attempt, undefined, now);
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
    await deps.tasks.setLaunchHandle(jobId, taskNo, attempt, handle).catch((e: Error) => {
      deps.log.warn('launch handle not stored; the sweep covers this worker', { ...scope, error: e.message });
    });
    deps.log.info('worker launched', { ...scope, handle });
    return 'launched';
  } catch (err) {
    if (err instanceof LaunchRefusedError && !err.retryable) {
      // Redelivering cannot help (bad task definition, permissions): the attempt fails, and retries follow the task's policy.
      deps.log.error('launch refused for good', { ...scope, reason: err.message });
      await recordLostWorker(deps, scope, `the worker could not be launched: ${err.message}`);
      return 'refused';
    }
    // Nothing started: give the task, its slots and its spend back so the redelivered message can claim it again.
    await giveBack();
    deps.log.warn('launch failed, will retry', { ...scope, reason: (err as Error).message });
    throw err;
  }
}

type SlotAndSpend =
  /** The job's slot is held and `usd` reserved on the root (0: nothing to reserve). */
  | { kind: 'taken'; usd: number }
  /** Neither is held: the job's slots are full, or others' reservations hold the spend. */
  | { kind: 'wait'; what: 'job' | 'spend' }
  /** Neither is held: the tree's spend is used up. */
  | { kind: 'refused'; message: string };

/**
 * The claimed attempt's running slot of its job, and its spend. A root job's
 * attempt takes both in one write on the job item; while plenty is left it
 * does so before reading anything (fullShareWithoutRead).
 */
async function takeJobSlotAndSpend(deps: DispatchDeps, task: TaskRecord): Promise<SlotAndSpend> {
  const { jobId } = task;
  const full = fullShareWithoutRead(deps, task);
  if (full && (await deps.slots.acquireJob(jobId, full))) return { kind: 'taken', usd: full.usd };
  // It did not fit: the job's slots are full, or less is left than a full share for each.
  const known = full ? await deps.jobs.getJob(jobId) : undefined;
  if (known && (known.runningTasks ?? 0) >= known.config.maxWorkers) return { kind: 'wait', what: 'job' };
  const grant = await attemptGrant(deps, task, known);
  if (grant.kind === 'exhausted') return { kind: 'refused', message: grant.message };
  if (grant.kind === 'busy') return { kind: 'wait', what: 'spend' };
  const usd = grant.usd;
  const together = usd > 0 && grant.root !== undefined && grant.root.jobId === jobId;
  const spend = together ? { usd, maxSpendUsd: grant.root?.budget?.maxSpendUsd ?? 0 } : undefined;
  if (!(await deps.slots.acquireJob(jobId, spend))) {
    // The job already runs max_workers workers, or (together) the spend did not fit: read which.
    const job = together ? await deps.jobs.getJob(jobId) : undefined;
    if (job?.budget && (job.runningTasks ?? 0) < job.config.maxWorkers) {
      const verdict = spendVerdict(job.budget);
      return verdict.kind === 'exhausted'
        ? { kind: 'refused', message: verdict.message }
        : { kind: 'wait', what: 'spend' };
    }
    return { kind: 'wait', what: 'job' };
  }
  if (usd > 0 && !together && grant.root) {
    // A child's attempt: its slot is on its job, its spend on the root.
    const onRoot = await reserveOnRoot(deps, grant.root, usd);
    if (onRoot.kind !== 'granted') {
      await deps.slots.releaseJob(jobId);
      return onRoot.kind === 'exhausted'
        ? { kind: 'refused', message: onRoot.message }
        : { kind: 'wait', what: 'spend' };
    }
  }
  return { kind: 'taken', usd };
}

/**
 * Steps without AI spend nothing. A merge runs even when the tree's budget is
 * used up: it merges what merges cleanly and leaves out what would need a
 * Claude session to resolve. `knownRoot`: the root, already read.
 */
async function attemptGrant(
  deps: DispatchDeps,
  task: TaskRecord,
  knownRoot?: JobRecord,
): Promise<BudgetGrant & { root?: JobRecord }> {
  if (isCredentialedStep(task.kind)) return { kind: 'granted', usd: 0 };
  const grant = await planAttemptSpend(deps, task, knownRoot);
  if (task.kind === 'merge' && grant.kind === 'exhausted') return { kind: 'granted', usd: 0 };
  return grant;
}
