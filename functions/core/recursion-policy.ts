/**
 * Recursion rules, decided from the parent chain and the root's budget,
 * never from a request body: whether a worker may split, how deep, how many
 * subtasks, and how much an attempt may spend.
 */
import { tasksCostUsd } from './accounting.ts';
import type { ApiLimits } from './api-schemas.ts';
import type { ChildResults, JobConfig, JobRecord, RootBudget, TaskKind, TaskRecord } from './model.ts';
import { SUBTASK_ITEM_SCHEMA } from './planner.ts';
import { isSuccessfulTaskState, type JobStatus } from './task-states.ts';

/** Below this a worker cannot do anything useful; the tree's spend is used up. */
export const MIN_ATTEMPT_BUDGET_USD = 0.01;

export function rootBudgetFor(config: JobConfig, limits: ApiLimits, initialTasks: number): RootBudget {
  return {
    maxTasks: limits.maxTasksPerRoot,
    maxSpendUsd: Math.min(config.maxBudgetUsd, limits.maxSpendUsdPerRoot),
    maxDepth: config.enableRecursion ? Math.min(config.maxRecursionDepth, limits.maxRecursionDepth) : 0,
    reservedTasks: initialTasks,
    committedUsd: 0,
    spentUsd: 0,
  };
}

export type Refusal = { limit: string; message: string; details: Record<string, unknown> };

/**
 * Only a work task's token may create child jobs. A planner answers with its
 * plan, and the steps (source, merge, push) run no subtask of their own: a
 * child job under one of them would complete that task in the child's name
 * (a planner would end `recursive_success` and fail its job's planning).
 */
export function childCreatorRefusal(kind: TaskKind): string | undefined {
  if (kind === 'work') return undefined;
  const who = kind === 'plan' ? "a planner's task token" : `the ${kind} step's task token`;
  return `${who} cannot create child jobs: only a work task may hand off or spawn a child job`;
}

/** Whether a task of `parent` may create a child job of `requestedTasks` tasks; the reason when not. */
export function childRefusal(
  root: JobRecord,
  parent: JobRecord,
  requestedTasks: number,
): Refusal | undefined {
  const budget = root.budget;
  if (!budget || budget.maxDepth === 0) {
    return { limit: 'enable_recursion', message: 'recursion is not enabled for this job', details: {} };
  }
  const depth = parent.depth + 1;
  if (depth > budget.maxDepth) {
    return {
      limit: 'max_depth',
      message: `a child job would be at depth ${depth}, beyond the limit of ${budget.maxDepth}`,
      details: { allowed: budget.maxDepth, requested: depth },
    };
  }
  if (requestedTasks > root.config.maxWorkers) {
    return {
      limit: 'max_workers',
      message: `a child job may have at most ${root.config.maxWorkers} tasks, not ${requestedTasks}`,
      details: { allowed: root.config.maxWorkers, requested: requestedTasks },
    };
  }
  const left = budget.maxSpendUsd - budget.committedUsd;
  if (left < MIN_ATTEMPT_BUDGET_USD) {
    return {
      limit: 'max_budget_usd',
      message: `the job tree has spent or reserved $${budget.committedUsd.toFixed(4)} of its $${budget.maxSpendUsd} limit`,
      details: { allowed: budget.maxSpendUsd, committed: budget.committedUsd },
    };
  }
  return undefined;
}

export function tasksRefusal(root: JobRecord, requested: number): Refusal {
  const b = root.budget;
  return {
    limit: 'max_tasks_per_root',
    message: `the job tree may create ${b?.maxTasks ?? 0} tasks in all; ${b?.reservedTasks ?? 0} exist and ${requested} more were asked for`,
    details: { allowed: b?.maxTasks ?? 0, reserved: b?.reservedTasks ?? 0, requested },
  };
}

/**
 * What one attempt may reserve when the CLI's own budget is the only cap (the
 * model gateway off): the per-task cap, within an even share of what the tree
 * has not committed among the job's free running slots (`freeSlots`, this
 * attempt's included). Every slot can then take its share at once, so the
 * reservations never hold fewer than max_workers attempts back; 0 when
 * nothing is left.
 */
export function attemptBudget(budget: RootBudget, maxTaskBudgetUsd: number, freeSlots = 1): number {
  const left = budget.maxSpendUsd - budget.committedUsd;
  if (left < MIN_ATTEMPT_BUDGET_USD) return 0;
  const share = Math.max(left / Math.max(1, Math.floor(freeSlots)), MIN_ATTEMPT_BUDGET_USD);
  const slice = Math.min(maxTaskBudgetUsd, share, left);
  return Math.floor(slice * 10_000) / 10_000;
}

/**
 * Among how many attempts what the tree has left is shared out: the job's
 * free running slots, but no more than the work tasks it still has to start
 * (this one included), so a job of 2 tasks does not hold 5 shares back.
 */
export function spendShares(
  job: Pick<JobRecord, 'config' | 'runningTasks' | 'totalTasks' | 'finishedTasks'>,
): number {
  const running = job.runningTasks ?? 0;
  const freeSlots = job.config.maxWorkers - running;
  const toStart = job.totalTasks - job.finishedTasks.length - running;
  return Math.max(1, Math.min(freeSlots, toStart));
}

/** Whether a worker should be offered the choice to split, and how many subtasks it may ask for. */
export function splitOffer(
  root: JobRecord,
  job: JobRecord,
  task: TaskRecord,
): { allowed: boolean; maxSubtasks: number } {
  const budget = root.budget;
  if (task.kind !== 'work' || !budget || job.depth + 1 > budget.maxDepth)
    return { allowed: false, maxSubtasks: 0 };
  const tasksLeft = budget.maxTasks - budget.reservedTasks;
  const maxSubtasks = Math.min(root.config.maxWorkers, tasksLeft);
  return { allowed: maxSubtasks >= 2, maxSubtasks };
}

export function decideSchema(maxSubtasks: number): Record<string, unknown> {
  return {
    type: 'object',
    properties: {
      decision: { type: 'string', enum: ['do', 'split'] },
      reason: { type: 'string', maxLength: 1000 },
      subtasks: {
        type: 'array',
        minItems: 0,
        maxItems: maxSubtasks,
        items: SUBTASK_ITEM_SCHEMA,
      },
    },
    required: ['decision', 'reason', 'subtasks'],
    additionalProperties: false,
  };
}

/** The marker line lets tools (and the test double) recognise a decide run. */
export const DECIDE_MARKER = 'ORCHESTRATOR-DECIDE';

export function decidePrompt(
  subtaskPrompt: string,
  depth: number,
  maxDepth: number,
  maxSubtasks: number,
): string {
  return [
    DECIDE_MARKER,
    `You are a Claude Code worker at depth ${depth} of at most ${maxDepth}. Before doing your subtask, decide:`,
    '- "do": you can finish it well in one session;',
    `- "split": it is too large; give 2 to ${maxSubtasks} independent, self-contained subtasks that other workers will run in parallel.`,
    'Answer only with the JSON the schema asks for. Do not start the work now.',
    '',
    'Subtask:',
    subtaskPrompt,
  ].join('\n');
}

/** The summary a parent task keeps of its child job; the cost is every attempt of the child's own tasks. */
export function childResultsOf(tasks: readonly TaskRecord[], status: JobStatus): ChildResults {
  const work = tasks.filter((t) => t.kind === 'work');
  const good = work.filter((t) => isSuccessfulTaskState(t.state)).length;
  return {
    status,
    total: work.length,
    succeeded: good,
    failed: work.length - good,
    costUsd: tasksCostUsd(tasks),
  };
}

/** A finished child completes its waiting parent: success when any of its work succeeded. */
export function parentOutcome(childStatus: JobStatus): 'recursive_success' | 'failed' {
  return childStatus === 'completed' || childStatus === 'partial' ? 'recursive_success' : 'failed';
}
