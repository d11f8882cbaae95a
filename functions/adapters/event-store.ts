/**
 * Live progress in the single table: events of a job tree under
 * `PK=EVENTS#<rootJobId>`, sorted by the time the API stored them, and each
 * attempt's live log under `PK=LOG#<jobId>#<taskNo>#<attempt>` in pieces
 * keyed by their offset. Both expire through the table's TTL attribute.
 */
import {
  BatchWriteCommand,
  type DynamoDBDocumentClient,
  PutCommand,
  QueryCommand,
} from '@aws-sdk/lib-dynamodb';
import { EVENT_RETENTION_SEC, type EventKind, eventId } from '../core/progress.ts';
import { conditional } from './dynamo-ops.ts';
import { eventsPartition, logOffsetKey, logPartition } from './table-keys.ts';
import { PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE } from './table-schema.ts';

/** BatchWriteItem takes at most 25 items; unprocessed ones are retried this many times. */
const BATCH_TRIES = 4;

export interface StoredEvent {
  id: string;
  at: string;
  jobId: string;
  jobPath: string;
  workerId: string;
  taskNo: number;
  attempt: number;
  kind: EventKind;
  data: Record<string, unknown>;
}

export interface LogPiece {
  offset: number;
  text: string;
}

export class EventStore {
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  /** Stores one post's events, in order, stamped `nowMs`. */
  async putEvents(
    rootJobId: string,
    scope: { jobId: string; jobPath: string; workerId: string; taskNo: number; attempt: number },
    events: readonly { kind: EventKind; data: Record<string, unknown> }[],
    nowMs: number,
  ): Promise<void> {
    if (events.length === 0) return;
    const expiresAt = Math.floor(nowMs / 1000) + EVENT_RETENTION_SEC;
    const at = new Date(nowMs).toISOString();
    let requests = events.map((e, i) => ({
      PutRequest: {
        Item: {
          [PARTITION_KEY]: eventsPartition(rootJobId),
          [SORT_KEY]: eventId(nowMs, scope.jobId, scope.taskNo, scope.attempt, i),
          entity: 'event',
          at,
          ...scope,
          kind: e.kind,
          data: e.data,
          [TTL_ATTRIBUTE]: expiresAt,
        },
      },
    }));
    for (let attempt = 1; requests.length > 0; attempt++) {
      if (attempt > BATCH_TRIES)
        throw new Error(`${requests.length} event(s) not stored after ${BATCH_TRIES} tries`);
      const out = await this.ddb.send(
        new BatchWriteCommand({ RequestItems: { [this.tableName]: requests.slice(0, 25) } }),
      );
      const unprocessed = (out.UnprocessedItems?.[this.tableName] ?? []) as typeof requests;
      requests = [...unprocessed, ...requests.slice(25)];
      if (unprocessed.length > 0) await new Promise((r) => setTimeout(r, 50 * 2 ** attempt));
    }
  }

  /** Events of a tree after `after` (exclusive), oldest first, stored at or before `untilMs`. */
  async eventsAfter(
    rootJobId: string,
    after: string | undefined,
    untilMs: number,
    limit: number,
  ): Promise<StoredEvent[]> {
    const until = `${String(untilMs + 1).padStart(13, '0')}`;
    if (after !== undefined && after >= until) return [];
    const out = await this.ddb.send(
      new QueryCommand({
        TableName: this.tableName,
        KeyConditionExpression: after
          ? '#pk = :pk AND #sk BETWEEN :after AND :until'
          : '#pk = :pk AND #sk < :until',
        ExpressionAttributeNames: { '#pk': PARTITION_KEY, '#sk': SORT_KEY },
        ExpressionAttributeValues: {
          ':pk': eventsPartition(rootJobId),
          ':until': until,
          ...(after ? { ':after': after } : {}),
        },
        ConsistentRead: true,
        Limit: limit + 1,
      }),
    );
    return (out.Items ?? [])
      .filter((item) => item[SORT_KEY] !== after && (item[SORT_KEY] as string) < until)
      .slice(0, limit)
      .map((item) => ({
        id: item[SORT_KEY] as string,
        at: item.at as string,
        jobId: item.jobId as string,
        jobPath: item.jobPath as string,
        workerId: item.workerId as string,
        taskNo: item.taskNo as number,
        attempt: item.attempt as number,
        kind: item.kind as EventKind,
        data: (item.data ?? {}) as Record<string, unknown>,
      }));
  }

  /** Stores a piece of an attempt's live log; a repeat of an offset already stored changes nothing. */
  async putLogPiece(
    scope: { jobId: string; taskNo: number; attempt: number },
    piece: LogPiece,
    nowMs: number,
  ): Promise<boolean> {
    const stored = await conditional(() =>
      this.ddb.send(
        new PutCommand({
          TableName: this.tableName,
          Item: {
            [PARTITION_KEY]: logPartition(scope.jobId, scope.taskNo, scope.attempt),
            [SORT_KEY]: logOffsetKey(piece.offset),
            entity: 'log',
            offset: piece.offset,
            text: piece.text,
            [TTL_ATTRIBUTE]: Math.floor(nowMs / 1000) + EVENT_RETENTION_SEC,
          },
          ConditionExpression: 'attribute_not_exists(#pk)',
          ExpressionAttributeNames: { '#pk': PARTITION_KEY },
        }),
      ),
    );
    return stored !== undefined;
  }

  /** Pieces of an attempt's live log that end after `after`, in order, at most `limit` of them. */
  async logPieces(
    scope: { jobId: string; taskNo: number; attempt: number },
    after: number,
    limit: number,
  ): Promise<LogPiece[]> {
    const pieces = (condition: string, key: string, forward: boolean, n: number) =>
      this.ddb.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: `#pk = :pk AND #sk ${condition} :key`,
          ExpressionAttributeNames: { '#pk': PARTITION_KEY, '#sk': SORT_KEY },
          ExpressionAttributeValues: {
            ':pk': logPartition(scope.jobId, scope.taskNo, scope.attempt),
            ':key': key,
          },
          ScanIndexForward: forward,
          ConsistentRead: true,
          Limit: n,
        }),
      );
    // The piece holding `after` starts at or before it: read from the last piece that starts there.
    const first = await pieces('<=', logOffsetKey(after), false, 1);
    const start = (first.Items?.[0]?.[SORT_KEY] as string | undefined) ?? logOffsetKey(after);
    const out = await pieces('>=', start, true, limit);
    return (out.Items ?? [])
      .map((item) => ({ offset: item.offset as number, text: item.text as string }))
      .filter((p) => p.offset + p.text.length > after);
  }
}
