/**
 * Submit: write the job and its first tasks, then enqueue them. With an
 * Idempotency-Key the job id is derived from the key, so a retried submit
 * finds the same job and only re-sends what may not have been sent.
 */
import { givenSubtasks, resolveJobConfig, type SubmitBody } from '../core/api-schemas.ts';
import { conflict } from '../core/errors.ts';
import type { RunMessage } from '../core/messages.ts';
import type { JobRecord, SubtaskSpec, TaskRecord } from '../core/model.ts';
import { plannerPrompt } from '../core/planner.ts';
import { rootBudgetFor } from '../core/recursion-policy.ts';
import { canonicalHash, jobIdFor } from '../core/tokens.ts';
import type { Deps } from './deps.ts';

export interface SubmitInput {
  tenant: string;
  body: SubmitBody;
  idempotencyKey?: string | undefined;
}

export async function submitJob(
  deps: Deps,
  input: SubmitInput,
): Promise<{ job: JobRecord; created: boolean }> {
  const now = deps.now().toISOString();
  const config = resolveJobConfig(input.body, deps.settings.defaults);
  const jobId = jobIdFor(input.tenant, input.idempotencyKey, deps.randomBytes(16));
  const subtasks = givenSubtasks(input.body);
  const job: JobRecord = {
    jobId,
    tenant: input.tenant,
    status: subtasks ? 'running' : 'planning',
    request: input.body.request,
    config,
    depth: 0,
    rootJobId: jobId,
    path: '',
    totalTasks: subtasks?.length ?? 0,
    finishedTasks: [],
    createdAt: now,
    updatedAt: now,
    idempotencyKey: input.idempotencyKey,
    requestHash: canonicalHash(input.body),
    budget: rootBudgetFor(config, deps.settings.limits, subtasks?.length ?? 0),
  };
  const tasks = subtasks ? workTasks(job, subtasks, now) : [plannerTask(job, now)];

  // Tasks first: a crash before the job exists leaves nothing a caller can see,
  // and the retry (same derived id) writes the job over the same tasks.
  await deps.store.putTasks(tasks);
  const created = await deps.store.createJob(job);
  if (!created) {
    const existing = await deps.store.getJob(jobId);
    if (!existing) throw new Error(`job ${jobId} exists and vanished`);
    if (existing.requestHash !== job.requestHash) {
      throw conflict('Idempotency-Key was already used for a different request body');
    }
    await resendFirstAttempts(deps, existing);
    return { job: existing, created: false };
  }
  await deps.queue.sendAll(tasks.map(runMessage));
  deps.log.info('job submitted', { jobId, tasks: tasks.length, planning: !subtasks });
  return { job, created: true };
}

/**
 * A replayed submit cannot know whether the first one sent its messages; send
 * again for tasks still waiting on their first attempt. A duplicate is harmless:
 * the dispatcher's conditional claim lets only one delivery start a worker.
 */
async function resendFirstAttempts(deps: Deps, job: JobRecord): Promise<void> {
  const waiting = (await deps.store.listTasks(job.jobId)).filter(
    (t) => t.state === 'queued' && t.attempt === 1,
  );
  if (waiting.length > 0) await deps.queue.sendAll(waiting.map(runMessage));
}

export function runMessage(task: Pick<TaskRecord, 'jobId' | 'taskNo' | 'attempt'>): RunMessage {
  return { type: 'run', jobId: task.jobId, taskNo: task.taskNo, attempt: task.attempt };
}

function baseTask(job: JobRecord, now: string) {
  return {
    jobId: job.jobId,
    state: 'queued' as const,
    attempt: 1,
    maxRetries: job.config.maxRetries,
    timeoutSec: job.config.defaultTimeoutSec,
    depth: job.depth,
    rootJobId: job.rootJobId,
    jobPath: job.path,
    createdAt: now,
    updatedAt: now,
    attempts: [],
  };
}

export function plannerTask(job: JobRecord, now: string): TaskRecord {
  return {
    ...baseTask(job, now),
    taskNo: 0,
    kind: 'plan',
    title: 'Plan',
    prompt: plannerPrompt(job.request, job.config.maxWorkers),
  };
}

export function workTasks(job: JobRecord, subtasks: readonly SubtaskSpec[], now: string): TaskRecord[] {
  return subtasks.map((s, i) => ({
    ...baseTask(job, now),
    taskNo: i + 1,
    kind: 'work',
    title: s.title,
    prompt: s.prompt,
  }));
}
