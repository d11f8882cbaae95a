/**
 * Job items (`JOB#<jobId>`, `META`): creation, status, the set of finished
 * tasks, the source's base commit, and the two listings of jobs (a tenant's
 * roots, a root's descendants). The root's budget map is RootBudget's and the
 * running counter RunSlots'; closeAttemptOnJob writes their parts an ended
 * attempt changes, with the finished set, in one update. Every state change is a conditional
 * write that names the state it expects; a write whose condition fails
 * returns `undefined` (someone else moved first) instead of throwing.
 */
import { type DynamoDBDocumentClient, GetCommand, PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import type { JobRecord } from '../core/model.ts';
import { assertJobTransition, type JobStatus } from '../core/task-states.ts';
import {
  combine,
  conditional,
  indexPartition,
  queryAll,
  type UpdateActions,
  updateItem,
} from './dynamo-ops.ts';
import { spendSettlement } from './root-budget.ts';
import { SLOT_RETURN } from './run-slots.ts';
import { jobFromItem, jobItem } from './table-items.ts';
import { isTenantListingKey, jobKey, tenantPartition, treePartition } from './table-keys.ts';

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

/** The job exists; stamps the change. */
const touched = (now: string): UpdateActions => ({
  set: ['updatedAt = :now'],
  conditions: ['attribute_exists(PK)'],
  values: { ':now': now },
});

/** Adds a work task to the finished set, unless it is in it already (a set: replays are harmless). */
const finishing = (taskNo: number): UpdateActions => ({
  add: ['finishedTasks :n'],
  conditions: ['NOT contains(finishedTasks, :no)'],
  values: { ':n': new Set([taskNo]), ':no': taskNo },
});

export class JobStore {
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    private readonly tableName: string,
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

  /** Every descendant job of a root (not the root itself), shallowest first. */
  async listDescendants(rootJobId: string): Promise<JobRecord[]> {
    const items = await queryAll(
      this.ddb,
      indexPartition(this.tableName, treePartition(rootJobId)),
      `job tree ${rootJobId}`,
    );
    return items.map(jobFromItem);
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
      ...combine(touched(now), finishing(taskNo)),
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
    const finished = parts.finished;
    const out = await updateItem(this.ddb, this.tableName, {
      key: jobKey(jobId),
      ...combine(
        touched(now),
        parts.release && SLOT_RETURN,
        parts.spend && spendSettlement(parts.spend.delta, parts.spend.actual),
        finished !== undefined && finishing(finished),
      ),
      returnValues: 'ALL_NEW',
    });
    return out?.Attributes ? jobFromItem(out.Attributes) : undefined;
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
}
