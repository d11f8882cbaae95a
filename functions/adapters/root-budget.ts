/**
 * The budget of a job tree, kept as the `budget` map on its root job item:
 * tasks reserved across the tree and spend committed and spent. Each
 * reservation is one conditional update, so under any number of concurrent
 * callers the totals never pass the limits. Every change to the map is
 * written here; two are also exported as parts, so a root's own attempt
 * reserves its spend with its running slot (RunSlots.acquireJob) and settles
 * it with the slot's return (JobStore.closeAttemptOnJob): one write each.
 */
import { type DynamoDBDocumentClient, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { JobRecord } from '../core/model.ts';
import { type UpdateActions, updateInput, updateItem } from './dynamo-ops.ts';
import { jobKey } from './table-keys.ts';

/** Slack for floating-point sums of USD amounts, so a reservation that fits exactly is not refused. */
const EPSILON = 1e-9;

/**
 * The most the tree may have committed before reserving `usd` and still
 * leave `keepUsd` uncommitted (negative: it can never fit).
 */
const spendBound = (usd: number, maxSpendUsd: number, keepUsd = 0) => maxSpendUsd - usd - keepUsd + EPSILON;

/**
 * Reserves `usd` of the root's spend limit, if it fits with `keepUsd` still
 * left after it: one condition.
 */
export function spendReservation(usd: number, maxSpendUsd: number, keepUsd = 0): UpdateActions {
  return {
    set: ['#b.committedUsd = #b.committedUsd + :usd'],
    conditions: ['#b.committedUsd <= :allowed'],
    names: { '#b': 'budget' },
    values: { ':usd': usd, ':allowed': spendBound(usd, maxSpendUsd, keepUsd) },
  };
}

/** Moves committed spend by `deltaUsd` (the reservation becomes the cost) and adds `actualUsd` to what was spent. */
export function spendSettlement(deltaUsd: number, actualUsd: number): UpdateActions {
  return {
    set: ['#b.committedUsd = #b.committedUsd + :delta', '#b.spentUsd = #b.spentUsd + :actual'],
    names: { '#b': 'budget' },
    values: { ':delta': deltaUsd, ':actual': actualUsd },
  };
}

export class RootBudget {
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  /**
   * Reserves `count` tasks of the root's budget. One conditional update: under
   * any number of concurrent callers the reserved total never passes the limit.
   */
  async reserveTasks(root: JobRecord, count: number, now: string, forChild = false): Promise<boolean> {
    if (!root.budget) return false;
    const allowed = root.budget.maxTasks - count;
    if (allowed < 0) return false;
    const out = await updateItem(this.ddb, this.tableName, {
      key: jobKey(root.jobId),
      // For a child, the same write marks the root as having a tree to report on.
      set: [
        '#b.reservedTasks = #b.reservedTasks + :n',
        'updatedAt = :now',
        ...(forChild ? ['hasChildren = :yes'] : []),
      ],
      conditions: ['#b.reservedTasks <= :allowed'],
      names: { '#b': 'budget' },
      values: { ':n': count, ':allowed': allowed, ':now': now, ...(forChild ? { ':yes': true } : {}) },
    });
    return out !== undefined;
  }

  /** Gives back tasks reserved for something that was not created after all. */
  async releaseTasks(rootJobId: string, count: number): Promise<void> {
    await this.ddb.send(
      new UpdateCommand(
        updateInput(this.tableName, {
          key: jobKey(rootJobId),
          set: ['#b.reservedTasks = #b.reservedTasks - :n'],
          names: { '#b': 'budget' },
          values: { ':n': count },
        }),
      ),
    );
  }

  /** Reserves `usd` of the root's spend limit (one conditional update, like reserveTasks). */
  async reserveSpend(root: JobRecord, usd: number): Promise<boolean> {
    if (!root.budget || spendBound(usd, root.budget.maxSpendUsd) < 0) return false;
    const out = await updateItem(this.ddb, this.tableName, {
      key: jobKey(root.jobId),
      ...spendReservation(usd, root.budget.maxSpendUsd),
    });
    return out !== undefined;
  }

  /** An attempt ended: its reservation becomes its actual cost. */
  async settleSpend(rootJobId: string, reservedUsd: number, actualUsd: number): Promise<void> {
    await this.ddb.send(
      new UpdateCommand(
        updateInput(this.tableName, {
          key: jobKey(rootJobId),
          ...spendSettlement(actualUsd - reservedUsd, actualUsd),
        }),
      ),
    );
  }
}
