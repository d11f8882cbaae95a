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
import { indexPartition, oneOf, queryAll, updateInput, updateItem } from './dynamo-ops.ts';
import type { JobStore } from './job-store.ts';
import { jobFromItem, taskFromItem } from './table-items.ts';
import { type ItemKey, jobKey, RUNNING_COUNTER_KEY, taskKey, treePartition } from './table-keys.ts';
import { LISTING_INDEX_PARTITION_KEY, LISTING_INDEX_SORT_KEY } from './table-schema.ts';

/** Slack for floating-point sums of USD amounts, so a reservation that fits exactly is not refused. */
const EPSILON = 1e-9;

const NON_TERMINAL: readonly TaskState[] = TASK_STATES.filter((s) => !TERMINAL_TASK_STATES.has(s));
/** The attempt `:a` is the task's current one, and it is launching or running. */
const LIVE_ATTEMPT = ['attempt = :a', '#state IN (:launching, :running)'];
const LIVE_STATES = { ':launching': 'launching', ':running': 'running' };

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

  /** Records the budget of an attempt once; false if this attempt already has one (a repeated call). */
  async setTaskBudget(task: TaskRecord, attempt: number, usd: number): Promise<boolean> {
    const out = await updateItem(this.ddb, this.tableName, {
      key: taskKey(task.jobId, task.taskNo),
      set: ['budgetUsd = :usd', 'budgetAttempt = :a'],
      conditions: [...LIVE_ATTEMPT, '(attribute_not_exists(budgetAttempt) OR budgetAttempt <> :a)'],
      names: { '#state': 'state' },
      values: { ':usd': usd, ':a': attempt, ...LIVE_STATES },
    });
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
    const out = await updateItem(this.ddb, this.tableName, {
      key: taskKey(jobId, taskNo),
      set: ['#m = :meter'],
      conditions: [
        ...LIVE_ATTEMPT,
        '(attribute_not_exists(#m) OR (#m.attempt <> :a AND size(#m.#open) = :zero))',
      ],
      names: { '#m': 'meter', '#open': 'open', '#state': 'state' },
      values: { ':meter': meter, ':a': attempt, ':zero': 0, ...LIVE_STATES },
    });
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
    const out = await updateItem(this.ddb, this.tableName, {
      key: taskKey(task.jobId, task.taskNo),
      set: [
        '#m.committedUsd = #m.committedUsd + :usd',
        '#m.requests = #m.requests + :one',
        '#m.#open.#rid = :usd',
      ],
      conditions: [...LIVE_ATTEMPT, '#m.attempt = :a', '#m.limitUsd = :limit', '#m.committedUsd <= :allowed'],
      names: { '#m': 'meter', '#open': 'open', '#rid': requestId, '#state': 'state' },
      values: {
        ':usd': usd,
        ':one': 1,
        ':a': attempt,
        ':limit': limitUsd,
        ':allowed': allowed,
        ...LIVE_STATES,
      },
    });
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
    const out = await updateItem(this.ddb, this.tableName, {
      key: taskKey(task.jobId, task.taskNo),
      set: ['#m.committedUsd = #m.committedUsd + :delta', '#m.meteredUsd = #m.meteredUsd + :actual'],
      remove: ['#m.#open.#rid'],
      conditions: ['attribute_exists(#m.#open.#rid)'],
      names: { '#m': 'meter', '#open': 'open', '#rid': requestId },
      values: { ':delta': actualUsd - reservedUsd, ':actual': actualUsd },
    });
    return out !== undefined;
  }

  /** Notes on the attempt's meter that the gateway refused it for good, and why (once). */
  async markMeterRefusal(
    task: Pick<TaskRecord, 'jobId' | 'taskNo'>,
    attempt: number,
    message: string,
  ): Promise<void> {
    await updateItem(this.ddb, this.tableName, {
      key: taskKey(task.jobId, task.taskNo),
      set: ['#m.refusal = :message'],
      conditions: ['#m.attempt = :a', 'attribute_not_exists(#m.refusal)'],
      names: { '#m': 'meter' },
      values: { ':a': attempt, ':message': message },
    });
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
    await updateItem(this.ddb, this.tableName, {
      key: taskKey(jobId, taskNo),
      ...(reason
        ? {
            set: ['waitingFor = :reason', 'waitingSince = if_not_exists(waitingSince, :now)'],
            conditions: ['attempt = :a'],
            values: { ':reason': reason, ':now': now, ':a': attempt },
          }
        : {
            // Kept past the clear, so the reports can still show the wait once the attempt is over.
            set: [
              'budgetWaitAttempt = :a',
              'budgetWaitSince = if_not_exists(waitingSince, :now)',
              'budgetWaitUntil = :now',
            ],
            remove: ['waitingFor', 'waitingSince'],
            conditions: ['attribute_exists(waitingFor)'],
            values: { ':a': attempt, ':now': now },
          }),
    });
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
    const out = await updateItem(this.ddb, this.tableName, {
      key: taskKey(task.jobId, task.taskNo),
      set: [
        '#state = :waiting',
        'childJobId = :child',
        'updatedAt = :now',
        'attempts = list_append(if_not_exists(attempts, :empty), :record)',
      ],
      conditions: ['attempt = :a', '#state = :running'],
      names: { '#state': 'state' },
      values: {
        ':waiting': 'waiting_on_child',
        ':child': childJobId,
        ':now': now,
        ':a': attempt,
        ':running': 'running',
        // The task's launch and start belong to this attempt; a later retry clears them.
        ':record': [{ ...attemptTimes(task), ...record }],
        ':empty': [],
      },
      returnValues: 'ALL_NEW',
    });
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
    const out = await updateItem(this.ddb, this.tableName, {
      key: taskKey(parentJobId, parentTaskNo),
      set: [
        '#state = :to',
        'childResults = :results',
        'finishedAt = :now',
        'updatedAt = :now',
        ...(error ? ['childError = :error'] : []),
      ],
      conditions: ['#state = :waiting', 'childJobId = :child'],
      names: { '#state': 'state' },
      values: {
        ':to': to,
        ':results': childResults,
        ':now': now,
        ':waiting': 'waiting_on_child',
        ':child': childJobId,
        ...(error ? { ':error': error } : {}),
      },
      returnValues: 'ALL_NEW',
    });
    return out?.Attributes ? taskFromItem(out.Attributes) : undefined;
  }

  /** Any non-final task -> cancelled. Returns the task as it was (for its launch handle), or undefined if already final. */
  async cancelTask(jobId: string, taskNo: number, now: string): Promise<TaskRecord | undefined> {
    const live = oneOf('#state', ':s', NON_TERMINAL);
    const out = await updateItem(this.ddb, this.tableName, {
      key: taskKey(jobId, taskNo),
      set: ['#state = :cancelled', 'finishedAt = :now', 'updatedAt = :now'],
      remove: [LISTING_INDEX_PARTITION_KEY, LISTING_INDEX_SORT_KEY],
      conditions: [live.condition],
      names: { '#state': 'state' },
      values: { ':cancelled': 'cancelled', ':now': now, ...live.values },
      returnValues: 'ALL_OLD',
    });
    return out?.Attributes ? taskFromItem(out.Attributes) : undefined;
  }

  /** A result that arrived after its task was cancelled: kept for the record, applied nowhere. */
  async recordLateResult(jobId: string, taskNo: number, result: TaskRecord['lateResult']): Promise<void> {
    await this.ddb.send(
      new UpdateCommand(
        updateInput(this.tableName, {
          key: taskKey(jobId, taskNo),
          set: ['lateResult = :r'],
          values: { ':r': result },
        }),
      ),
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
    const job = await updateItem(this.ddb, this.tableName, {
      key: jobKey(jobId),
      set: [
        '#r = if_not_exists(#r, :zero) + :one',
        ...(reserve ? ['#b.committedUsd = #b.committedUsd + :usd'] : []),
      ],
      conditions: [
        'attribute_exists(PK)',
        '(attribute_not_exists(#r) OR #r < #c.maxWorkers)',
        ...(reserve ? ['#b.committedUsd <= :allowed'] : []),
      ],
      names: { '#r': 'runningTasks', '#c': 'config', ...(reserve ? { '#b': 'budget' } : {}) },
      values: {
        ':zero': 0,
        ':one': 1,
        ...(reserve ? { ':usd': spend.usd, ':allowed': spend.maxSpendUsd - spend.usd + EPSILON } : {}),
      },
    });
    return job !== undefined;
  }

  /** Takes a slot of the deployment (at most `globalMax` running); false if it is full. */
  async acquireGlobal(globalMax: number): Promise<boolean> {
    const global = await updateItem(this.ddb, this.tableName, {
      key: RUNNING_COUNTER_KEY,
      set: ['#r = if_not_exists(#r, :zero) + :one'],
      conditions: ['attribute_not_exists(#r) OR #r < :max'],
      names: { '#r': 'runningTasks' },
      values: { ':zero': 0, ':one': 1, ':max': globalMax },
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

  /** Gives the deployment's slot back (never below zero). */
  async releaseGlobal(): Promise<void> {
    await this.giveBack(RUNNING_COUNTER_KEY);
  }

  /** Sets a job's counter to what is really running, if it still holds the value the caller saw. */
  async repairJob(jobId: string, seen: number, actual: number): Promise<boolean> {
    return this.repair(jobKey(jobId), seen, actual);
  }

  /** Sets the deployment's counter to what is really running, if it still holds the value the caller saw. */
  async repairGlobal(seen: number, actual: number): Promise<boolean> {
    return this.repair(RUNNING_COUNTER_KEY, seen, actual);
  }

  async readGlobal(): Promise<number> {
    const out = await this.ddb.send(
      new GetCommand({ TableName: this.tableName, Key: RUNNING_COUNTER_KEY, ConsistentRead: true }),
    );
    return Number(out.Item?.runningTasks ?? 0);
  }

  private async giveBack(key: ItemKey): Promise<void> {
    await updateItem(this.ddb, this.tableName, {
      key,
      set: ['#r = #r - :one'],
      conditions: ['#r > :zero'],
      names: { '#r': 'runningTasks' },
      values: { ':zero': 0, ':one': 1 },
    });
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
