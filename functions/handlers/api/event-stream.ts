/**
 * `GET /jobs/{id}/events` as server-sent events. Opening checks everything a
 * JSON request would (who may see the job, the query) and throws the same
 * errors, before any byte is sent; the stream itself then only reads.
 */
import type { APIGatewayProxyEvent } from 'aws-lambda';
import { badRequest, zodIssues } from '../../core/errors.ts';
import { EventsQuerySchema } from '../../core/progress.ts';
import type { Deps } from '../../services/deps.ts';
import { streamEvents } from '../../services/progress.ts';
import { header } from '../http.ts';
import { visibleJob } from './access.ts';

/** A stream ends after this long (under the streaming function's 15 minutes); EventSource reconnects. */
export const EVENT_STREAM_MAX_MS = 14 * 60_000;

export type EventStream = (write: (chunk: string) => void, signal: AbortSignal) => Promise<void>;

export const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-store',
  'x-accel-buffering': 'no',
};

export async function openEventStream(
  deps: Deps,
  event: APIGatewayProxyEvent,
  maxMs: number,
): Promise<EventStream> {
  const job = await visibleJob(deps, event);
  const query = EventsQuerySchema.safeParse(event.queryStringParameters ?? {});
  if (!query.success) throw badRequest('invalid query string', zodIssues(query.error));
  // A reconnecting EventSource sends the last id it saw.
  const lastId = header(event, 'last-event-id');
  if (lastId !== undefined && !/^[0-9A-Za-z._-]{1,200}$/.test(lastId))
    throw badRequest('Last-Event-ID is not an event id', [{ path: 'Last-Event-ID', message: 'invalid' }]);
  const after = lastId ?? query.data.after;
  return (write, signal) => streamEvents(deps, job, { after, maxMs, write, signal });
}
