/**
 * The budget of a job tree, kept as the `budget` map on its root job item:
 * tasks reserved across the tree and spend committed and spent. Each
 * reservation is one conditional update, so under any number of concurrent
 * callers the totals never pass the limits. (RunSlots.acquireJob may reserve
 * a root attempt's spend together with its slot, and JobStore.closeAttemptOnJob
 * settle it together with the slot's return: one write each instead of two.)
 */
import { type DynamoDBDocumentClient, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { JobRecord } from '../core/model.ts';
import { updateInput, updateItem } from './dynamo-ops.ts';
import { jobKey } from './table-keys.ts';

/** Slack for floating-point sums of USD amounts, so a reservation that fits exactly is not refused. */
export const EPSILON = 1e-9;

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
    if (!root.budget) return false;
    const allowed = root.budget.maxSpendUsd - usd + EPSILON;
    if (allowed < 0) return false;
    const out = await updateItem(this.ddb, this.tableName, {
      key: jobKey(root.jobId),
      set: ['#b.committedUsd = #b.committedUsd + :usd'],
      conditions: ['#b.committedUsd <= :allowed'],
      names: { '#b': 'budget' },
      values: { ':usd': usd, ':allowed': allowed },
    });
    return out !== undefined;
  }

  /** An attempt ended: its reservation becomes its actual cost. */
  async settleSpend(rootJobId: string, reservedUsd: number, actualUsd: number): Promise<void> {
    await this.ddb.send(
      new UpdateCommand(
        updateInput(this.tableName, {
          key: jobKey(rootJobId),
          set: ['#b.committedUsd = #b.committedUsd + :delta', '#b.spentUsd = #b.spentUsd + :actual'],
          names: { '#b': 'budget' },
          values: { ':delta': actualUsd - reservedUsd, ':actual': actualUsd },
        }),
      ),
    );
  }
}
