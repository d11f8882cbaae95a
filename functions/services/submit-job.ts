/**
 * Submit: write the job and its first tasks, then enqueue them. With an
 * Idempotency-Key the job id is derived from the key, so a retried submit
 * finds the same job and only re-sends what may not have been sent.
 */
import { givenSubtasks, resolveJobConfig, type SubmitBody } from '../core/api-schemas.ts';
import { conflict } from '../core/errors.ts';
import { STEP_TASK_NO } from '../core/layout.ts';
import type { RunMessage } from '../core/messages.ts';
import type { JobRecord, JobSource, SubtaskSpec, TaskRecord } from '../core/model.ts';
import { plannerPrompt } from '../core/planner.ts';
import { rootBudgetFor } from '../core/recursion-policy.ts';
import { canonicalHash, jobIdFor } from '../core/tokens.ts';
import type { Deps } from './deps.ts';
import { resolveJobSource } from './sources.ts';

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
  const requestHash = canonicalHash(input.body);
  if (input.idempotencyKey !== undefined && input.body.source !== undefined) {
    // A replay must not copy the upload again over the base the first submit stored.
    const existing = await deps.jobs.getJob(jobId);
    if (existing) return replayed(deps, existing, requestHash);
  }
  const source = input.body.source
    ? await resolveJobSource(deps, input.tenant, jobId, input.body.source)
    : undefined;
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
    requestHash,
    budget: rootBudgetFor(config, deps.settings.limits, subtasks?.length ?? 0),
    ...(source ? { source } : {}),
  };
  const tasks = firstTasks(job, subtasks, now);

  // Tasks first: a crash before the job exists leaves nothing a caller can see,
  // and the retry (same derived id) writes the job over the same tasks.
  await deps.tasks.putTasks(tasks);
  const created = await deps.jobs.createJob(job);
  if (!created) {
    const existing = await deps.jobs.getJob(jobId);
    if (!existing) throw new Error(`job ${jobId} exists and vanished`);
    return replayed(deps, existing, requestHash);
  }
  await deps.queue.sendAll(tasks.filter((t) => t.state === 'queued').map(runMessage));
  deps.log.info('job submitted', { jobId, tasks: tasks.length, planning: !subtasks, source: source?.kind });
  return { job, created: true };
}

async function replayed(
  deps: Deps,
  existing: JobRecord,
  requestHash: string,
): Promise<{ job: JobRecord; created: boolean }> {
  if (existing.requestHash !== requestHash) {
    throw conflict('Idempotency-Key was already used for a different request body');
  }
  await resendFirstAttempts(deps, existing);
  return { job: existing, created: false };
}

/**
 * The tasks a new job (or child job) starts with: the planner or the given
 * work tasks. A git URL must be fetched first: its source step is queued and
 * the rest wait as `pending` until it has stored the base.
 */
export function firstTasks(
  job: JobRecord,
  subtasks: readonly SubtaskSpec[] | undefined,
  now: string,
): TaskRecord[] {
  const tasks = subtasks ? workTasks(job, subtasks, now) : [plannerTask(job, now)];
  if (job.source?.kind !== 'git' || job.source.baseCommit) return tasks;
  return [stepTask(job, 'source', now), ...tasks.map((t) => ({ ...t, state: 'pending' as const }))];
}

/**
 * A replayed submit cannot know whether the first one sent its messages; send
 * again for tasks still waiting on their first attempt. A duplicate is harmless:
 * the dispatcher's conditional claim lets only one delivery start a worker.
 */
async function resendFirstAttempts(deps: Deps, job: JobRecord): Promise<void> {
  const waiting = (await deps.tasks.listTasks(job.jobId)).filter(
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
    ...(job.depth === 0 && job.budget
      ? { spendLimits: { maxSpendUsd: job.budget.maxSpendUsd, maxWorkers: job.config.maxWorkers } }
      : {}),
  };
}

export function plannerTask(job: JobRecord, now: string): TaskRecord {
  return {
    ...baseTask(job, now),
    taskNo: 0,
    kind: 'plan',
    title: 'Plan',
    prompt: plannerPrompt(job.request, job.config.maxWorkers, job.source !== undefined),
  };
}

const STEP_TITLES = {
  source: 'Fetch the repository',
  merge: "Merge the workers' commits",
  push: 'Push the result branch',
} as const;

/** A repository step of a job (fetch, merge, push): a task of its own kind, outside the work count. */
export function stepTask(job: JobRecord, kind: keyof typeof STEP_TASK_NO, now: string): TaskRecord {
  return {
    ...baseTask(job, now),
    taskNo: STEP_TASK_NO[kind],
    kind,
    title: STEP_TITLES[kind],
    prompt: '',
  };
}

/** Whether the job works on a repository whose base commit is known. */
export function hasBase(source: JobSource | undefined): source is JobSource & { baseCommit: string } {
  return source?.baseCommit !== undefined;
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
