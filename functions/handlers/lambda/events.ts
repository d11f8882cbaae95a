/**
 * Lambda entry point: the streamed routes (`GET /jobs/{id}/events`), behind
 * API Gateway REST methods with response streaming. A request that asks for
 * `text/event-stream` gets server-sent events for up to 14 minutes; any other
 * is answered by the API's own handler, whole.
 */
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import { EVENT_STREAM_MAX_MS, type EventStream, openEventStream, SSE_HEADERS } from '../api/event-stream.ts';
import { createApiHandler } from '../api/router.ts';
import { errorResult, wantsEventStream } from '../http.ts';
import { depsFromEnv, lambdaStreaming, log, type ResponseStream } from './runtime.ts';

const deps = depsFromEnv();
const api = createApiHandler(deps);
const awslambda = lambdaStreaming<APIGatewayProxyEvent>();

function answer(responseStream: ResponseStream, result: APIGatewayProxyResult): void {
  const out = awslambda.HttpResponseStream.from(responseStream, {
    statusCode: result.statusCode,
    headers: (result.headers ?? {}) as Record<string, string>,
  });
  out.write(result.body);
  out.end();
}

export const handler = awslambda.streamifyResponse(async (event, responseStream, context) => {
  if (!wantsEventStream(event)) {
    answer(responseStream, await api(event, context as Context));
    return;
  }
  let stream: EventStream;
  try {
    stream = await openEventStream(deps, event, EVENT_STREAM_MAX_MS);
  } catch (err) {
    answer(responseStream, errorResult(err, log, event.path));
    return;
  }
  const out = awslambda.HttpResponseStream.from(responseStream, { statusCode: 200, headers: SSE_HEADERS });
  const gone = new AbortController();
  out.on('close', () => gone.abort());
  await stream((chunk) => out.write(chunk), gone.signal);
  out.end();
});
