/**
 * An attempt's spend is reserved on the root before its worker starts. When
 * only other attempts' reservations stand in the way, the attempt waits (its
 * run message comes back later); when the tree has actually spent its limit,
 * the attempt fails without retries, naming the limit.
 */
import type { TaskRecord } from '../core/model.ts';
import { attemptBudget, MIN_ATTEMPT_BUDGET_USD } from '../core/recursion-policy.ts';
import type { Deps } from './deps.ts';

export type BudgetGrant =
  | { kind: 'granted'; usd: number }
  | { kind: 'busy' }
  | { kind: 'exhausted'; message: string };

export async function reserveAttemptSpend(deps: Deps, task: TaskRecord): Promise<BudgetGrant> {
  const root = await deps.store.getJob(task.rootJobId);
  if (!root?.budget) return { kind: 'granted', usd: 0 };
  const usd = attemptBudget(root.budget, deps.settings.limits.maxTaskBudgetUsd);
  if (usd > 0 && (await deps.tree.reserveSpend(root, usd))) {
    if (await deps.tree.setTaskBudget(task, task.attempt, usd)) return { kind: 'granted', usd };
    // This attempt already holds a reservation (a replayed dispatch): ours goes back.
    await deps.tree.settleSpend(root.jobId, usd, 0);
    return { kind: 'granted', usd: (await deps.store.getTask(task.jobId, task.taskNo))?.budgetUsd ?? 0 };
  }
  const fresh = (await deps.store.getJob(root.jobId))?.budget ?? root.budget;
  if (fresh.maxSpendUsd - fresh.spentUsd >= MIN_ATTEMPT_BUDGET_USD) return { kind: 'busy' };
  return {
    kind: 'exhausted',
    message: `the job tree's spend limit (max_budget_usd $${fresh.maxSpendUsd}) is used up: $${fresh.spentUsd.toFixed(4)} spent`,
  };
}

/** A reservation whose worker never started goes back whole. */
export async function returnAttemptSpend(deps: Deps, task: TaskRecord, usd: number): Promise<void> {
  if (usd > 0) await deps.tree.settleSpend(task.rootJobId, usd, 0);
}
