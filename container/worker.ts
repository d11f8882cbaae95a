/**
 * The worker entrypoint: one attempt of one task, in a Fargate container or
 * as a local child process. It starts with only API_URL and its task token
 * (TASK_TOKEN, or on Fargate TASK_TOKEN_SEALED, see task-token.ts; the token
 * names its job, task and attempt), fetches its assignment and runs it:
 * a Claude session (planner, work), the merge of a job's commits, or a step
 * without AI (fetch a git URL, push a branch). It holds no AWS credentials.
 *
 * WORKER_ROLE says which container this is: `git` (the only one given the
 * repository token) refuses anything that would run Claude, and `ai` refuses
 * the credentialed steps, so a mix-up in dispatch cannot put the token and
 * Claude in one place.
 *
 * Exit codes: 0 result posted; 1 could not post a result; 2 bad environment.
 */
import { pathToFileURL } from 'node:url';
import { nodeHttpTransport } from '../functions/client/node-transport.ts';
import { OrchestratorClient } from '../functions/client/orchestrator-client.ts';
import { parseTaskToken } from '../functions/core/tokens.ts';
import { WORKER_ENV } from '../functions/core/worker-identity.ts';
import type { Assignment } from '../functions/services/worker-access.ts';
import { resolveTaskToken } from './task-token.ts';

export interface WorkerEnv {
  API_URL?: string | undefined;
  TASK_TOKEN?: string | undefined;
  CLAUDE_COMMAND?: string | undefined;
  WORKSPACE_DIR?: string | undefined;
  KEEP_WORKSPACE?: string | undefined;
  /** `git` for the container of the steps without AI, `ai` (or unset) for the Claude workers. */
  WORKER_ROLE?: string | undefined;
  GIT_TOKEN?: string | undefined;
}

export async function runWorker(
  env: WorkerEnv & NodeJS.ProcessEnv,
  signal?: AbortSignal,
  resolveToken: typeof resolveTaskToken = resolveTaskToken,
): Promise<number> {
  const source = await resolveToken(env);
  const token = 'token' in source ? source.token : undefined;
  const scope = token ? parseTaskToken(token) : undefined;
  if (!env.API_URL || !token || !scope) {
    const why = 'error' in source ? `: ${source.error}` : '';
    process.stderr.write(`worker: API_URL and a valid task token are required${why}\n`);
    return 2;
  }
  // Sessions (and `orchestrator spawn` inside them) read the plain token; the ciphertext is of no further use.
  env[WORKER_ENV.taskToken] = token;
  delete env[WORKER_ENV.sealedTaskToken];
  const base = `/api/v1/jobs/${scope.jobId}/tasks/${scope.taskNo}`;
  const api = new OrchestratorClient(env.API_URL, undefined, {
    taskToken: token,
    timeoutMs: 15_000,
    transport: nodeHttpTransport,
  });

  let assignment: Assignment;
  try {
    assignment = await api.request<Assignment>('GET', `${base}/assignment`);
  } catch (err) {
    process.stderr.write(`worker: cannot fetch assignment: ${(err as Error).message}\n`);
    return 1;
  }
  // Stack traces of the bundle name the TypeScript sources: enabled here rather than by
  // --enable-source-maps, which costs every worker ~5 ms before its request.
  process.setSourceMapsEnabled(true);
  // The rest of the worker (git, uploads, Claude) loads only now that the task is running: loaded
  // while the request was out, it delayed the request by ~10 ms on two busy cores (npm run bench).
  const { runAttempt } = await import('./attempt.ts');
  return runAttempt({ api, base, scope, token, assignment, env, signal });
}

async function main(): Promise<void> {
  const controller = new AbortController();
  // SIGTERM (ECS stop, local cancel): stop Claude, still upload and report what exists.
  process.once('SIGTERM', () => controller.abort());
  process.once('SIGINT', () => controller.abort());
  const code = await runWorker(process.env, controller.signal);
  process.exitCode = code;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  void main();
}
