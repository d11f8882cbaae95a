/**
 * The single table's key schema, shared by the CDK state construct and by
 * local mode, which creates the same table in the emulator.
 *
 * Items: job `PK=JOB#<id> SK=META`, task `PK=JOB#<id> SK=TASK#<nnnn>`,
 * API key `PK=KEY#<sha256> SK=KEY`, the running counter, events and live
 * logs. GSI1 holds four partitions: a tenant's root jobs
 * (`GSI1PK=TENANT#<tenant> GSI1SK=<createdAt>#<jobId>`), a root's child jobs
 * (`TREE#<root>`), unfinished tasks (`ACTIVE#<shard>`) and API keys
 * (`APIKEYS`). Every kind and key: docs/architecture.md, "Data model".
 */
import type { CreateTableCommandInput } from '@aws-sdk/client-dynamodb';

export const PARTITION_KEY = 'PK';
export const SORT_KEY = 'SK';
export const TENANT_INDEX = 'GSI1';
export const TENANT_INDEX_PARTITION_KEY = 'GSI1PK';
export const TENANT_INDEX_SORT_KEY = 'GSI1SK';
/** The table's TTL attribute (epoch seconds), set on events and live log pieces (event-store.ts). */
export const TTL_ATTRIBUTE = 'expiresAt';

export function tableDefinition(tableName: string): CreateTableCommandInput {
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: [
      { AttributeName: PARTITION_KEY, AttributeType: 'S' },
      { AttributeName: SORT_KEY, AttributeType: 'S' },
      { AttributeName: TENANT_INDEX_PARTITION_KEY, AttributeType: 'S' },
      { AttributeName: TENANT_INDEX_SORT_KEY, AttributeType: 'S' },
    ],
    KeySchema: [
      { AttributeName: PARTITION_KEY, KeyType: 'HASH' },
      { AttributeName: SORT_KEY, KeyType: 'RANGE' },
    ],
    GlobalSecondaryIndexes: [
      {
        IndexName: TENANT_INDEX,
        KeySchema: [
          { AttributeName: TENANT_INDEX_PARTITION_KEY, KeyType: 'HASH' },
          { AttributeName: TENANT_INDEX_SORT_KEY, KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'ALL' },
      },
    ],
  };
}
