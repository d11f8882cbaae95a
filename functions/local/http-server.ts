/**
 * The local stand-in for API Gateway: turns HTTP requests into REST API proxy
 * events, runs the route's Lambda authorizer first and the API handler after,
 * exactly as the deployed API does.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type {
  APIGatewayAuthorizerResult,
  APIGatewayProxyEvent,
  APIGatewayProxyResult,
  APIGatewayRequestAuthorizerEvent,
  Context,
} from 'aws-lambda';
import { matchRoute, type RouteAuth } from '../handlers/routes.ts';

const MAX_BODY = 2 * 1024 * 1024;

export interface LocalApiOptions {
  host: string;
  port: number;
  api: (event: APIGatewayProxyEvent, context: Context) => Promise<APIGatewayProxyResult>;
  authorizers: Record<
    RouteAuth,
    (event: APIGatewayRequestAuthorizerEvent) => Promise<APIGatewayAuthorizerResult>
  >;
}

export interface LocalApi {
  url: string;
  close(): Promise<void>;
}

const jsonHeaders = { 'content-type': 'application/json; charset=utf-8' };

export async function startLocalApi(options: LocalApiOptions): Promise<LocalApi> {
  const server: Server = createServer((req, res) => {
    handle(req, options)
      .then((result) => {
        res.writeHead(result.statusCode, result.headers as Record<string, string>);
        res.end(result.body);
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

async function handle(req: IncomingMessage, options: LocalApiOptions): Promise<APIGatewayProxyResult> {
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
    return reply(413, { error: `request body is larger than ${MAX_BODY} bytes`, code: 'too_large' });

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

  let authorizer: APIGatewayAuthorizerResult;
  try {
    authorizer = await options.authorizers[match.route.auth]({
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
  } catch {
    const what = match.route.auth === 'caller' ? 'X-API-Key (or X-Task-Token)' : 'X-Task-Token';
    return reply(401, { error: `missing or unknown ${what}`, code: 'unauthorized' });
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
  return options.api(event, { awsRequestId: requestId, functionName: 'api-local' } as Context);
}

function reply(statusCode: number, body: unknown): APIGatewayProxyResult {
  return { statusCode, headers: jsonHeaders, body: JSON.stringify(body) };
}

async function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
