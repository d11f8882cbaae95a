/**
 * Running-worker slots: a counter on the job item (at most its max_workers
 * running at once) and one for the whole deployment (at most
 * `workers.max_running`, on its own item `COUNTER#running`). Taken with a
 * conditional update when a task is dispatched, given back when its
 * container stops; the sweep repairs a counter a crash left too high.
 */
import { type DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { combine, type UpdateActions, updateItem } from './dynamo-ops.ts';
import { spendReservation } from './root-budget.ts';
import { type ItemKey, jobKey, RUNNING_COUNTER_KEY } from './table-keys.ts';

/** Gives a slot back, never below zero: on the job item, also part of JobStore.closeAttemptOnJob. */
export const SLOT_RETURN: UpdateActions = {
  set: ['#r = #r - :one'],
  conditions: ['#r > :zero'],
  names: { '#r': 'runningTasks' },
  values: { ':zero': 0, ':one': 1 },
};

export class RunSlots {
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  /**
   * Takes a running slot of the job (bounded by its own config.maxWorkers).
   * For a root job's attempt, `spend` reserves its budget on the same item in
   * the same conditional update (one write instead of two). `false` when
   * either does not fit: read the job to learn which.
   */
  async acquireJob(
    jobId: string,
    spend?: { usd: number; maxSpendUsd: number; keepUsd?: number | undefined },
  ): Promise<boolean> {
    const reserve = spend !== undefined && spend.usd > 0;
    const job = await updateItem(this.ddb, this.tableName, {
      key: jobKey(jobId),
      ...combine(
        {
          set: ['#r = if_not_exists(#r, :zero) + :one'],
          conditions: ['attribute_exists(PK)', '(attribute_not_exists(#r) OR #r < #c.maxWorkers)'],
          names: { '#r': 'runningTasks', '#c': 'config' },
          values: { ':zero': 0, ':one': 1 },
        },
        reserve && spendReservation(spend.usd, spend.maxSpendUsd, spend.keepUsd),
      ),
    });
    return job !== undefined;
  }

  /**
   * Takes `count` slots of the deployment (at most `globalMax` running), all
   * or none; false if fewer are free.
   */
  async acquireGlobal(globalMax: number, count = 1): Promise<boolean> {
    if (count > globalMax) return false;
    const global = await updateItem(this.ddb, this.tableName, {
      key: RUNNING_COUNTER_KEY,
      set: ['#r = if_not_exists(#r, :zero) + :count'],
      conditions: ['attribute_not_exists(#r) OR #r <= :limit'],
      names: { '#r': 'runningTasks' },
      values: { ':zero': 0, ':count': count, ':limit': globalMax - count },
    });
    return global !== undefined;
  }

  /** Gives a slot back (never below zero). */
  async release(jobId: string): Promise<void> {
    await this.releaseJob(jobId);
    await this.releaseGlobal();
  }

  /** Gives the job's slot back (never below zero). */
  async releaseJob(jobId: string): Promise<void> {
    await this.giveBack(jobKey(jobId));
  }

  /**
   * Gives `count` of the deployment's slots back (never below zero): in one
   * write when the counter holds them all, else one by one down to zero.
   */
  async releaseGlobal(count = 1): Promise<void> {
    if (count > 1) {
      const out = await updateItem(this.ddb, this.tableName, {
        key: RUNNING_COUNTER_KEY,
        set: ['#r = #r - :count'],
        conditions: ['#r >= :count'],
        names: { '#r': 'runningTasks' },
        values: { ':count': count },
      });
      if (out) return;
    }
    for (let i = 0; i < count; i++) await this.giveBack(RUNNING_COUNTER_KEY);
  }

  /** Sets a job's counter to what is really running, if it still holds the value the caller saw. */
  async repairJob(jobId: string, seen: number, actual: number): Promise<boolean> {
    return this.repair(jobKey(jobId), seen, actual);
  }

  /** Sets the deployment's counter to what is really running, if it still holds the value the caller saw. */
  async repairGlobal(seen: number, actual: number): Promise<boolean> {
    return this.repair(RUNNING_COUNTER_KEY, seen, actual);
  }

  /**
   * Whether a slot looks taken, from an eventually consistent read of its
   * counter: a hint that spares a task the claim and the undo steps while it
   * waits, never a grant (the conditional update above is).
   */
  async looksFull(scope: 'job' | 'deployment', jobId: string, globalMax: number): Promise<boolean> {
    if (scope === 'deployment') {
      const out = await this.ddb.send(
        new GetCommand({
          TableName: this.tableName,
          Key: RUNNING_COUNTER_KEY,
          ProjectionExpression: 'runningTasks',
        }),
      );
      return Number(out.Item?.runningTasks ?? 0) >= globalMax;
    }
    const out = await this.ddb.send(
      new GetCommand({
        TableName: this.tableName,
        Key: jobKey(jobId),
        ProjectionExpression: '#r, #c.maxWorkers',
        ExpressionAttributeNames: { '#r': 'runningTasks', '#c': 'config' },
      }),
    );
    const max = (out.Item?.config as { maxWorkers?: number } | undefined)?.maxWorkers;
    return max !== undefined && Number(out.Item?.runningTasks ?? 0) >= max;
  }

  async readGlobal(): Promise<number> {
    const out = await this.ddb.send(
      new GetCommand({ TableName: this.tableName, Key: RUNNING_COUNTER_KEY, ConsistentRead: true }),
    );
    return Number(out.Item?.runningTasks ?? 0);
  }

  private async giveBack(key: ItemKey): Promise<void> {
    await updateItem(this.ddb, this.tableName, { key, ...SLOT_RETURN });
  }

  private async repair(key: ItemKey, seen: number, actual: number): Promise<boolean> {
    const out = await updateItem(this.ddb, this.tableName, {
      key,
      set: ['#r = :actual'],
      conditions: ['#r = :seen'],
      names: { '#r': 'runningTasks' },
      values: { ':actual': actual, ':seen': seen },
    });
    return out !== undefined;
  }
}
