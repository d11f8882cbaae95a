/**
 * Who is calling: a caller with an API key (scoped to a tenant) or a worker
 * with a task token (scoped to one attempt of one task). Both are checked
 * against hashes in the table; the authorizer Lambda and the local server
 * call these same functions.
 */
import type { ApiKeyStore } from '../adapters/api-key-store.ts';
import type { TaskStore } from '../adapters/task-store.ts';
import type { JobRecord, TaskRecord } from '../core/model.ts';
import { parseTaskToken, sameDigest, sha256Hex, type TaskTokenScope } from '../core/tokens.ts';

export type Principal =
  | { kind: 'caller'; tenant: string; keyId: string }
  | { kind: 'worker'; jobId: string; taskNo: number; attempt: number };

export async function authorizeApiKey(
  keys: ApiKeyStore,
  apiKey: string | undefined,
): Promise<Principal | undefined> {
  if (!apiKey || apiKey.length > 256) return undefined;
  const record = await keys.getApiKey(sha256Hex(apiKey));
  if (!record || record.revokedAt) return undefined;
  return { kind: 'caller', tenant: record.tenant, keyId: record.keyId };
}

/**
 * A token is genuine when its hash matches the one stored for its task. It
 * stays genuine after the attempt ends, so a worker can replay its result
 * POST; each route then checks the task is still in a state that allows it.
 */
export async function authorizeTaskToken(
  tasks: TaskStore,
  token: string | undefined,
): Promise<Principal | undefined> {
  const found = await authenticateWorker(tasks, token);
  return found && { kind: 'worker', ...found.scope };
}

/**
 * A worker route's credential, checked where the task is needed anyway: one
 * read of the task both proves the token and gives the handler its task
 * (and, `withJob`, its job in the same read, for a route that checks the job
 * has not ended). `undefined` when the token is missing, malformed or not the
 * stored one.
 */
export async function authenticateWorker(
  tasks: TaskStore,
  token: string | undefined,
  withJob = false,
): Promise<{ scope: TaskTokenScope; task: TaskRecord; job?: JobRecord | undefined } | undefined> {
  if (!token || token.length > 512) return undefined;
  const scope = parseTaskToken(token);
  if (!scope) return undefined;
  const { task, job } = withJob
    ? await tasks.getTaskWithJob(scope.jobId, scope.taskNo)
    : { task: await tasks.getTask(scope.jobId, scope.taskNo), job: undefined };
  if (!task?.tokenHash || !sameDigest(task.tokenHash, sha256Hex(token))) return undefined;
  return { scope, task, job };
}

/** The task a worker principal may act on, if the route's ids are its own. */
export function ownsTask(principal: TaskTokenScope, jobId: string, taskNo: number): boolean {
  return principal.jobId === jobId && principal.taskNo === taskNo;
}
