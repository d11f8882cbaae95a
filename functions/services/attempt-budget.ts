/**
 * An attempt's claim on the tree's spend before its worker starts.
 *
 * With the model gateway on, the attempt reserves nothing: each of its model
 * requests reserves its own maximum cost at the gateway and settles to what
 * it used, so running attempts hold only what their requests in flight may
 * cost, and parallelism is max_workers. The attempt's meter is opened here.
 *
 * With the gateway off, the CLI's `--max-budget-usd` is the only cap, so the
 * attempt reserves its budget on the root: an even share of what is left
 * among the job's free slots (see attemptBudget), so max_workers attempts
 * fit at once. When only other attempts' reservations stand in the way, the
 * attempt waits (its run message comes back later, and the job's status says
 * so); when the tree has actually spent its limit, the attempt fails without
 * retries, naming the limit.
 */
import { isCredentialedStep } from '../adapters/launcher.ts';
import type { JobRecord, RootBudget, TaskRecord } from '../core/model.ts';
import { attemptBudget, MIN_ATTEMPT_BUDGET_USD, spendShares } from '../core/recursion-policy.ts';
import type { Deps } from './deps.ts';
import { gatewayEnabled, openAttemptMeter } from './model-gateway.ts';

export type BudgetGrant =
  | { kind: 'granted'; usd: number }
  | { kind: 'busy' }
  | { kind: 'exhausted'; message: string };

/** A reservation of a full share that needs no read of the job: see fullShareWithoutRead. */
export interface FullShare {
  usd: number;
  maxSpendUsd: number;
  /** What must stay uncommitted after it: a full share for each other slot of the job. */
  keepUsd: number;
}

/**
 * What a root job's attempt may reserve without reading the job first: a
 * full share (limits.max_task_budget_usd), on the condition, checked by the
 * reservation's own write, that max_workers full shares were uncommitted
 * before it. Whenever that holds, attemptBudget gives a full share too (it
 * shares what is left among at most max_workers slots), so the attempt gets
 * exactly what a read would have given it. When the write fails (the job's
 * slots are full, or less is left), the dispatcher reads the job and plans
 * as usual. Undefined when there is no such shortcut: a child's attempt (its
 * spend is on another item), a step without AI, the model gateway on.
 */
export function fullShareWithoutRead(deps: Deps, task: TaskRecord): FullShare | undefined {
  const limits = task.spendLimits;
  if (
    !limits ||
    task.jobId !== task.rootJobId ||
    isCredentialedStep(task.kind) ||
    gatewayEnabled(deps.settings)
  )
    return undefined;
  const usd = Math.floor(deps.settings.limits.maxTaskBudgetUsd * 10_000) / 10_000;
  if (usd < MIN_ATTEMPT_BUDGET_USD || limits.maxWorkers < 1) return undefined;
  return { usd, maxSpendUsd: limits.maxSpendUsd, keepUsd: usd * (limits.maxWorkers - 1) };
}

/**
 * What this attempt should reserve, from a read of the root (and of its job,
 * for a child): no write. With the gateway on, the attempt's meter is opened
 * here instead (it reserves nothing on the root). `knownRoot` saves the read.
 */
export async function planAttemptSpend(
  deps: Deps,
  task: TaskRecord,
  knownRoot?: JobRecord,
): Promise<BudgetGrant & { root?: JobRecord }> {
  const root = knownRoot ?? (await deps.jobs.getJob(task.rootJobId));
  if (gatewayEnabled(deps.settings)) {
    if (root?.budget && root.budget.maxSpendUsd - root.budget.spentUsd < MIN_ATTEMPT_BUDGET_USD)
      return exhausted(root.budget);
    await openAttemptMeter(deps, task, task.attempt);
    return { kind: 'granted', usd: 0 };
  }
  if (!root?.budget) return { kind: 'granted', usd: 0 };
  const job = task.jobId === root.jobId ? root : await deps.jobs.getJob(task.jobId);
  const usd = attemptBudget(root.budget, deps.settings.limits.maxTaskBudgetUsd, job ? spendShares(job) : 1);
  if (usd > 0) return { kind: 'granted', usd, root };
  return spendVerdict(root.budget);
}

/** Reserves a planned amount on the root on its own (a child's attempt, whose slot is on another item). */
export async function reserveOnRoot(deps: Deps, root: JobRecord, usd: number): Promise<BudgetGrant> {
  if (await deps.budget.reserveSpend(root, usd)) return { kind: 'granted', usd };
  return spendVerdict((await deps.jobs.getJob(root.jobId))?.budget ?? (root.budget as RootBudget));
}

/** A reservation did not fit: wait while others' reservations stand in the way, fail once the spend is used up. */
export function spendVerdict(budget: RootBudget): BudgetGrant {
  if (budget.maxSpendUsd - budget.spentUsd >= MIN_ATTEMPT_BUDGET_USD) return { kind: 'busy' };
  return exhausted(budget);
}

/**
 * Records the attempt's reservation on its task, once. A replayed dispatch
 * that finds one already there gives its own back and keeps the recorded one.
 */
export async function recordAttemptSpend(deps: Deps, task: TaskRecord, usd: number): Promise<number> {
  if (usd <= 0 || (await deps.tasks.setTaskBudget(task, task.attempt, usd))) return usd;
  await deps.budget.settleSpend(task.rootJobId, usd, 0);
  return (await deps.tasks.getTask(task.jobId, task.taskNo))?.budgetUsd ?? 0;
}

function exhausted(budget: RootBudget): BudgetGrant {
  return {
    kind: 'exhausted',
    message: `the job tree's spend limit (max_budget_usd $${budget.maxSpendUsd}) is used up: $${budget.spentUsd.toFixed(4)} spent`,
  };
}

/** A reservation whose worker never started goes back whole. */
export async function returnAttemptSpend(deps: Deps, task: TaskRecord, usd: number): Promise<void> {
  if (usd > 0) await deps.budget.settleSpend(task.rootJobId, usd, 0);
}
