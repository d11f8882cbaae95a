/**
 * What the worker does once its assignment has arrived: check that this
 * container may run it, report progress while it runs, and run the step
 * (a Claude session, the merge, or a git step). Loaded by worker.ts only
 * once the assignment has arrived, so that none of this code (git, uploads,
 * Claude) delays the request that marks the task running.
 */
import type { OrchestratorClient } from '../functions/client/orchestrator-client.ts';
import type { TaskTokenScope } from '../functions/core/tokens.ts';
import type { Assignment } from '../functions/services/worker-access.ts';
import { fail, runPushStep, runSourceStep } from './git-steps.ts';
import { runMergeStep } from './merge-step.ts';
import { ProgressReporter, withProgress } from './progress-reporter.ts';
import { AttemptLog } from './reporting.ts';
import { SessionTally, withSessionTally } from './run-claude.ts';
import { type AttemptContext, runSession } from './session.ts';
import type { WorkerEnv } from './worker.ts';

export interface AttemptStart {
  api: OrchestratorClient;
  /** `/api/v1/jobs/<job>/tasks/<n>` */
  base: string;
  scope: TaskTokenScope;
  token: string;
  assignment: Assignment;
  env: WorkerEnv & NodeJS.ProcessEnv;
  signal?: AbortSignal | undefined;
}

export function runAttempt({
  api,
  base,
  scope,
  token,
  assignment,
  env,
  signal,
}: AttemptStart): Promise<number> {
  const tally = new SessionTally();
  const log = new AttemptLog();
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
