/**
 * Jobs, tasks and API keys in the single DynamoDB table. Every state change is
 * a conditional write that names the state it expects; a write whose condition
 * fails returns `undefined` (someone else moved first) instead of throwing.
 */
import { type DynamoDBDocumentClient, GetCommand, PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import type {
  ApiKeyRecord,
  AttemptRecord,
  JobRecord,
  RefusedFile,
  TaskRecord,
  TaskResultSummary,
} from '../core/model.ts';
import {
  assertJobTransition,
  assertTaskTransition,
  type JobStatus,
  type TaskState,
  TERMINAL_TASK_STATES,
} from '../core/task-states.ts';
import { conditional, indexPartition, oneOf, queryAll, type UpdateParts, updateItem } from './dynamo-ops.ts';
import { apiKeyFromItem, apiKeyItem, jobFromItem, jobItem, taskFromItem, taskItem } from './table-items.ts';
import {
  ACTIVE_SHARDS,
  API_KEYS_PARTITION,
  activeShardPartition,
  apiKeyKey,
  isTenantListingKey,
  jobKey,
  jobPartition,
  TASK_SORT_PREFIX,
  taskKey,
  tenantPartition,
} from './table-keys.ts';
import { LISTING_INDEX_PARTITION_KEY, LISTING_INDEX_SORT_KEY } from './table-schema.ts';

/** The attempt `:a` is the task's current one, and it is launching or running. */
const LIVE_ATTEMPT = ['attempt = :a', '#state IN (:launching, :running)'];
const LIVE_STATES = { ':launching': 'launching', ':running': 'running' };

/** What one upload request adds to its attempt's counters (see JobStore.countUploads). */
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

export interface JobPage {
  jobs: JobRecord[];
  nextCursor?: string | undefined;
}

export class InvalidCursorError extends Error {
  constructor() {
    super('cursor is not one this API returned');
    this.name = 'InvalidCursorError';
  }
}

export class JobStore {
  constructor(
    readonly ddb: DynamoDBDocumentClient,
    readonly tableName: string,
  ) {}

  /** Creates the job unless its id exists; returns false when it already did (an idempotent retry). */
  async createJob(job: JobRecord): Promise<boolean> {
    const created = await conditional(() =>
      this.ddb.send(
        new PutCommand({
          TableName: this.tableName,
          Item: jobItem(job),
          ConditionExpression: 'attribute_not_exists(PK)',
        }),
      ),
    );
    return created !== undefined;
  }

  async getJob(jobId: string): Promise<JobRecord | undefined> {
    const out = await this.ddb.send(
      new GetCommand({ TableName: this.tableName, Key: jobKey(jobId), ConsistentRead: true }),
    );
    return out.Item ? jobFromItem(out.Item) : undefined;
  }

  /** A tenant's root jobs, newest first. */
  async listJobs(tenant: string, limit: number, cursor?: string): Promise<JobPage> {
    let startKey: Record<string, unknown> | undefined;
    if (cursor) {
      try {
        startKey = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as Record<string, unknown>;
      } catch {
        throw new InvalidCursorError();
      }
      // Only a key this query could have returned may steer it: another tenant's, or a forged one, is refused.
      if (!isTenantListingKey(startKey, tenant)) throw new InvalidCursorError();
    }
    const out = await this.ddb.send(
      new QueryCommand({
        ...indexPartition(this.tableName, tenantPartition(tenant)),
        ScanIndexForward: false,
        Limit: limit,
        ...(startKey ? { ExclusiveStartKey: startKey } : {}),
      }),
    );
    return {
      jobs: (out.Items ?? []).map(jobFromItem),
      nextCursor: out.LastEvaluatedKey
        ? Buffer.from(JSON.stringify(out.LastEvaluatedKey), 'utf8').toString('base64url')
        : undefined,
    };
  }

  /** Moves a job between statuses; `undefined` if it was not in `from`. */
  async transitionJob(
    jobId: string,
    from: JobStatus,
    to: JobStatus,
    now: string,
    extra: { totalTasks?: number; error?: string } = {},
  ): Promise<JobRecord | undefined> {
    assertJobTransition(from, to);
    const set = ['#status = :to', 'updatedAt = :now'];
    const values: Record<string, unknown> = { ':to': to, ':from': from, ':now': now };
    if (extra.totalTasks !== undefined) {
      set.push('totalTasks = :total');
      values[':total'] = extra.totalTasks;
    }
    if (extra.error !== undefined) {
      set.push('#error = :error');
      values[':error'] = extra.error;
    }
    if (['completed', 'partial', 'failed', 'cancelled'].includes(to)) {
      set.push('finishedAt = :now');
    }
    const out = await updateItem(this.ddb, this.tableName, {
      key: jobKey(jobId),
      set,
      conditions: ['attribute_exists(PK)', '#status = :from'],
      names: { '#status': 'status', ...(extra.error !== undefined ? { '#error': 'error' } : {}) },
      values,
      returnValues: 'ALL_NEW',
    });
    return out?.Attributes ? jobFromItem(out.Attributes) : undefined;
  }

  /**
   * Records that a work task reached its final state. Adding to a set is
   * idempotent, and the condition makes exactly one caller see `firstTime`:
   * the one whose write completed the set is the one that enqueues aggregation.
   */
  async markTaskFinished(
    jobId: string,
    taskNo: number,
    now: string,
  ): Promise<{ job: JobRecord; firstTime: boolean }> {
    const out = await updateItem(this.ddb, this.tableName, {
      key: jobKey(jobId),
      set: ['updatedAt = :now'],
      add: ['finishedTasks :n'],
      conditions: ['attribute_exists(PK)', 'NOT contains(finishedTasks, :no)'],
      values: { ':n': new Set([taskNo]), ':no': taskNo, ':now': now },
      returnValues: 'ALL_NEW',
    });
    if (out?.Attributes) return { job: jobFromItem(out.Attributes), firstTime: true };
    const job = await this.getJob(jobId);
    if (!job) throw new Error(`job ${jobId} vanished while finishing task ${taskNo}`);
    return { job, firstTime: false };
  }

  /**
   * What an ended attempt changes on its job item, in one conditional update:
   * its running slot back, its spend settled (a root job's own attempt), and
   * the task added to the finished set. The job after it, or `undefined` when
   * the condition failed (the counter was already repaired to zero, or the
   * task already counted): then do the parts one by one.
   */
  async closeAttemptOnJob(
    jobId: string,
    now: string,
    parts: { release: boolean; spend?: { delta: number; actual: number }; finished?: number },
  ): Promise<JobRecord | undefined> {
    const set = ['updatedAt = :now'];
    const conditions = ['attribute_exists(PK)'];
    const names: Record<string, string> = {};
    const values: Record<string, unknown> = { ':now': now };
    if (parts.release) {
      set.push('#r = #r - :one');
      conditions.push('#r > :zero');
      names['#r'] = 'runningTasks';
      Object.assign(values, { ':one': 1, ':zero': 0 });
    }
    if (parts.spend) {
      set.push('#b.committedUsd = #b.committedUsd + :delta', '#b.spentUsd = #b.spentUsd + :actual');
      names['#b'] = 'budget';
      Object.assign(values, { ':delta': parts.spend.delta, ':actual': parts.spend.actual });
    }
    const finished = parts.finished;
    if (finished !== undefined) {
      conditions.push('NOT contains(finishedTasks, :no)');
      Object.assign(values, { ':n': new Set([finished]), ':no': finished });
    }
    const out = await updateItem(this.ddb, this.tableName, {
      key: jobKey(jobId),
      set,
      add: finished !== undefined ? ['finishedTasks :n'] : [],
      conditions,
      names,
      values,
      returnValues: 'ALL_NEW',
    });
    return out?.Attributes ? jobFromItem(out.Attributes) : undefined;
  }

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
    const live = task?.attempt === attempt && (task.state === 'launching' || task.state === 'running');
    return live ? 'too_soon' : 'not_live';
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
   * The source step fetched the repository: records the base commit and its
   * bundle, once. A replay with the same commit is fine; another commit is refused.
   */
  async setSourceBase(jobId: string, baseCommit: string, bundles: string[], now: string): Promise<boolean> {
    const out = await updateItem(this.ddb, this.tableName, {
      key: jobKey(jobId),
      set: ['#s.baseCommit = :base', '#s.bundles = :bundles', 'updatedAt = :now'],
      conditions: ['attribute_exists(#s)', '(attribute_not_exists(#s.baseCommit) OR #s.baseCommit = :base)'],
      names: { '#s': 'source' },
      values: { ':base': baseCommit, ':bundles': bundles, ':now': now },
    });
    return out !== undefined;
  }

  /** `pending -> queued`: the step it waited for is done. Undefined when it was not pending. */
  async releasePending(jobId: string, taskNo: number, now: string): Promise<TaskRecord | undefined> {
    return this.moveTask(jobId, taskNo, 1, ['pending'], 'queued', now, {});
  }

  /** Stores a key's hash; keys are also indexed under one GSI1 partition so they can be listed. */
  async putApiKey(key: ApiKeyRecord): Promise<void> {
    await this.ddb.send(
      new PutCommand({
        TableName: this.tableName,
        Item: apiKeyItem(key),
        ConditionExpression: 'attribute_not_exists(PK)',
      }),
    );
  }

  async getApiKey(sha256: string): Promise<ApiKeyRecord | undefined> {
    const out = await this.ddb.send(new GetCommand({ TableName: this.tableName, Key: apiKeyKey(sha256) }));
    return out.Item ? apiKeyFromItem(out.Item) : undefined;
  }

  /** Every API key (hashes and metadata only), oldest first. */
  async listApiKeys(): Promise<ApiKeyRecord[]> {
    return (await queryAll(this.ddb, indexPartition(this.tableName, API_KEYS_PARTITION), 'API keys')).map(
      apiKeyFromItem,
    );
  }

  /** Marks a key revoked; false when it does not exist or was already revoked. */
  async revokeApiKey(sha256: string, now: string): Promise<boolean> {
    const out = await updateItem(this.ddb, this.tableName, {
      key: apiKeyKey(sha256),
      set: ['revokedAt = :now'],
      conditions: ['attribute_exists(PK)', 'attribute_not_exists(revokedAt)'],
      values: { ':now': now },
    });
    return out !== undefined;
  }
}
