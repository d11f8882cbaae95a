/**
 * The local stand-in for API Gateway: turns HTTP requests into REST API proxy
 * events, runs the route's Lambda authorizer first and the API handler after,
 * exactly as the deployed API does.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type {
  APIGatewayAuthorizerResult,
  APIGatewayProxyEvent,
  APIGatewayProxyResult,
  APIGatewayRequestAuthorizerEvent,
  Context,
} from 'aws-lambda';
import { anthropicErrorBody } from '../core/model-metering.ts';
import { type EventStream, SSE_HEADERS } from '../handlers/api/event-stream.ts';
import { UNAUTHORIZED } from '../handlers/authorizer.ts';
import { wantsEventStream } from '../handlers/http.ts';
import { matchRoute } from '../handlers/routes.ts';
import type { GatewayRequest, GatewayResponse } from '../services/model-gateway.ts';

const MAX_BODY = 2 * 1024 * 1024;
/** The Messages API takes requests of up to 32 MB (long conversations, images, documents). */
const MAX_GATEWAY_BODY = 32 * 1024 * 1024;
/** Workers' ANTHROPIC_BASE_URL is `<api>/gateway`; everything below it is the model gateway's. */
export const GATEWAY_PREFIX = '/gateway';

export interface LocalApiOptions {
  host: string;
  port: number;
  api: (event: APIGatewayProxyEvent, context: Context) => Promise<APIGatewayProxyResult>;
  /** The caller routes' authorizer; worker routes check their task token in the handler, public ones need none. */
  authorizer: (event: APIGatewayRequestAuthorizerEvent) => Promise<APIGatewayAuthorizerResult>;
  /** The model gateway (`/gateway/*`), streamed; absent: those paths answer 404. */
  gateway?: ((req: GatewayRequest) => Promise<GatewayResponse>) | undefined;
  /**
   * Streamed routes asked for server-sent events: opens the stream (throwing
   * the route's errors before any byte is sent), as the streaming Lambda does.
   */
  openStream?: ((event: APIGatewayProxyEvent) => Promise<EventStream>) | undefined;
  /** How errors of `openStream` are answered (the API handler's own error shaping). */
  errorResult?: ((err: unknown) => APIGatewayProxyResult) | undefined;
}

/** A streamed answer: headers now, then the body as `stream` writes it. */
interface Streamed {
  statusCode: 200;
  headers: Record<string, string>;
  stream: EventStream;
}

export interface LocalApi {
  url: string;
  close(): Promise<void>;
}

const jsonHeaders = { 'content-type': 'application/json; charset=utf-8' };

export async function startLocalApi(options: LocalApiOptions): Promise<LocalApi> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (path === GATEWAY_PREFIX || path.startsWith(`${GATEWAY_PREFIX}/`)) {
      serveGateway(req, res, options.gateway).catch(() => {
        if (!res.headersSent) {
          res.writeHead(500, jsonHeaders);
          res.end(anthropicErrorBody('api_error', 'the model gateway failed'));
        } else res.destroy();
      });
      return;
    }
    handle(req, options)
      .then(async (result) => {
        res.writeHead(result.statusCode, result.headers as Record<string, string>);
        if (!('stream' in result)) {
          res.end(result.body);
          return;
        }
        // The caller going away stops the stream.
        const gone = new AbortController();
        res.once('close', () => gone.abort());
        res.flushHeaders();
        await result.stream((chunk) => res.write(chunk), gone.signal).catch(() => undefined);
        res.end();
      })
      .catch(() => {
        res.writeHead(500, jsonHeaders);
        res.end(JSON.stringify({ error: 'internal error', code: 'internal' }));
      });
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${options.host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** What a route without credentials passes on: nobody, allowed. */
const PUBLIC: APIGatewayAuthorizerResult = {
  principalId: 'anonymous',
  policyDocument: { Version: '2012-10-17', Statement: [] },
  context: { kind: 'public' },
};

async function handle(
  req: IncomingMessage,
  options: LocalApiOptions,
): Promise<APIGatewayProxyResult | Streamed> {
  const url = new URL(req.url ?? '/', 'http://local');
  const method = req.method ?? 'GET';
  const match = matchRoute(method, url.pathname);
  if (!match.route) {
    if (match.allowed.length === 0)
      return reply(404, { error: `no route for ${method} ${url.pathname}`, code: 'not_found' });
    const result = reply(405, {
      error: `method ${method} not allowed on ${url.pathname}`,
      code: 'method_not_allowed',
    });
    return { ...result, headers: { ...result.headers, allow: match.allowed.join(', ') } };
  }
  const body = await readBody(req);
  if (body === undefined)
    // The rest of the body was never read, so this connection cannot carry another request.
    return {
      ...reply(413, { error: `request body is larger than ${MAX_BODY} bytes`, code: 'too_large' }),
      headers: { ...jsonHeaders, connection: 'close' },
    };

  const headers: Record<string, string> = {};
  const multiValueHeaders: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(req.headers)) {
    if (v === undefined) continue;
    const values = Array.isArray(v) ? v : [v];
    headers[k] = values.join(',');
    multiValueHeaders[k] = values;
  }
  const query: Record<string, string> = {};
  const multiQuery: Record<string, string[]> = {};
  for (const [k, v] of url.searchParams) {
    query[k] = v;
    multiQuery[k] = [...(multiQuery[k] ?? []), v];
  }
  const requestId = randomUUID();
  const methodArn = `arn:aws:execute-api:local:000000000000:local/v1/${method}${match.route.resource}`;

  let authorizer: APIGatewayAuthorizerResult = PUBLIC;
  const auth = match.route.auth;
  if (auth === 'caller')
    try {
      authorizer = await options.authorizer({
        type: 'REQUEST',
        methodArn,
        resource: match.route.resource,
        path: url.pathname,
        httpMethod: method,
        headers,
        multiValueHeaders,
        pathParameters: match.pathParameters,
        queryStringParameters: query,
        multiValueQueryStringParameters: multiQuery,
        stageVariables: {},
        requestContext: {} as APIGatewayRequestAuthorizerEvent['requestContext'],
      });
    } catch (err) {
      // As API Gateway: only the authorizer's "Unauthorized" is a 401; any other failure of it (a
      // DynamoDB error while reading the key) is a 500 the caller retries, not a verdict on the key.
      if ((err as Error)?.message !== UNAUTHORIZED)
        return reply(500, { error: 'the authorizer failed; try again', code: 'internal' });
      return reply(401, { error: 'missing or unknown X-API-Key (or X-Task-Token)', code: 'unauthorized' });
    }
  if (authorizer.policyDocument.Statement.some((s) => s.Effect === 'Deny')) {
    return reply(403, { error: 'forbidden', code: 'forbidden' });
  }

  const event: APIGatewayProxyEvent = {
    resource: match.route.resource,
    path: url.pathname,
    httpMethod: method,
    headers,
    multiValueHeaders,
    queryStringParameters: Object.keys(query).length ? query : null,
    multiValueQueryStringParameters: Object.keys(multiQuery).length ? multiQuery : null,
    pathParameters: match.pathParameters,
    stageVariables: null,
    body: body.length ? body.toString('utf8') : null,
    isBase64Encoded: false,
    requestContext: {
      accountId: '000000000000',
      apiId: 'local',
      authorizer: { ...authorizer.context, principalId: authorizer.principalId },
      httpMethod: method,
      path: url.pathname,
      protocol: 'HTTP/1.1',
      requestId,
      requestTimeEpoch: Date.now(),
      resourceId: 'local',
      resourcePath: match.route.resource,
      stage: 'v1',
      identity: {
        sourceIp: req.socket.remoteAddress ?? '127.0.0.1',
      } as APIGatewayProxyEvent['requestContext']['identity'],
    },
  };
  if (match.route.stream && options.openStream && wantsEventStream(event)) {
    try {
      return { statusCode: 200, headers: SSE_HEADERS, stream: await options.openStream(event) };
    } catch (err) {
      return options.errorResult?.(err) ?? reply(500, { error: 'internal error', code: 'internal' });
    }
  }
  return options.api(event, { awsRequestId: requestId, functionName: 'api-local' } as Context);
}

/**
 * The model gateway, as the deployed streaming integration serves it: the
 * request whole, the answer streamed chunk by chunk as it arrives. A worker
 * that disconnects stops the iteration, which stops the upstream request and
 * settles it.
 */
async function serveGateway(
  req: IncomingMessage,
  res: ServerResponse,
  gateway: LocalApiOptions['gateway'],
): Promise<void> {
  const body = await readBody(req, MAX_GATEWAY_BODY);
  if (!gateway || body === undefined) {
    res.writeHead(gateway ? 413 : 404, { ...jsonHeaders, ...(gateway ? { connection: 'close' } : {}) });
    res.end(
      gateway
        ? anthropicErrorBody('request_too_large', `request body is larger than ${MAX_GATEWAY_BODY} bytes`)
        : anthropicErrorBody('not_found_error', 'the model gateway is not enabled'),
    );
    return;
  }
  const url = new URL(req.url ?? '/', 'http://local');
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers))
    if (v !== undefined) headers[k.toLowerCase()] = Array.isArray(v) ? v.join(',') : v;
  const client = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) client.abort(new Error('the worker disconnected'));
  });
  const answer = await gateway({
    method: req.method ?? 'GET',
    path: `${url.pathname.slice(GATEWAY_PREFIX.length) || '/'}${url.search}`,
    headers,
    body: body.toString('utf8'),
    signal: client.signal,
  });
  res.writeHead(answer.status, answer.headers);
  res.flushHeaders();
  for await (const chunk of answer.body) {
    // Leaving the loop ends the body's iteration, which settles the request.
    if (client.signal.aborted || res.destroyed) break;
    if (!res.write(chunk)) await drained(res);
  }
  res.end();
}

function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

function reply(statusCode: number, body: unknown): APIGatewayProxyResult {
  return { statusCode, headers: jsonHeaders, body: JSON.stringify(body) };
}

async function readBody(req: IncomingMessage, max = MAX_BODY): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > max) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
