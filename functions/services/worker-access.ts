/** What a worker may ask for during its attempt: its assignment and upload links. */
import { conflict, forbidden, HttpError } from '../core/errors.ts';
import { safeRelativePath, workerFilesPrefix, workerLogKey } from '../core/layout.ts';
import type { TaskRecord } from '../core/model.ts';
import { plannerSchema, workerPrompt } from '../core/planner.ts';
import { decidePrompt, decideSchema, splitOffer } from '../core/recursion-policy.ts';
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
  /** `claude --max-budget-usd` for this attempt, from what the job tree has left. */
  max_budget_usd: number;
  /** Present when the worker may split its subtask into a child job (ask Claude with `decide_schema` first). */
  recursion?:
    | {
        depth: number;
        max_depth: number;
        max_subtasks: number;
        /** The subtask as given, without the worker framing: the request of a child job. */
        subtask_prompt: string;
        decide_prompt: string;
        decide_schema: Record<string, unknown>;
      }
    | undefined;
}

/** Returns the attempt's assignment and marks the task running (repeat calls are harmless). */
export async function getAssignment(deps: Deps, task: TaskRecord, attempt: number): Promise<Assignment> {
  if (!isActiveAttempt(task, attempt)) {
    deps.log.warn('assignment refused: attempt no longer active', {
      jobId: task.jobId,
      taskNo: task.taskNo,
      attempt,
      state: task.state,
    });
    throw forbidden(
      `task ${task.taskNo} attempt ${attempt} is no longer active (${task.state}, attempt ${task.attempt}); its token is no longer valid`,
    );
  }
  if (task.state === 'launching') {
    await deps.store.markRunning(task.jobId, task.taskNo, attempt, deps.now().toISOString());
  }
  const job = await deps.store.getJob(task.jobId);
  if (!job) throw conflict(`job ${task.jobId} is gone`);
  const root = job.depth === 0 ? job : await deps.store.getJob(job.rootJobId);
  if (!root) throw conflict(`root job ${job.rootJobId} is gone`);
  // Reserved by the dispatcher before the worker started.
  const budgetUsd = task.budgetAttempt === attempt ? (task.budgetUsd ?? 0) : 0;
  const offer = splitOffer(root, job, task);
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
          canSpawn: offer.allowed,
        }),
    json_schema: isPlan ? plannerSchema(job.config.maxWorkers) : undefined,
    timeout_sec: task.timeoutSec,
    model: job.config.model,
    permission_mode: deps.settings.worker.permissionMode,
    max_turns: deps.settings.worker.maxTurns,
    max_budget_usd: budgetUsd,
    recursion: offer.allowed
      ? {
          depth: job.depth,
          max_depth: root.budget?.maxDepth ?? 0,
          max_subtasks: offer.maxSubtasks,
          subtask_prompt: task.prompt,
          decide_prompt: decidePrompt(task.prompt, job.depth, root.budget?.maxDepth ?? 0, offer.maxSubtasks),
          decide_schema: decideSchema(offer.maxSubtasks),
        }
      : undefined,
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
  // After a hand-off the worker still uploads its log for the attempt.
  const uploading =
    task.attempt === request.attempt && ['launching', 'running', 'waiting_on_child'].includes(task.state);
  if (!uploading) {
    deps.log.warn('uploads refused: attempt no longer active', {
      jobId: task.jobId,
      taskNo: task.taskNo,
      attempt: request.attempt,
      state: task.state,
    });
    throw forbidden(
      `task ${task.taskNo} attempt ${request.attempt} is no longer active; its token is no longer valid`,
    );
  }
  const bad = request.files.filter((f) => safeRelativePath(f) === undefined);
  if (bad.length > 0) {
    deps.log.warn('uploads refused: path outside the worker prefix', {
      jobId: task.jobId,
      taskNo: task.taskNo,
      paths: bad.slice(0, 5),
    });
    throw new HttpError(
      403,
      'file paths must be relative and stay inside the worker directory',
      bad.slice(0, 20).map((f) => ({ path: 'files', message: `refused path: ${f}` })),
      'forbidden',
    );
  }
  const expires = deps.settings.presignExpirySec;
  const prefix = workerFilesPrefix(task.rootJobId, task.depth, task.taskNo, task.jobPath);
  const files = await Promise.all(
    request.files.map(async (f) => {
      const path = safeRelativePath(f) as string;
      return { path, url: await deps.artifacts.presignPut(`${prefix}${path}`, expires) };
    }),
  );
  const log = request.include_log
    ? {
        url: await deps.artifacts.presignPut(
          workerLogKey(task.rootJobId, task.depth, task.taskNo, task.jobPath),
          expires,
        ),
      }
    : undefined;
  return { files, log, expires_in: expires };
}
