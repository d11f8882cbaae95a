/**
 * The stores of the single table, one per kind of item (and the two counters
 * the job item carries), each on the given client: what Deps holds, built in
 * one place by the Lambda runtime, local mode and the tools.
 */
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { ApiKeyStore } from './api-key-store.ts';
import { EventStore } from './event-store.ts';
import { JobStore } from './job-store.ts';
import { RootBudget } from './root-budget.ts';
import { RunSlots } from './run-slots.ts';
import { TaskStore } from './task-store.ts';

export function tableStores(ddb: DynamoDBDocumentClient, tableName: string) {
  return {
    jobs: new JobStore(ddb, tableName),
    tasks: new TaskStore(ddb, tableName),
    keys: new ApiKeyStore(ddb, tableName),
    budget: new RootBudget(ddb, tableName),
    slots: new RunSlots(ddb, tableName),
    events: new EventStore(ddb, tableName),
  };
}

export type TableStores = ReturnType<typeof tableStores>;
