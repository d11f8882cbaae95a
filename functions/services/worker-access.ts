/** What a worker may ask for during its attempt: its assignment and upload links. */
import { badRequest, conflict } from '../core/errors.ts';
import { safeRelativePath, workerFilesPrefix, workerLogKey } from '../core/layout.ts';
import type { TaskRecord } from '../core/model.ts';
import { plannerSchema, workerPrompt } from '../core/planner.ts';
import { isActiveAttempt } from './auth.ts';
import type { Deps } from './deps.ts';

export interface Assignment {
  job_id: string;
  task_no: number;
  attempt: number;
  kind: TaskRecord['kind'];
  title: string;
  /** The full prompt to give Claude. */
  prompt: string;
  json_schema?: Record<string, unknown> | undefined;
  timeout_sec: number;
  model?: string | undefined;
  permission_mode: string;
  max_turns?: number | undefined;
}

/** Returns the attempt's assignment and marks the task running (repeat calls are harmless). */
export async function getAssignment(deps: Deps, task: TaskRecord, attempt: number): Promise<Assignment> {
  if (!isActiveAttempt(task, attempt)) {
    throw conflict(
      `task ${task.taskNo} attempt ${attempt} is no longer active (${task.state}, attempt ${task.attempt})`,
    );
  }
  if (task.state === 'launching') {
    await deps.store.markRunning(task.jobId, task.taskNo, attempt, deps.now().toISOString());
  }
  const job = await deps.store.getJob(task.jobId);
  if (!job) throw conflict(`job ${task.jobId} is gone`);
  const isPlan = task.kind === 'plan';
  return {
    job_id: task.jobId,
    task_no: task.taskNo,
    attempt,
    kind: task.kind,
    title: task.title,
    prompt: isPlan
      ? task.prompt
      : workerPrompt({
          request: job.request,
          title: task.title,
          prompt: task.prompt,
          taskNo: task.taskNo,
          totalTasks: job.totalTasks,
        }),
    json_schema: isPlan ? plannerSchema(job.config.maxWorkers) : undefined,
    timeout_sec: task.timeoutSec,
    model: job.config.model,
    permission_mode: deps.settings.worker.permissionMode,
    max_turns: deps.settings.worker.maxTurns,
  };
}

export interface UploadLinks {
  files: { path: string; url: string }[];
  log?: { url: string } | undefined;
  expires_in: number;
}

/** Presigned PUT links under the worker's own prefix; a path that would leave it is refused. */
export async function uploadLinks(
  deps: Deps,
  task: TaskRecord,
  request: { attempt: number; files: string[]; include_log: boolean },
): Promise<UploadLinks> {
  if (!isActiveAttempt(task, request.attempt)) {
    throw conflict(`task ${task.taskNo} attempt ${request.attempt} is no longer active`);
  }
  const bad = request.files.filter((f) => safeRelativePath(f) === undefined);
  if (bad.length > 0) {
    throw badRequest(
      'file paths must be relative and stay inside the worker directory',
      bad.slice(0, 20).map((f) => ({ path: 'files', message: `refused path: ${f}` })),
    );
  }
  const expires = deps.settings.presignExpirySec;
  const prefix = workerFilesPrefix(task.rootJobId, task.depth, task.taskNo);
  const files = await Promise.all(
    request.files.map(async (f) => {
      const path = safeRelativePath(f) as string;
      return { path, url: await deps.artifacts.presignPut(`${prefix}${path}`, expires) };
    }),
  );
  const log = request.include_log
    ? { url: await deps.artifacts.presignPut(workerLogKey(task.rootJobId, task.depth, task.taskNo), expires) }
    : undefined;
  return { files, log, expires_in: expires };
}
