/**
 * API key items (`KEY#<sha256>`, `KEY`): only a key's hash and metadata are
 * stored, never the key. Every key is also listed under one listing-index
 * partition (`APIKEYS`), so keys can be listed without a scan.
 */
import { type DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import type { ApiKeyRecord } from '../core/model.ts';
import { indexPartition, queryAll, updateItem } from './dynamo-ops.ts';
import { apiKeyFromItem, apiKeyItem } from './table-items.ts';
import { API_KEYS_PARTITION, apiKeyKey } from './table-keys.ts';

export class ApiKeyStore {
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

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
