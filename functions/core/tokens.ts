/**
 * API keys and task tokens. Only SHA-256 hashes are stored; the token carries
 * the ids it is scoped to, so checking it is one GetItem on the task.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

export function sha256Hex(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('hex');
}

const HEX = /^(?:[0-9a-f]{2})+$/;

/** Compares two hex digests in constant time. */
export function sameDigest(a: string, b: string): boolean {
  // Buffer.from(hex) silently drops a trailing odd digit or anything after a non-hex char.
  if (!HEX.test(a) || !HEX.test(b)) return false;
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}

export interface TaskTokenScope {
  jobId: string;
  taskNo: number;
  attempt: number;
}

const TOKEN_PATTERN = /^tt1\.([A-Za-z0-9_-]{1,64})\.(\d{1,6})\.(\d{1,4})\.([A-Za-z0-9_-]{32,128})$/;

/** `tt1.<jobId>.<taskNo>.<attempt>.<secret>`; `secret` is 32 random bytes, base64url. */
export function formatTaskToken(scope: TaskTokenScope, secret: Buffer): string {
  return `tt1.${scope.jobId}.${scope.taskNo}.${scope.attempt}.${secret.toString('base64url')}`;
}

export function parseTaskToken(token: string): TaskTokenScope | undefined {
  const m = TOKEN_PATTERN.exec(token);
  if (!m) return undefined;
  return { jobId: m[1] as string, taskNo: Number(m[2]), attempt: Number(m[3]) };
}

/**
 * The `TASK_ID` a worker container is started with (next to its sealed token,
 * see adapters/token-seal.ts); the reconciler parses it back from the stopped task.
 */
export function taskIdEnv(scope: TaskTokenScope): string {
  return `${scope.jobId}/${scope.taskNo}/${scope.attempt}`;
}

const TASK_ID_PATTERN = /^([A-Za-z0-9_-]{1,64})\/(0|[1-9]\d{0,5})\/(0|[1-9]\d{0,3})$/;

/** Inverse of `taskIdEnv`; `undefined` for anything it would not have produced. */
export function parseTaskIdEnv(value: string): TaskTokenScope | undefined {
  const m = TASK_ID_PATTERN.exec(value);
  if (!m) return undefined;
  return { jobId: m[1] as string, taskNo: Number(m[2]), attempt: Number(m[3]) };
}

export const API_KEY_PREFIX = 'cok_';

export function formatApiKey(secret: Buffer): string {
  return `${API_KEY_PREFIX}${secret.toString('base64url')}`;
}

/** Job ids: 20 lowercase hex chars; derived from the Idempotency-Key when there is one. */
export function jobIdFor(tenant: string, idempotencyKey: string | undefined, random: Buffer): string {
  if (idempotencyKey !== undefined) return sha256Hex(`${tenant}\n${idempotencyKey}`).slice(0, 20);
  return random.toString('hex').slice(0, 20);
}

/** A stable hash of a JSON value: object keys sorted, so field order does not matter. */
export function canonicalHash(value: unknown): string {
  return sha256Hex(JSON.stringify(sortKeys(value)));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([k, v]) => [k, sortKeys(v)]),
    );
  }
  return value;
}
