/**
 * Records to items and back: an item is its record plus its key (table-keys.ts),
 * its place in the listing index and an `entity` tag, none of which the
 * record carries. A job's `finishedTasks` is a number set on the item, so
 * adding to it is idempotent; the record holds it as a sorted array.
 */
import type { ApiKeyRecord, JobRecord, TaskRecord } from '../core/model.ts';
import { activeListing, apiKeyKey, apiKeyListing, jobKey, jobListing, taskKey } from './table-keys.ts';

/** A new job's item; `finishedTasks` is left out until a task adds to it. */
export function jobItem(job: JobRecord): Record<string, unknown> {
  const { finishedTasks: _f, ...rest } = job;
  return { ...jobKey(job.jobId), entity: 'job', ...rest, ...jobListing(job) };
}

/** A new task's item, listed as active until its job has counted its end. */
export function taskItem(task: TaskRecord): Record<string, unknown> {
  return { ...taskKey(task.jobId, task.taskNo), entity: 'task', ...activeListing(task), ...task };
}

export function apiKeyItem(key: ApiKeyRecord): Record<string, unknown> {
  return { ...apiKeyKey(key.sha256), entity: 'apikey', ...apiKeyListing(key), ...key };
}

/** The record an item holds: the item without its keys and its tag. */
function recordOf(item: Record<string, unknown>): Record<string, unknown> {
  const { PK: _pk, SK: _sk, GSI1PK: _g1, GSI1SK: _g2, entity: _e, ...rest } = item;
  return rest;
}

export function jobFromItem(item: Record<string, unknown>): JobRecord {
  const { finishedTasks, ...rest } = recordOf(item);
  const finished = finishedTasks instanceof Set ? [...finishedTasks] : [];
  return { ...(rest as unknown as JobRecord), finishedTasks: (finished as number[]).sort((a, b) => a - b) };
}

export function taskFromItem(item: Record<string, unknown>): TaskRecord {
  return recordOf(item) as unknown as TaskRecord;
}

export function apiKeyFromItem(item: Record<string, unknown>): ApiKeyRecord {
  return recordOf(item) as unknown as ApiKeyRecord;
}
