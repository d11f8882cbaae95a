/**
 * The job tree in the table: the root's budget (tasks and spend, reserved with
 * one conditional update each), hand-offs to child jobs, cancellation, and
 * listing a root's descendants. Same table and item shapes as JobStore.
 */
import { type DynamoDBDocumentClient, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { AttemptMeter, AttemptRecord, ChildResults, JobRecord, TaskRecord } from '../core/model.ts';
import { MIN_HEADROOM_USD } from '../core/model-metering.ts';
import { attemptTimes } from '../core/performance.ts';
import {
  assertTaskTransition,
  TASK_STATES,
  type TaskState,
  TERMINAL_TASK_STATES,
} from '../core/task-states.ts';
import {
  conditional,
  indexPartition,
  type JobStore,
  jobFromItem,
  queryAll,
  taskFromItem,
} from './job-store.ts';
import { jobKey, RUNNING_COUNTER_KEY, taskKey, treePartition } from './table-keys.ts';
import { LISTING_INDEX_PARTITION_KEY, LISTING_INDEX_SORT_KEY } from './table-schema.ts';

/** Slack for floating-point sums of USD amounts, so a reservation that fits exactly is not refused. */
const EPSILON = 1e-9;

const NON_TERMINAL: readonly TaskState[] = TASK_STATES.filter((s) => !TERMINAL_TASK_STATES.has(s));

export class TreeStore {
  private readonly ddb: DynamoDBDocumentClient;
  private readonly tableName: string;

  constructor(store: JobStore) {
    this.ddb = store.ddb;
    this.tableName = store.tableName;
  }

  /**
   * Reserves `count` tasks of the root's budget. One conditional update: under
   * any number of concurrent callers the reserved total never passes the limit.
   */
  async reserveTasks(root: JobRecord, count: number, now: string, forChild = false): Promise<boolean> {
    if (!root.budget) return false;
    const allowed = root.budget.maxTasks - count;
    if (allowed < 0) return false;
    const out = await conditional(() =>
      this.ddb.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: jobKey(root.jobId),
          // For a child, the same write marks the root as having a tree to report on.
          UpdateExpression: `SET #b.reservedTasks = #b.reservedTasks + :n, updatedAt = :now${forChild ? ', hasChildren = :yes' : ''}`,
          ConditionExpression: '#b.reservedTasks <= :allowed',
          ExpressionAttributeNames: { '#b': 'budget' },
          ExpressionAttributeValues: {
            ':n': count,
            ':allowed': allowed,
            ':now': now,
            ...(forChild ? { ':yes': true } : {}),
          },
        }),
      ),
    );
    return out !== undefined;
  }

  /** Gives back tasks reserved for something that was not created after all. */
  async releaseTasks(rootJobId: string, count: number): Promise<void> {
    await this.ddb.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: jobKey(rootJobId),
        UpdateExpression: 'SET #b.reservedTasks = #b.reservedTasks - :n',
        ExpressionAttributeNames: { '#b': 'budget' },
        ExpressionAttributeValues: { ':n': count },
      }),
    );
  }

  /** Reserves `usd` of the root's spend limit (one conditional update, like reserveTasks). */
  async reserveSpend(root: JobRecord, usd: number): Promise<boolean> {
    if (!root.budget) return false;
    const allowed = root.budget.maxSpendUsd - usd + EPSILON;
    if (allowed < 0) return false;
    const out = await conditional(() =>
      this.ddb.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: jobKey(root.jobId),
          UpdateExpression: 'SET #b.committedUsd = #b.committedUsd + :usd',
          ConditionExpression: '#b.committedUsd <= :allowed',
          ExpressionAttributeNames: { '#b': 'budget' },
          ExpressionAttributeValues: { ':usd': usd, ':allowed': allowed },
        }),
      ),
    );
    return out !== undefined;
  }

  /** An attempt ended: its reservation becomes its actual cost. */
  async settleSpend(rootJobId: string, reservedUsd: number, actualUsd: number): Promise<void> {
    await this.ddb.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: jobKey(rootJobId),
        UpdateExpression:
          'SET #b.committedUsd = #b.committedUsd + :delta, #b.spentUsd = #b.spentUsd + :actual',
        ExpressionAttributeNames: { '#b': 'budget' },
        ExpressionAttributeValues: { ':delta': actualUsd - reservedUsd, ':actual': actualUsd },
      }),
    );
  }

  /** Records the budget of an attempt once; false if this attempt already has one (a repeated call). */
  async setTaskBudget(task: TaskRecord, attempt: number, usd: number): Promise<boolean> {
    const out = await conditional(() =>
      this.ddb.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: taskKey(task.jobId, task.taskNo),
          UpdateExpression: 'SET budgetUsd = :usd, budgetAttempt = :a',
          ConditionExpression:
            'attempt = :a AND #state IN (:launching, :running) AND (attribute_not_exists(budgetAttempt) OR budgetAttempt <> :a)',
          ExpressionAttributeNames: { '#state': 'state' },
          ExpressionAttributeValues: {
            ':usd': usd,
            ':a': attempt,
            ':launching': 'launching',
            ':running': 'running',
          },
        }),
      ),
    );
    return out !== undefined;
  }

  /**
   * Opens the model gateway's meter for an attempt that is launching or
   * running, once: false if it is already open for this attempt, or if an
   * earlier attempt's meter still holds reservations (close those first).
   */
  async openMeter(jobId: string, taskNo: number, attempt: number, limitUsd: number): Promise<boolean> {
    const meter: AttemptMeter = {
      attempt,
      limitUsd,
      committedUsd: 0,
      meteredUsd: 0,
      requests: 0,
      open: {},
    };
    const out = await conditional(() =>
      this.ddb.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: taskKey(jobId, taskNo),
          UpdateExpression: 'SET #m = :meter',
          ConditionExpression:
            'attempt = :a AND #state IN (:launching, :running) AND (attribute_not_exists(#m) OR (#m.attempt <> :a AND size(#m.#open) = :zero))',
          ExpressionAttributeNames: { '#m': 'meter', '#open': 'open', '#state': 'state' },
          ExpressionAttributeValues: {
            ':meter': meter,
            ':a': attempt,
            ':zero': 0,
            ':launching': 'launching',
            ':running': 'running',
          },
        }),
      ),
    );
    return out !== undefined;
  }

  /**
   * Reserves a request's maximum cost on its attempt's meter while the
   * attempt is active and at least a cent of its limit is uncommitted. One
   * conditional update: concurrent requests of one attempt wait for each
   * other instead of committing together past the limit.
   */
  async reserveRequest(
    task: Pick<TaskRecord, 'jobId' | 'taskNo'>,
    attempt: number,
    requestId: string,
    usd: number,
    limitUsd: number,
  ): Promise<boolean> {
    // Admitted while anything of the attempt's limit is uncommitted, so the attempt ends at most one
    // request's worst case above its limit (the tree's reservation, not this one, is the hard cap).
    const allowed = limitUsd - MIN_HEADROOM_USD;
    if (allowed < 0) return false;
    const out = await conditional(() =>
      this.ddb.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: taskKey(task.jobId, task.taskNo),
          UpdateExpression:
            'SET #m.committedUsd = #m.committedUsd + :usd, #m.requests = #m.requests + :one, #m.#open.#rid = :usd',
          ConditionExpression:
            'attempt = :a AND #state IN (:launching, :running) AND #m.attempt = :a AND #m.limitUsd = :limit AND #m.committedUsd <= :allowed',
          ExpressionAttributeNames: { '#m': 'meter', '#open': 'open', '#rid': requestId, '#state': 'state' },
          ExpressionAttributeValues: {
            ':usd': usd,
            ':one': 1,
            ':a': attempt,
            ':limit': limitUsd,
            ':allowed': allowed,
            ':launching': 'launching',
            ':running': 'running',
          },
        }),
      ),
    );
    return out !== undefined;
  }

  /**
   * A request ended: its reservation on the attempt becomes what it cost.
   * True only for the one call that removed the reservation, so the tree is
   * settled exactly once whoever gets here first (the gateway, or closeMeter
   * when the attempt ended with the request still open).
   */
  async settleRequest(
    task: Pick<TaskRecord, 'jobId' | 'taskNo'>,
    requestId: string,
    reservedUsd: number,
    actualUsd: number,
  ): Promise<boolean> {
    const out = await conditional(() =>
      this.ddb.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: taskKey(task.jobId, task.taskNo),
          UpdateExpression:
            'REMOVE #m.#open.#rid SET #m.committedUsd = #m.committedUsd + :delta, #m.meteredUsd = #m.meteredUsd + :actual',
          ConditionExpression: 'attribute_exists(#m.#open.#rid)',
          ExpressionAttributeNames: { '#m': 'meter', '#open': 'open', '#rid': requestId },
          ExpressionAttributeValues: { ':delta': actualUsd - reservedUsd, ':actual': actualUsd },
        }),
      ),
    );
    return out !== undefined;
  }

  /** Notes on the attempt's meter that the gateway refused it for good, and why (once). */
  async markMeterRefusal(
    task: Pick<TaskRecord, 'jobId' | 'taskNo'>,
    attempt: number,
    message: string,
  ): Promise<void> {
    await conditional(() =>
      this.ddb.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: taskKey(task.jobId, task.taskNo),
          UpdateExpression: 'SET #m.refusal = :message',
          ConditionExpression: '#m.attempt = :a AND attribute_not_exists(#m.refusal)',
          ExpressionAttributeNames: { '#m': 'meter' },
          ExpressionAttributeValues: { ':a': attempt, ':message': message },
        }),
      ),
    );
  }

  /**
   * Marks a queued task as waiting for the tree's spend (or clears the mark),
   * so the job's status can say why it has not started.
   */
  async setWaiting(
    jobId: string,
    taskNo: number,
    attempt: number,
    reason: 'spend_budget' | undefined,
    now: string,
  ): Promise<void> {
    await conditional(() =>
      this.ddb.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: taskKey(jobId, taskNo),
          ...(reason
            ? {
                UpdateExpression:
                  'SET waitingFor = :reason, waitingSince = if_not_exists(waitingSince, :now)',
                ConditionExpression: 'attempt = :a',
                ExpressionAttributeValues: { ':reason': reason, ':now': now, ':a': attempt },
              }
            : {
                // Kept past the clear, so the reports can still show the wait once the attempt is over.
                UpdateExpression:
                  'SET budgetWaitAttempt = :a, budgetWaitSince = if_not_exists(waitingSince, :now), budgetWaitUntil = :now REMOVE waitingFor, waitingSince',
                ConditionExpression: 'attribute_exists(waitingFor)',
                ExpressionAttributeValues: { ':a': attempt, ':now': now },
              }),
        }),
      ),
    );
  }

  /** `running -> waiting_on_child`: the worker handed its subtask to a child job and may exit. */
  async handoffToChild(
    task: TaskRecord,
    attempt: number,
    childJobId: string,
    record: AttemptRecord,
    now: string,
  ) {
    assertTaskTransition('running', 'waiting_on_child');
    const out = await conditional(() =>
      this.ddb.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: taskKey(task.jobId, task.taskNo),
          UpdateExpression:
            'SET #state = :waiting, childJobId = :child, updatedAt = :now, attempts = list_append(if_not_exists(attempts, :empty), :record)',
          ConditionExpression: 'attempt = :a AND #state = :running',
          ExpressionAttributeNames: { '#state': 'state' },
          ExpressionAttributeValues: {
            ':waiting': 'waiting_on_child',
            ':child': childJobId,
            ':now': now,
            ':a': attempt,
            ':running': 'running',
            // The task's launch and start belong to this attempt; a later retry clears them.
            ':record': [{ ...attemptTimes(task), ...record }],
            ':empty': [],
          },
          ReturnValues: 'ALL_NEW',
        }),
      ),
    );
    return out?.Attributes ? taskFromItem(out.Attributes) : undefined;
  }

  /** The child job ended: its waiting parent task ends too. Only the child it waits for can end it. */
  async completeFromChild(
    parentJobId: string,
    parentTaskNo: number,
    childJobId: string,
    to: 'recursive_success' | 'failed',
    childResults: ChildResults,
    error: string | undefined,
    now: string,
  ): Promise<TaskRecord | undefined> {
    assertTaskTransition('waiting_on_child', to);
    const out = await conditional(() =>
      this.ddb.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: taskKey(parentJobId, parentTaskNo),
          UpdateExpression: `SET #state = :to, childResults = :results, finishedAt = :now, updatedAt = :now${error ? ', childError = :error' : ''}`,
          ConditionExpression: '#state = :waiting AND childJobId = :child',
          ExpressionAttributeNames: { '#state': 'state' },
          ExpressionAttributeValues: {
            ':to': to,
            ':results': childResults,
            ':now': now,
            ':waiting': 'waiting_on_child',
            ':child': childJobId,
            ...(error ? { ':error': error } : {}),
          },
          ReturnValues: 'ALL_NEW',
        }),
      ),
    );
    return out?.Attributes ? taskFromItem(out.Attributes) : undefined;
  }

  /** Any non-final task -> cancelled. Returns the task as it was (for its launch handle), or undefined if already final. */
  async cancelTask(jobId: string, taskNo: number, now: string): Promise<TaskRecord | undefined> {
    const values = Object.fromEntries(NON_TERMINAL.map((s, i) => [`:s${i}`, s]));
    const out = await conditional(() =>
      this.ddb.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: taskKey(jobId, taskNo),
          UpdateExpression: `SET #state = :cancelled, finishedAt = :now, updatedAt = :now REMOVE ${LISTING_INDEX_PARTITION_KEY}, ${LISTING_INDEX_SORT_KEY}`,
          ConditionExpression: `#state IN (${Object.keys(values).join(', ')})`,
          ExpressionAttributeNames: { '#state': 'state' },
          ExpressionAttributeValues: { ':cancelled': 'cancelled', ':now': now, ...values },
          ReturnValues: 'ALL_OLD',
        }),
      ),
    );
    return out?.Attributes ? taskFromItem(out.Attributes) : undefined;
  }

  /** A result that arrived after its task was cancelled: kept for the record, applied nowhere. */
  async recordLateResult(jobId: string, taskNo: number, result: TaskRecord['lateResult']): Promise<void> {
    await this.ddb.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: taskKey(jobId, taskNo),
        UpdateExpression: 'SET lateResult = :r',
        ExpressionAttributeValues: { ':r': result },
      }),
    );
  }

  /** Every descendant job of a root (not the root itself), shallowest first. */
  async listDescendants(rootJobId: string): Promise<JobRecord[]> {
    const items = await queryAll(
      this.ddb,
      indexPartition(this.tableName, treePartition(rootJobId)),
      `job tree ${rootJobId}`,
    );
    return items.map(jobFromItem);
  }
}

/**
 * Running-worker slots: a counter on the job item (at most its max_workers
 * running at once) and one for the whole deployment (at most
 * `workers.max_running`). Taken with a conditional update when a task is
 * dispatched, given back when its container stops; the sweep repairs a
 * counter a crash left too high.
 */
export class RunSlots {
  private readonly ddb: DynamoDBDocumentClient;
  private readonly tableName: string;

  constructor(store: JobStore) {
    this.ddb = store.ddb;
    this.tableName = store.tableName;
  }

  /**
   * Takes a running slot of the job (bounded by its own config.maxWorkers).
   * For a root job's attempt, `spend` reserves its budget on the same item in
   * the same conditional update (one write instead of two). `false` when
   * either does not fit: read the job to learn which.
   */
  async acquireJob(jobId: string, spend?: { usd: number; maxSpendUsd: number }): Promise<boolean> {
    const reserve = spend !== undefined && spend.usd > 0;
    const job = await conditional(() =>
      this.ddb.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: jobKey(jobId),
          UpdateExpression: `SET #r = if_not_exists(#r, :zero) + :one${reserve ? ', #b.committedUsd = #b.committedUsd + :usd' : ''}`,
          ConditionExpression: `attribute_exists(PK) AND (attribute_not_exists(#r) OR #r < #c.maxWorkers)${reserve ? ' AND #b.committedUsd <= :allowed' : ''}`,
          ExpressionAttributeNames: {
            '#r': 'runningTasks',
            '#c': 'config',
            ...(reserve ? { '#b': 'budget' } : {}),
          },
          ExpressionAttributeValues: {
            ':zero': 0,
            ':one': 1,
            ...(reserve ? { ':usd': spend.usd, ':allowed': spend.maxSpendUsd - spend.usd + EPSILON } : {}),
          },
        }),
      ),
    );
    return job !== undefined;
  }

  /** Takes a slot of the deployment (at most `globalMax` running); false if it is full. */
  async acquireGlobal(globalMax: number): Promise<boolean> {
    const global = await conditional(() =>
      this.ddb.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: RUNNING_COUNTER_KEY,
          UpdateExpression: 'SET #r = if_not_exists(#r, :zero) + :one',
          ConditionExpression: 'attribute_not_exists(#r) OR #r < :max',
          ExpressionAttributeNames: { '#r': 'runningTasks' },
          ExpressionAttributeValues: { ':zero': 0, ':one': 1, ':max': globalMax },
        }),
      ),
    );
    return global !== undefined;
  }

  /** Gives a slot back (never below zero). */
  async release(jobId: string): Promise<void> {
    await this.releaseJob(jobId);
    await this.releaseGlobal();
  }

  /** Gives the deployment's slot back (never below zero). */
  async releaseGlobal(): Promise<void> {
    await conditional(() =>
      this.ddb.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: RUNNING_COUNTER_KEY,
          UpdateExpression: 'SET #r = #r - :one',
          ConditionExpression: '#r > :zero',
          ExpressionAttributeNames: { '#r': 'runningTasks' },
          ExpressionAttributeValues: { ':zero': 0, ':one': 1 },
        }),
      ),
    );
  }

  /** Sets a job's counter to what is really running, if it still holds the value the caller saw. */
  async repairJob(jobId: string, seen: number, actual: number): Promise<boolean> {
    const out = await conditional(() =>
      this.ddb.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: jobKey(jobId),
          UpdateExpression: 'SET #r = :actual',
          ConditionExpression: '#r = :seen',
          ExpressionAttributeNames: { '#r': 'runningTasks' },
          ExpressionAttributeValues: { ':actual': actual, ':seen': seen },
        }),
      ),
    );
    return out !== undefined;
  }

  async readGlobal(): Promise<number> {
    const out = await this.ddb.send(
      new GetCommand({ TableName: this.tableName, Key: RUNNING_COUNTER_KEY, ConsistentRead: true }),
    );
    return Number(out.Item?.runningTasks ?? 0);
  }

  /** Sets the deployment's counter to what is really running, if it still holds the value the caller saw. */
  async repairGlobal(seen: number, actual: number): Promise<boolean> {
    const out = await conditional(() =>
      this.ddb.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: RUNNING_COUNTER_KEY,
          UpdateExpression: 'SET #r = :actual',
          ConditionExpression: '#r = :seen',
          ExpressionAttributeNames: { '#r': 'runningTasks' },
          ExpressionAttributeValues: { ':actual': actual, ':seen': seen },
        }),
      ),
    );
    return out !== undefined;
  }

  /** Gives the job's slot back (never below zero). */
  async releaseJob(jobId: string): Promise<void> {
    await conditional(() =>
      this.ddb.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: jobKey(jobId),
          UpdateExpression: 'SET #r = #r - :one',
          ConditionExpression: '#r > :zero',
          ExpressionAttributeNames: { '#r': 'runningTasks' },
          ExpressionAttributeValues: { ':zero': 0, ':one': 1 },
        }),
      ),
    );
  }
}
