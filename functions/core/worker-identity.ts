/**
 * Who a worker is: one attempt of one task of one job. Both launchers (ECS
 * RunTask overrides, local child processes) give a worker only these ids and
 * its task token, in the environment variables named here; the container
 * reads them back, and the reconciler reads the ids from a stopped ECS task's
 * overrides. The ECS client token and `startedBy` of an attempt are derived
 * from the same ids.
 */
import { createHash } from 'node:crypto';
import type { TaskTokenScope } from './tokens.ts';

/** One attempt of one task: the ids a worker is started with. */
export type WorkerAttempt = TaskTokenScope;

/** The environment variables a worker reads its identity from. */
export const WORKER_ENV = {
  /** `<job>/<task>/<attempt>` (`taskIdEnv`): never secret, so it may be logged. */
  taskId: 'TASK_ID',
  /** The plain task token: locally, and inside the worker once a sealed one is opened. */
  taskToken: 'TASK_TOKEN',
  /** The task token sealed with KMS for its trip through ECS, bound to the attempt in TASK_ID. */
  sealedTaskToken: 'TASK_TOKEN_SEALED',
} as const;

/** The `TASK_ID` a worker is started with; the reconciler parses it back from a stopped task. */
export function taskIdEnv(scope: WorkerAttempt): string {
  return `${scope.jobId}/${scope.taskNo}/${scope.attempt}`;
}

const TASK_ID_PATTERN = /^([A-Za-z0-9_-]{1,64})\/(0|[1-9]\d{0,5})\/(0|[1-9]\d{0,3})$/;

/** Inverse of `taskIdEnv`; `undefined` for anything it would not have produced. */
export function parseTaskIdEnv(value: string): WorkerAttempt | undefined {
  const m = TASK_ID_PATTERN.exec(value);
  if (!m) return undefined;
  return { jobId: m[1] as string, taskNo: Number(m[2]), attempt: Number(m[3]) };
}

/**
 * The identity variables of one worker: its TASK_ID and either the plain
 * token or, when `sealedToken` is given, only the sealed one.
 */
export function workerIdentityEnv(
  request: WorkerAttempt & { taskToken: string },
  sealedToken?: string,
): Record<string, string> {
  return {
    [WORKER_ENV.taskId]: taskIdEnv(request),
    ...(sealedToken === undefined
      ? { [WORKER_ENV.taskToken]: request.taskToken }
      : { [WORKER_ENV.sealedTaskToken]: sealedToken }),
  };
}

/**
 * The attempt named by a container's environment as ECS reports it
 * (`containerOverrides[].environment`); reads TASK_ID only, never the token
 * next to it.
 */
export function attemptOfEnvironment(
  environment: readonly { name?: string | undefined; value?: string | undefined }[],
): WorkerAttempt | undefined {
  return parseTaskIdEnv(environment.find((e) => e.name === WORKER_ENV.taskId)?.value ?? '');
}

/** ECS's limit on a RunTask client token. */
const MAX_CLIENT_TOKEN = 64;
/** ECS's limit on `startedBy`: letters, digits, `-`, `/` and `_`. */
const MAX_STARTED_BY = 36;

/**
 * The RunTask client token of one dispatch: the same for every try inside one
 * `launch` call (so a timed-out RunTask that did start a task is not started
 * twice), and different for every other dispatch. It covers the task token
 * because ECS refuses a reused client token whose parameters differ, and each
 * dispatch of an attempt mints a new task token. A task left over from an
 * earlier, lost dispatch holds a token whose hash is no longer stored, so it
 * is refused at its first API call and exits without doing any work.
 */
export function clientTokenFor(request: WorkerAttempt & { taskToken: string }): string {
  const digest = createHash('sha256')
    .update(`${request.jobId}\n${request.taskNo}\n${request.attempt}\n${request.taskToken}`, 'utf8')
    .digest('hex');
  return `cf1h${digest.slice(0, MAX_CLIENT_TOKEN - 4)}`;
}

/** The RunTask `startedBy` of a job's workers (ListTasks can filter on it): the job id, in ECS's alphabet. */
export function startedByFor(jobId: string): string {
  // Each UTF-16 unit outside the alphabet becomes `_`, so the result is ASCII and cuts anywhere.
  return jobId.replace(/[^A-Za-z0-9_/-]/g, '_').slice(0, MAX_STARTED_BY);
}
