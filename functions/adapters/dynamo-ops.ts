/**
 * The few ways the stores talk to the single table: a conditional write that
 * answers `undefined` instead of throwing when its condition fails (someone
 * else moved first), an UpdateItem built from its parts, a bounded query of
 * every page, and the query of one listing-index partition.
 */
import {
  type DynamoDBDocumentClient,
  QueryCommand,
  type QueryCommandInput,
  UpdateCommand,
  type UpdateCommandInput,
  type UpdateCommandOutput,
} from '@aws-sdk/lib-dynamodb';
import { isConditionalCheckFailed } from './aws-errors.ts';
import type { ItemKey } from './table-keys.ts';
import { LISTING_INDEX, LISTING_INDEX_PARTITION_KEY } from './table-schema.ts';

/** Pages a query may read before `queryAll` gives up rather than work on a partial list. */
export const MAX_PAGES = 50;

/** Runs a conditional write; `undefined` when its condition did not hold. */
export async function conditional<T>(write: () => Promise<T>): Promise<T | undefined> {
  try {
    return await write();
  } catch (err) {
    if (isConditionalCheckFailed(err)) return undefined;
    throw err;
  }
}

/** What an update does to an item and when: its actions, conditions, names and values. */
export interface UpdateActions {
  set?: readonly string[];
  remove?: readonly string[];
  add?: readonly string[];
  conditions?: readonly string[];
  names?: Record<string, string>;
  values?: Record<string, unknown>;
}

/** One UpdateItem in parts; `updateInput` joins each list (actions with `, `, conditions with ` AND `). */
export interface UpdateParts extends UpdateActions {
  key: ItemKey;
  returnValues?: 'ALL_NEW' | 'ALL_OLD';
}

/**
 * Several changes to one item as one update, in order (a write that does
 * what others also do alone: each part is defined once, by its owner).
 */
export function combine(...parts: (UpdateActions | false | undefined)[]): UpdateActions {
  const all = parts.filter((p): p is UpdateActions => Boolean(p));
  const list = (pick: (p: UpdateActions) => readonly string[] | undefined) =>
    all.flatMap((p) => pick(p) ?? []);
  return {
    set: list((p) => p.set),
    remove: list((p) => p.remove),
    add: list((p) => p.add),
    conditions: list((p) => p.conditions),
    names: Object.assign({}, ...all.map((p) => p.names)),
    values: Object.assign({}, ...all.map((p) => p.values)),
  };
}

/** The UpdateItem request of `parts`, empty parts left out. */
export function updateInput(tableName: string, parts: UpdateParts): UpdateCommandInput {
  const clause = (verb: string, actions: readonly string[] | undefined) =>
    actions?.length ? [`${verb} ${actions.join(', ')}`] : [];
  const nonEmpty = <T>(map: Record<string, T> | undefined) =>
    map && Object.keys(map).length > 0 ? map : undefined;
  const names = nonEmpty(parts.names);
  const values = nonEmpty(parts.values);
  return {
    TableName: tableName,
    Key: parts.key,
    UpdateExpression: [
      ...clause('SET', parts.set),
      ...clause('REMOVE', parts.remove),
      ...clause('ADD', parts.add),
    ].join(' '),
    ...(parts.conditions?.length ? { ConditionExpression: parts.conditions.join(' AND ') } : {}),
    ...(names ? { ExpressionAttributeNames: names } : {}),
    ...(values ? { ExpressionAttributeValues: values } : {}),
    ...(parts.returnValues ? { ReturnValues: parts.returnValues } : {}),
  };
}

/** Sends the update of `parts`; `undefined` when its condition did not hold. */
export function updateItem(
  ddb: DynamoDBDocumentClient,
  tableName: string,
  parts: UpdateParts,
): Promise<UpdateCommandOutput | undefined> {
  return conditional(() => ddb.send(new UpdateCommand(updateInput(tableName, parts))));
}

/**
 * `<name> IN (<placeholder>0, <placeholder>1, ...)` and its values: a
 * condition that the attribute holds one of `allowed`.
 */
export function oneOf(
  name: string,
  placeholder: string,
  allowed: Iterable<string>,
): { condition: string; values: Record<string, string> } {
  const values = Object.fromEntries([...allowed].map((v, i) => [`${placeholder}${i}`, v]));
  return { condition: `${name} IN (${Object.keys(values).join(', ')})`, values };
}

/**
 * Every item of a query, page by page, bounded to `maxPages` pages (and to
 * `limit` items when given). Throws when the bound is hit before the end, so
 * a caller never silently works on a partial list it believes complete.
 */
export async function queryAll(
  ddb: DynamoDBDocumentClient,
  input: QueryCommandInput,
  what: string,
  options: { limit?: number; maxPages?: number } = {},
): Promise<Record<string, unknown>[]> {
  const items: Record<string, unknown>[] = [];
  const limit = options.limit ?? Number.POSITIVE_INFINITY;
  let startKey: Record<string, unknown> | undefined;
  for (let page = 0; page < (options.maxPages ?? MAX_PAGES); page++) {
    const out = await ddb.send(
      new QueryCommand({
        ...input,
        ...(Number.isFinite(limit) ? { Limit: Math.min(100, limit - items.length) } : {}),
        ...(startKey ? { ExclusiveStartKey: startKey } : {}),
      }),
    );
    items.push(...(out.Items ?? []));
    startKey = out.LastEvaluatedKey;
    if (!startKey || items.length >= limit) return items;
  }
  throw new Error(`${what}: more than ${options.maxPages ?? MAX_PAGES} pages`);
}

/** The query of one listing-index partition (a tenant's jobs, a job tree, active tasks, API keys). */
export function indexPartition(tableName: string, partition: string): QueryCommandInput {
  return {
    TableName: tableName,
    IndexName: LISTING_INDEX,
    KeyConditionExpression: '#pk = :pk',
    ExpressionAttributeNames: { '#pk': LISTING_INDEX_PARTITION_KEY },
    ExpressionAttributeValues: { ':pk': partition },
  };
}
