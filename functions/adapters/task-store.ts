/**
 * Task items (`JOB#<jobId>`, `TASK#<nnnn>`): every write to a task is here.
 * An attempt's life (claim, launch handle, running, heartbeat, end or retry),
 * its upload counters, its spend (budget, the model gateway's meter, the wait
 * for the tree's spend), the hand-off to a child job and back, cancellation,
 * and the active listing the reconciler's sweep reads. Every state change is a
 * conditional write that names the state it expects; a write whose condition
 * fails returns `undefined` (someone else moved first) instead of throwing.
 */
import {
  BatchGetCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import type {
  AttemptMeter,
  AttemptRecord,
  ChildResults,
  JobRecord,
  RefusedFile,
  TaskRecord,
  TaskResultSummary,
} from '../core/model.ts';
import { MIN_HEADROOM_USD } from '../core/model-metering.ts';
import { attemptTimes } from '../core/performance.ts';
import {
  assertTaskTransition,
  isLiveAttempt,
  TASK_STATES,
  type TaskState,
  TERMINAL_TASK_STATES,
} from '../core/task-states.ts';
import {
  conditional,
  indexPartition,
  oneOf,
  queryAll,
  type UpdateParts,
  updateInput,
  updateItem,
} from './dynamo-ops.ts';
import { jobFromItem, taskFromItem, taskItem } from './table-items.ts';
import {
  ACTIVE_SHARDS,
  activeShardPartition,
  isJobItem,
  jobKey,
  jobPartition,
  TASK_SORT_PREFIX,
  taskKey,
} from './table-keys.ts';
import { LISTING_INDEX_PARTITION_KEY, LISTING_INDEX_SORT_KEY } from './table-schema.ts';

const NON_TERMINAL: readonly TaskState[] = TASK_STATES.filter((s) => !TERMINAL_TASK_STATES.has(s));
/** The attempt `:a` is the task's current one, and it is launching or running. */
const LIVE_ATTEMPT = ['attempt = :a', '#state IN (:launching, :running)'];
const LIVE_STATES = { ':launching': 'launching', ':running': 'running' };
/** Reads of one batch before an unprocessed key is an error (the table is throttling). */
const BATCH_READ_TRIES = 4;

/** What one upload request adds to its attempt's counters (see TaskStore.countUploads). */
export interface UploadGrant {
  /** Short hashes of the file paths this attempt has not been given links for yet. */
  newPaths: string[];
  /** Bytes signed by this request (files, log and git artifacts). */
  bytes: number;
  /** Names refused by this request, to keep on the item (already bounded by the caller). */
  refused: RefusedFile[];
  /** How many names this request refused, kept or not. */
  refusedCount: number;
}

export class TaskStore {
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  /** Creates tasks that do not exist yet; existing ones (a replayed step) are left alone. */
  async putTasks(tasks: readonly TaskRecord[]): Promise<void> {
    await Promise.all(
      tasks.map((task) =>
        conditional(() =>
          this.ddb.send(
            new PutCommand({
              TableName: this.tableName,
              Item: taskItem(task),
              ConditionExpression: 'attribute_not_exists(PK)',
            }),
          ),
        ),
      ),
    );
  }

  async getTask(jobId: string, taskNo: number): Promise<TaskRecord | undefined> {
    const out = await this.ddb.send(
      new GetCommand({ TableName: this.tableName, Key: taskKey(jobId, taskNo), ConsistentRead: true }),
    );
    return out.Item ? taskFromItem(out.Item) : undefined;
  }

  /**
   * A task and its job in one strongly consistent read (a worker request that
   * checks both its token and that its job has not ended). Keys the table
   * leaves unprocessed are asked for again, a bounded number of times.
   */
  async getTaskWithJob(
    jobId: string,
    taskNo: number,
  ): Promise<{ task: TaskRecord | undefined; job: JobRecord | undefined }> {
    let keys: Record<string, unknown>[] = [{ ...taskKey(jobId, taskNo) }, { ...jobKey(jobId) }];
    const found: Record<string, unknown>[] = [];
    for (let tries = 1; keys.length > 0; tries++) {
      if (tries > BATCH_READ_TRIES)
        throw new Error(`task ${jobId}/${taskNo}: the table kept its keys unprocessed`);
      if (tries > 1) await new Promise((r) => setTimeout(r, 50 * 2 ** (tries - 2)));
      const out = await this.ddb.send(
        new BatchGetCommand({ RequestItems: { [this.tableName]: { Keys: keys, ConsistentRead: true } } }),
      );
      found.push(...(out.Responses?.[this.tableName] ?? []));
      keys = out.UnprocessedKeys?.[this.tableName]?.Keys ?? [];
    }
    const task = found.find((i) => !isJobItem(i));
    const job = found.find(isJobItem);
    return { task: task && taskFromItem(task), job: job && jobFromItem(job) };
  }

  /** Every task of a job in task order, the planner (task 0) first. */
  async listTasks(jobId: string): Promise<TaskRecord[]> {
    const items = await queryAll(
      this.ddb,
      {
        TableName: this.tableName,
        KeyConditionExpression: 'PK = :pk AND begins_with(SK, :task)',
        ExpressionAttributeValues: { ':pk': jobPartition(jobId), ':task': TASK_SORT_PREFIX },
        ConsistentRead: true,
      },
      `tasks of job ${jobId}`,
    );
    return items.map(taskFromItem);
  }

  /** Tasks not yet final, across every job (for the reconciler's sweep), at most `limit`. */
  async listActiveTasks(limit: number): Promise<TaskRecord[]> {
    const tasks: TaskRecord[] = [];
    for (let shard = 0; shard < ACTIVE_SHARDS && tasks.length < limit; shard++) {
      const items = await queryAll(
        this.ddb,
        indexPartition(this.tableName, activeShardPartition(shard)),
        'active tasks',
        {
          limit: limit - tasks.length,
        },
      );
      tasks.push(...items.map(taskFromItem));
    }
    return tasks;
  }

  /** The task's end has been counted by its job: the sweep no longer needs to watch it. */
  async leaveActiveIndex(jobId: string, taskNo: number): Promise<void> {
    const final = oneOf('#state', ':f', TERMINAL_TASK_STATES);
    await updateItem(this.ddb, this.tableName, {
      key: taskKey(jobId, taskNo),
      remove: [LISTING_INDEX_PARTITION_KEY, LISTING_INDEX_SORT_KEY],
      conditions: [`attribute_exists(${LISTING_INDEX_PARTITION_KEY})`, final.condition],
      names: { '#state': 'state' },
      values: final.values,
    });
  }

  /**
   * Claims a queued task for one attempt (`queued -> launching`) and stores the
   * hash of the token its worker will present. A duplicate delivery fails here.
   */
  async claimTask(
    jobId: string,
    taskNo: number,
    attempt: number,
    tokenHash: string,
    now: string,
  ): Promise<TaskRecord | undefined> {
    return this.moveTask(jobId, taskNo, attempt, ['queued'], 'launching', now, {
      tokenHash,
      launchedAt: now,
    });
  }

  /** Undoes a claim whose launch was refused; nothing started, so the attempt is unchanged. */
  async releaseClaim(
    jobId: string,
    taskNo: number,
    attempt: number,
    now: string,
  ): Promise<TaskRecord | undefined> {
    return this.moveTask(jobId, taskNo, attempt, ['launching'], 'queued', now, {}, [
      'tokenHash',
      'launchHandle',
      'budgetUsd',
      'budgetAttempt',
    ]);
  }

  /** Stores the launcher's handle. The worker may already be running, so either state is fine. */
  async setLaunchHandle(jobId: string, taskNo: number, attempt: number, handle: string): Promise<boolean> {
    const out = await updateItem(this.ddb, this.tableName, {
      key: taskKey(jobId, taskNo),
      set: ['launchHandle = :h'],
      conditions: LIVE_ATTEMPT,
      names: { '#state': 'state' },
      values: { ':h': handle, ':a': attempt, ...LIVE_STATES },
    });
    return out !== undefined;
  }

  /** The worker fetched its assignment: `launching -> running`. */
  async markRunning(
    jobId: string,
    taskNo: number,
    attempt: number,
    now: string,
  ): Promise<TaskRecord | undefined> {
    return this.moveTask(jobId, taskNo, attempt, ['launching'], 'running', now, { startedAt: now });
  }

  /**
   * A live worker's progress post, which is also its heartbeat: refused when
   * the attempt is no longer live, or when the last post of the same attempt
   * came less than `minIntervalMs` ago (a worker may not flood the table).
   */
  async recordHeartbeat(
    jobId: string,
    taskNo: number,
    attempt: number,
    nowMs: number,
    minIntervalMs: number,
  ): Promise<'ok' | 'too_soon' | 'not_live'> {
    const written = await updateItem(this.ddb, this.tableName, {
      key: taskKey(jobId, taskNo),
      set: ['heartbeatAt = :now', 'heartbeatAttempt = :a'],
      conditions: [
        'attribute_exists(PK)',
        ...LIVE_ATTEMPT,
        '(attribute_not_exists(heartbeatAt) OR heartbeatAttempt <> :a OR heartbeatAt <= :cutoff)',
      ],
      names: { '#state': 'state' },
      values: { ':now': nowMs, ':a': attempt, ...LIVE_STATES, ':cutoff': nowMs - minIntervalMs },
    });
    if (written) return 'ok';
    const task = await this.getTask(jobId, taskNo);
    return task && isLiveAttempt(task, attempt) ? 'too_soon' : 'not_live';
  }

  /**
   * Ends an attempt: to a final state, or back to `queued` with attempt+1 for a
   * retry (written at once, so a crash cannot leave a failed task unretried).
   */
  async endAttempt(
    jobId: string,
    taskNo: number,
    attempt: number,
    from: readonly TaskState[],
    next: { state: TaskState; attempt: number; timeoutSec?: number | undefined },
    record: AttemptRecord,
    result: TaskResultSummary | undefined,
    now: string,
  ): Promise<TaskRecord | undefined> {
    const set = [
      '#state = :to',
      'updatedAt = :now',
      'attempt = :next',
      'attempts = list_append(if_not_exists(attempts, :empty), :record)',
    ];
    const values: Record<string, unknown> = {
      ':to': next.state,
      ':now': now,
      ':a': attempt,
      ':next': next.attempt,
      ':record': [record],
      ':empty': [],
    };
    if (result) {
      set.push('#result = :result');
      values[':result'] = result;
    }
    if (next.timeoutSec !== undefined) {
      set.push('timeoutSec = :timeout');
      values[':timeout'] = next.timeoutSec;
    }
    const remove: string[] = [];
    if (next.state === 'queued') remove.push('tokenHash', 'launchHandle', 'startedAt');
    else set.push('finishedAt = :now');
    // A final task stays in the active index until its job has counted it (leaveActiveIndex), so the
    // sweep can finish the follow-up steps if the writer crashed or lost the response in between.
    for (const f of from) assertTaskTransition(f, record.state);
    if (next.state !== record.state) assertTaskTransition(record.state, next.state);
    const was = oneOf('#state', ':from', from);
    const out = await updateItem(this.ddb, this.tableName, {
      key: taskKey(jobId, taskNo),
      set,
      remove,
      conditions: ['attempt = :a', was.condition],
      names: { '#state': 'state', ...(result ? { '#result': 'result' } : {}) },
      values: { ...values, ...was.values },
      returnValues: 'ALL_NEW',
    });
    return out?.Attributes ? taskFromItem(out.Attributes) : undefined;
  }

  /** `pending -> queued`: the step it waited for is done. Undefined when it was not pending. */
  async releasePending(jobId: string, taskNo: number, now: string): Promise<TaskRecord | undefined> {
    return this.moveTask(jobId, taskNo, 1, ['pending'], 'queued', now, {});
  }

  private async moveTask(
    jobId: string,
    taskNo: number,
    attempt: number,
    from: readonly TaskState[],
    to: TaskState,
    now: string,
    sets: Record<string, unknown>,
    removes: readonly string[] = [],
  ): Promise<TaskRecord | undefined> {
    for (const f of from) assertTaskTransition(f, to);
    const setNames = Object.keys(sets);
    const was = oneOf('#state', ':from', from);
    const out = await updateItem(this.ddb, this.tableName, {
      key: taskKey(jobId, taskNo),
      set: ['#state = :to', 'updatedAt = :now', ...setNames.map((n) => `${n} = :${n}`)],
      remove: removes,
      conditions: ['attempt = :a', was.condition],
      names: { '#state': 'state' },
      values: {
        ':to': to,
        ':now': now,
        ':a': attempt,
        ...was.values,
        ...Object.fromEntries(setNames.map((n) => [`:${n}`, sets[n]])),
      },
      returnValues: 'ALL_NEW',
    });
    return out?.Attributes ? taskFromItem(out.Attributes) : undefined;
  }

  /**
   * Counts one upload request against its attempt's caps, in one conditional
   * update that holds only while the attempt is in one of `states`. The first
   * request of an attempt (`first`) starts the counters afresh; a later one
   * adds to them only if they stay within `caps`. `false` when the condition
   * failed: the attempt ended, another request counted first, or a cap was
   * reached; read the task to learn which.
   */
  async countUploads(
    jobId: string,
    taskNo: number,
    attempt: number,
    states: readonly TaskState[],
    first: boolean,
    grant: UploadGrant,
    caps: { files: number; bytes: number },
  ): Promise<boolean> {
    const files = grant.newPaths.length;
    if (files > caps.files || grant.bytes > caps.bytes) return false;
    const live = oneOf('#state', ':s', states);
    const values: Record<string, unknown> = {
      ':a': attempt,
      ':nf': files,
      ':nb': grant.bytes,
      ':rf': grant.refused,
      ':rc': grant.refusedCount,
      ...live.values,
    };
    if (files > 0) values[':ps'] = new Set(grant.newPaths);
    const conditions = ['attempt = :a', live.condition];
    let update: Pick<UpdateParts, 'set' | 'remove' | 'add'>;
    if (first) {
      update = {
        set: [
          'uploadAttempt = :a',
          'uploadFiles = :nf',
          'uploadBytes = :nb',
          'uploadRefused = :rf',
          'uploadRefusedCount = :rc',
          ...(files > 0 ? ['uploadPaths = :ps'] : []),
        ],
        remove: files > 0 ? [] : ['uploadPaths'],
      };
      conditions.push('(attribute_not_exists(uploadAttempt) OR uploadAttempt <> :a)');
    } else {
      update = {
        set: [
          'uploadFiles = uploadFiles + :nf',
          'uploadBytes = uploadBytes + :nb',
          'uploadRefused = list_append(uploadRefused, :rf)',
          'uploadRefusedCount = uploadRefusedCount + :rc',
        ],
        add: files > 0 ? ['uploadPaths :ps'] : [],
      };
      conditions.push('uploadAttempt = :a', 'uploadFiles <= :fmax', 'uploadBytes <= :bmax');
      values[':fmax'] = caps.files - files;
      values[':bmax'] = caps.bytes - grant.bytes;
    }
    const out = await updateItem(this.ddb, this.tableName, {
      key: taskKey(jobId, taskNo),
      ...update,
      conditions,
      names: { '#state': 'state' },
      values,
    });
    return out !== undefined;
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
}
