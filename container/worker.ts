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
import { OrchestratorClient } from '../functions/client/orchestrator-client.ts';
import { parseTaskToken } from '../functions/core/tokens.ts';
import { WORKER_ENV } from '../functions/core/worker-identity.ts';
import type { Assignment } from '../functions/services/worker-access.ts';
import { fail, runPushStep, runSourceStep } from './git-steps.ts';
import { runMergeStep } from './merge-step.ts';
import { ProgressReporter, withProgress } from './progress-reporter.ts';
import { AttemptLog } from './reporting.ts';
import { SessionTally, withSessionTally } from './run-claude.ts';
import { type AttemptContext, runSession } from './session.ts';
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
  const tally = new SessionTally();
  const api = new OrchestratorClient(env.API_URL, undefined, { taskToken: token, timeoutMs: 15_000 });
  const log = new AttemptLog();

  let assignment: Assignment;
  try {
    assignment = await api.request<Assignment>('GET', `${base}/assignment`);
  } catch (err) {
    process.stderr.write(`worker: cannot fetch assignment: ${(err as Error).message}\n`);
    return 1;
  }
  log.note(
    `task ${scope.jobId}/${scope.taskNo} attempt ${scope.attempt} (${assignment.kind}): ${assignment.title}`,
  );
  const ctx: AttemptContext = { api, base, assignment, env, signal, log };

  const credentialed = assignment.kind === 'source' || assignment.kind === 'push';
  const role = env.WORKER_ROLE === 'git' ? 'git' : 'ai';
  if (credentialed !== (role === 'git')) {
    return fail(ctx, `a ${assignment.kind} task cannot run in the ${role} worker container`, false);
  }
  const progress = new ProgressReporter(api, base, assignment.attempt, {
    ...(assignment.progress
      ? { intervalMs: assignment.progress.interval_ms, heartbeatMs: assignment.progress.heartbeat_ms }
      : {}),
    secrets: [token, env.GIT_TOKEN],
    logText: () => log.text(),
  });
  progress.start();
  return withProgress(progress, () => withSessionTally(tally, () => runStep(ctx)));
}

function runStep(ctx: AttemptContext): Promise<number> {
  switch (ctx.assignment.kind) {
    case 'source':
      return runSourceStep(ctx);
    case 'push':
      return runPushStep(ctx);
    case 'merge':
      return runMergeStep(ctx);
    default:
      return runSession(ctx);
  }
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
