/**
 * Every key of the single table, in one place: the items' primary keys and
 * the partitions of the listing index (GSI1). No other adapter spells a
 * `JOB#`-style prefix (test/unit/table-keys.test.ts holds that).
 *
 * | item        | PK                               | SK            | written by  |
 * | ----------- | -------------------------------- | ------------- | ----------- |
 * | job         | `JOB#<jobId>`                    | `META`        | JobStore *  |
 * | task        | `JOB#<jobId>`                    | `TASK#<nnnn>` | TaskStore   |
 * | API key     | `KEY#<sha256>`                   | `KEY`         | ApiKeyStore |
 * | run counter | `COUNTER#running`                | `COUNTER`     | RunSlots    |
 * | event       | `EVENTS#<rootJobId>`             | event id      | EventStore  |
 * | log piece   | `LOG#<jobId>#<taskNo>#<attempt>` | offset        | EventStore  |
 *
 * (*) The job item's `budget` map is RootBudget's and its `runningTasks`
 * counter RunSlots'.
 *
 * Listing index partitions (`GSI1PK`, `GSI1SK`): `TENANT#<tenant>` (root
 * jobs), `TREE#<rootJobId>` (descendant jobs), `ACTIVE#<shard>` (tasks not yet
 * counted by their job) and `APIKEYS`. docs/architecture.md, "Data model".
 */
import type { ApiKeyRecord, JobRecord, TaskRecord } from '../core/model.ts';
import {
  LISTING_INDEX_PARTITION_KEY,
  LISTING_INDEX_SORT_KEY,
  PARTITION_KEY,
  SORT_KEY,
} from './table-schema.ts';

/** An item's primary key. */
export interface ItemKey {
  [PARTITION_KEY]: string;
  [SORT_KEY]: string;
}

/** An item's place in the listing index. */
export interface ListingKey {
  [LISTING_INDEX_PARTITION_KEY]: string;
  [LISTING_INDEX_SORT_KEY]: string;
}

const JOB_PREFIX = 'JOB#';
const JOB_SORT_KEY = 'META';
/** The sort-key prefix every task of a job shares, so one query reads them all (without the job). */
export const TASK_SORT_PREFIX = 'TASK#';

/** The partition of a job and its tasks. */
export const jobPartition = (jobId: string) => `${JOB_PREFIX}${jobId}`;
export const jobKey = (jobId: string): ItemKey => ({
  [PARTITION_KEY]: jobPartition(jobId),
  [SORT_KEY]: JOB_SORT_KEY,
});
/** Task numbers padded to 4 digits, so the sort key orders them as numbers (`TASK#0000`, the planner, first). */
export const taskKey = (jobId: string, taskNo: number): ItemKey => ({
  [PARTITION_KEY]: jobPartition(jobId),
  [SORT_KEY]: `${TASK_SORT_PREFIX}${String(taskNo).padStart(4, '0')}`,
});
/** Whether an item read from a job's partition is the job itself (the rest are its tasks). */
export const isJobItem = (item: Record<string, unknown>): boolean => item[SORT_KEY] === JOB_SORT_KEY;
export const apiKeyKey = (sha256: string): ItemKey => ({
  [PARTITION_KEY]: `KEY#${sha256}`,
  [SORT_KEY]: 'KEY',
});
/** The deployment's count of running workers (RunSlots). */
export const RUNNING_COUNTER_KEY: ItemKey = { [PARTITION_KEY]: 'COUNTER#running', [SORT_KEY]: 'COUNTER' };

/** A job tree's events, sorted by event id. */
export const eventsPartition = (rootJobId: string) => `EVENTS#${rootJobId}`;
/** One attempt's live log, in pieces sorted by `logOffsetKey`. */
export const logPartition = (jobId: string, taskNo: number, attempt: number) =>
  `LOG#${jobId}#${taskNo}#${attempt}`;
/** Offsets padded so the sort key orders them as numbers. */
export const logOffsetKey = (offset: number) => String(offset).padStart(12, '0');

/** A tenant's root jobs, oldest first by sort key (GET /jobs reads it backwards). */
export const tenantPartition = (tenant: string) => `TENANT#${tenant}`;
/** A root's descendant jobs, shallowest first. */
export const treePartition = (rootJobId: string) => `TREE#${rootJobId}`;
/**
 * Tasks that are not final sit under `ACTIVE#<shard>` (sparse: the
 * attributes are removed when the task ends), so the reconciler's sweep finds
 * them with a few queries instead of a scan. Shards spread the writes.
 */
export const ACTIVE_SHARDS = 4;
export const activeShardPartition = (shard: number) => `ACTIVE#${shard}`;
export const activePartition = (jobId: string) =>
  activeShardPartition(Number.parseInt(jobId.slice(-4), 16) % ACTIVE_SHARDS || 0);
/** Every API key, so keys can be listed without a scan. */
export const API_KEYS_PARTITION = 'APIKEYS';

/** Where a job is listed: a root under its tenant, a child under its root's tree (never per tenant). */
export function jobListing(
  job: Pick<JobRecord, 'jobId' | 'tenant' | 'depth' | 'rootJobId' | 'path' | 'createdAt'>,
): ListingKey {
  return job.depth === 0
    ? {
        [LISTING_INDEX_PARTITION_KEY]: tenantPartition(job.tenant),
        [LISTING_INDEX_SORT_KEY]: `${job.createdAt}#${job.jobId}`,
      }
    : {
        [LISTING_INDEX_PARTITION_KEY]: treePartition(job.rootJobId),
        [LISTING_INDEX_SORT_KEY]: `${String(job.depth).padStart(2, '0')}#${job.path}#${job.jobId}`,
      };
}

/** Where a task is listed until its job has counted its end. */
export const activeListing = (task: Pick<TaskRecord, 'jobId' | 'taskNo' | 'createdAt'>): ListingKey => ({
  [LISTING_INDEX_PARTITION_KEY]: activePartition(task.jobId),
  [LISTING_INDEX_SORT_KEY]: `${task.createdAt}#${task.jobId}#${task.taskNo}`,
});

export const apiKeyListing = (key: Pick<ApiKeyRecord, 'createdAt' | 'keyId'>): ListingKey => ({
  [LISTING_INDEX_PARTITION_KEY]: API_KEYS_PARTITION,
  [LISTING_INDEX_SORT_KEY]: `${key.createdAt}#${key.keyId}`,
});

/**
 * True when `key` is one the listing of `tenant`'s jobs could have returned
 * as its last key: a job item's primary key and its listing key, in that
 * tenant's partition, nothing else.
 */
export function isTenantListingKey(key: unknown, tenant: string): boolean {
  if (!key || typeof key !== 'object' || Array.isArray(key)) return false;
  const k = key as Record<string, unknown>;
  const names = Object.keys(k).sort();
  const expected = [PARTITION_KEY, SORT_KEY, LISTING_INDEX_PARTITION_KEY, LISTING_INDEX_SORT_KEY].sort();
  return (
    names.length === expected.length &&
    names.every((n, i) => n === expected[i] && typeof k[n] === 'string') &&
    k[LISTING_INDEX_PARTITION_KEY] === tenantPartition(tenant) &&
    (k[PARTITION_KEY] as string).startsWith(JOB_PREFIX) &&
    k[SORT_KEY] === JOB_SORT_KEY
  );
}
