/**
 * Domain errors that carry their HTTP status. Handlers throw these; one error
 * middleware turns them into responses. Anything else is an internal error and
 * is answered with a generic 500, so internals never leak.
 */
import type * as z from 'zod';

export interface FieldIssue {
  path: string;
  message: string;
}

export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
    readonly issues?: FieldIssue[],
    readonly code?: string,
    /** Extra fields for the response body, e.g. which limit refused the request. */
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export const badRequest = (message: string, issues?: FieldIssue[]) =>
  new HttpError(400, message, issues, 'bad_request');
export const unauthorized = (message = 'missing or unknown API key') =>
  new HttpError(401, message, undefined, 'unauthorized');
export const forbidden = (message: string) => new HttpError(403, message, undefined, 'forbidden');
export const notFound = (message: string) => new HttpError(404, message, undefined, 'not_found');
export const conflict = (message: string) => new HttpError(409, message, undefined, 'conflict');
/** A server-enforced limit refused the request; `limit` names it (e.g. `max_depth`). */
export const limitExceeded = (limit: string, message: string, details: Record<string, unknown> = {}) =>
  new HttpError(403, message, undefined, 'limit_exceeded', { limit, ...details });
/** Too often: the answer carries Retry-After (whole seconds, at least 1). */
export const tooManyRequests = (message: string, retryAfterMs: number) =>
  new HttpError(429, message, undefined, 'throttled', {
    retry_after_sec: Math.max(1, Math.ceil(retryAfterMs / 1000)),
  });
export const unsupportedMediaType = (message: string) =>
  new HttpError(415, message, undefined, 'unsupported_media_type');

/** `a.b[2].c` style paths, the way a user writes them in YAML or JSON. */
export function issuePath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else out += out === '' ? String(segment) : `.${String(segment)}`;
  }
  return out === '' ? '(root)' : out;
}

export function zodIssues(error: z.ZodError): FieldIssue[] {
  return error.issues.map((issue) => {
    // Name the offending keys themselves, so "unknown field" points at the field.
    if (issue.code === 'unrecognized_keys') {
      return { path: issuePath(issue.path), message: `unknown field(s): ${issue.keys.join(', ')}` };
    }
    return { path: issuePath(issue.path), message: issue.message };
  });
}
