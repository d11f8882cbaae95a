/**
 * HTTP plumbing shared by the API routes: error responses, JSON bodies and
 * the principal the authorizer attached to the request.
 */
import type { MiddlewareObj } from '@middy/core';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import type * as z from 'zod';
import { badRequest, HttpError, unauthorized, unsupportedMediaType, zodIssues } from '../core/errors.ts';
import type { Principal } from '../services/auth.ts';
import type { Log } from '../services/deps.ts';

const MAX_BODY_BYTES = 1024 * 1024;

export function json(
  statusCode: number,
  body: unknown,
  headers: Record<string, string> = {},
): APIGatewayProxyResult {
  return {
    statusCode,
    headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...headers },
    body: JSON.stringify(body),
  };
}

/**
 * Domain errors become their status with `{error, code, issues?}`; anything
 * else is logged and answered with a bare 500, so no stack trace leaves.
 */
export function errorResponses(log: Log): MiddlewareObj<APIGatewayProxyEvent, APIGatewayProxyResult> {
  return {
    onError: async (request) => {
      request.response = errorResult(request.error, log, request.event?.path);
    },
  };
}

/** The answer to a failed request: a domain error's status and body, or a bare 500 (logged). */
export function errorResult(err: unknown, log: Log, path?: string): APIGatewayProxyResult {
  if (err instanceof HttpError) {
    const retryAfter = err.details?.retry_after_sec;
    return json(
      err.statusCode,
      {
        error: err.message,
        ...(err.code ? { code: err.code } : {}),
        ...(err.issues ? { issues: err.issues } : {}),
        ...err.details,
      },
      typeof retryAfter === 'number' ? { 'retry-after': String(retryAfter) } : {},
    );
  }
  log.error('unhandled error', {
    path,
    error: err instanceof Error ? { name: err.name, message: err.message, stack: err.stack } : String(err),
  });
  return json(500, { error: 'internal error', code: 'internal' });
}

/** Whether the caller asked for server-sent events. */
export function wantsEventStream(event: APIGatewayProxyEvent): boolean {
  return /\btext\/event-stream\b/i.test(header(event, 'accept') ?? '');
}

/** Parses and validates a JSON body: 415 for another content type, 400 for bad JSON or bad fields. */
export function parseJsonBody<S extends z.ZodType>(event: APIGatewayProxyEvent, schema: S): z.infer<S> {
  const contentType = header(event, 'content-type') ?? '';
  if (!/^application\/(.+\+)?json\s*(;.*)?$/i.test(contentType)) {
    throw unsupportedMediaType(
      `content-type must be application/json, got ${contentType ? `"${contentType.slice(0, 100)}"` : 'none'}`,
    );
  }
  const raw = event.body ?? '';
  const text = event.isBase64Encoded ? Buffer.from(raw, 'base64').toString('utf8') : raw;
  if (Buffer.byteLength(text, 'utf8') > MAX_BODY_BYTES) {
    throw new HttpError(413, `request body is larger than ${MAX_BODY_BYTES} bytes`, undefined, 'too_large');
  }
  if (text.trim() === '') throw badRequest('request body is empty; expected a JSON object');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw badRequest(`request body is not valid JSON: ${(err as Error).message}`);
  }
  const result = schema.safeParse(value);
  if (!result.success) throw badRequest('request body is invalid', zodIssues(result.error));
  return result.data;
}

/** Header lookup that does not depend on the caller's capitalisation. */
export function header(event: APIGatewayProxyEvent, name: string): string | undefined {
  const wanted = name.toLowerCase();
  for (const [k, v] of Object.entries(event.headers ?? {})) {
    if (k.toLowerCase() === wanted && v !== undefined) return v;
  }
  return undefined;
}

export function pathParam(event: APIGatewayProxyEvent, name: string): string {
  const value = event.pathParameters?.[name];
  if (!value) throw badRequest(`missing path parameter ${name}`);
  return value;
}

/** The principal the authorizer put in the request context (strings only, as API Gateway passes them). */
export function principalOf(event: APIGatewayProxyEvent): Principal {
  const ctx = (event.requestContext?.authorizer ?? {}) as Record<string, unknown>;
  if (ctx.kind === 'caller' && typeof ctx.tenant === 'string' && typeof ctx.keyId === 'string') {
    return { kind: 'caller', tenant: ctx.tenant, keyId: ctx.keyId };
  }
  if (ctx.kind === 'worker' && typeof ctx.jobId === 'string') {
    return { kind: 'worker', jobId: ctx.jobId, taskNo: Number(ctx.taskNo), attempt: Number(ctx.attempt) };
  }
  throw unauthorized();
}

/** API Gateway authorizer context values must be strings, numbers or booleans. */
export function principalContext(principal: Principal): Record<string, string> {
  return principal.kind === 'caller'
    ? { kind: 'caller', tenant: principal.tenant, keyId: principal.keyId }
    : {
        kind: 'worker',
        jobId: principal.jobId,
        taskNo: String(principal.taskNo),
        attempt: String(principal.attempt),
      };
}
