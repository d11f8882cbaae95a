/**
 * The single table's key schema, shared by the CDK state construct and by
 * local mode, which creates the same table in the emulator. The keys every
 * item and listing uses are built in table-keys.ts; every kind and key:
 * docs/architecture.md, "Data model".
 */
import type { CreateTableCommandInput } from '@aws-sdk/client-dynamodb';

export const PARTITION_KEY = 'PK';
export const SORT_KEY = 'SK';
/**
 * GSI1, the listing index: one sparse index shared by four kinds of
 * partition, each a listing (table-keys.ts builds them): a tenant's root jobs
 * (`TENANT#<tenant>`), a root's descendant jobs (`TREE#<rootJobId>`), tasks
 * not yet counted by their job (`ACTIVE#<shard>`) and API keys (`APIKEYS`).
 */
export const LISTING_INDEX = 'GSI1';
export const LISTING_INDEX_PARTITION_KEY = 'GSI1PK';
export const LISTING_INDEX_SORT_KEY = 'GSI1SK';
/** The table's TTL attribute (epoch seconds), set on events and live log pieces (event-store.ts). */
export const TTL_ATTRIBUTE = 'expiresAt';

export function tableDefinition(tableName: string): CreateTableCommandInput {
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: [
      { AttributeName: PARTITION_KEY, AttributeType: 'S' },
      { AttributeName: SORT_KEY, AttributeType: 'S' },
      { AttributeName: LISTING_INDEX_PARTITION_KEY, AttributeType: 'S' },
      { AttributeName: LISTING_INDEX_SORT_KEY, AttributeType: 'S' },
    ],
    KeySchema: [
      { AttributeName: PARTITION_KEY, KeyType: 'HASH' },
      { AttributeName: SORT_KEY, KeyType: 'RANGE' },
    ],
    GlobalSecondaryIndexes: [
      {
        IndexName: LISTING_INDEX,
        KeySchema: [
          { AttributeName: LISTING_INDEX_PARTITION_KEY, KeyType: 'HASH' },
          { AttributeName: LISTING_INDEX_SORT_KEY, KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'ALL' },
      },
    ],
  };
}
