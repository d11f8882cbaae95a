/**
 * A worker creates a child job under its own task, through the same submit
 * route, with its task token. Everything that bounds recursion is read from
 * the parent chain and the root's budget: the body cannot raise a limit.
 *
 * `handoff` (decompose): the parent task goes `waiting_on_child` and its
 * container exits; the child's end completes it. `wait` (spawn-and-wait):
 * the parent keeps running and reads the child's results through the API.
 */
import { givenSubtasks, type SubmitBody } from '../core/api-schemas.ts';
import { badRequest, conflict, forbidden, limitExceeded } from '../core/errors.ts';
import { OBJECT_ID } from '../core/git-source.ts';
import { childJobPath, childLinkKey, snapshotBundleKey } from '../core/layout.ts';
import type { JobRecord, JobSource, TaskRecord } from '../core/model.ts';
import { childCreatorRefusal, childRefusal, tasksRefusal } from '../core/recursion-policy.ts';
import type { TaskTokenScope } from '../core/tokens.ts';
import { canonicalHash, sha256Hex } from '../core/tokens.ts';
import { requestCancel } from './cancel.ts';
import type { Deps } from './deps.ts';
import { meteredCostOf, settleMeteredAttempt } from './model-gateway.ts';
import { firstTasks, runMessage } from './submit-job.ts';

export type ChildMode = 'handoff' | 'wait';

export interface ChildRequest {
  scope: TaskTokenScope;
  body: SubmitBody;
  mode: ChildMode;
  idempotencyKey?: string | undefined;
  /** What the worker spent deciding to split (a hand-off ends its attempt's spending). */
  decideCostUsd?: number | undefined;
  /** The commit of the worker's checkout, in its uploaded snapshot bundle (repository jobs). */
  sourceCommit?: string | undefined;
}

export async function createChildJob(
  deps: Deps,
  input: ChildRequest,
): Promise<{ job: JobRecord; created: boolean }> {
  const { scope, body, mode } = input;
  const task = await deps.tasks.getTask(scope.jobId, scope.taskNo);
  // A hand-off already recorded, asked for again (its answer was lost): the same child, as the first time.
  if (
    mode === 'handoff' &&
    task?.attempt === scope.attempt &&
    task.state === 'waiting_on_child' &&
    task.childJobId
  ) {
    const child = await deps.jobs.getJob(task.childJobId);
    if (child && child.parentAttempt === scope.attempt) return { job: child, created: false };
  }
  if (!task || task.attempt !== scope.attempt || task.state !== 'running') {
    deps.log.warn('child job refused: token no longer valid', { ...scope, state: task?.state });
    throw forbidden('this task token is no longer valid for creating child jobs');
  }
  const notCreator = childCreatorRefusal(task.kind);
  if (notCreator) {
    deps.log.warn('child job refused: not a work task', { ...scope, kind: task.kind });
    throw forbidden(notCreator);
  }
  const parent = await deps.jobs.getJob(task.jobId);
  const root = parent && parent.depth === 0 ? parent : await deps.jobs.getJob(task.rootJobId);
  if (!parent || !root) throw conflict('the parent job is gone');

  // A retry finds the job its first call created, before any limit counts it a second time.
  const jobId = childJobId(task, scope.attempt, mode, input.idempotencyKey, deps.randomBytes(16));
  const existing = await deps.jobs.getJob(jobId);
  if (existing) {
    // A retried hand-off whose first call created the child but did not get to record the hand-off
    // (an error, a crash): finish it now, or the child would run with nobody waiting for it.
    if (mode === 'handoff')
      await startChild(deps, task, input, root, existing, await deps.tasks.listTasks(jobId));
    return { job: existing, created: false };
  }

  if (body.source !== undefined) {
    throw badRequest("a child job works on its parent worker's checkout", [
      { path: 'source', message: 'not allowed for child jobs' },
    ]);
  }
  const source = parent.source ? await childSource(deps, task, parent.source, input.sourceCommit) : undefined;
  const subtasks = givenSubtasks(body);
  if (mode === 'handoff' && !subtasks)
    throw badRequest('a hand-off to a child job needs its tasks', [
      { path: 'tasks', message: 'required for x-child-mode: handoff' },
    ]);
  // A planned child may get up to max_workers tasks; reserve for that many now.
  const requested = subtasks?.length ?? root.config.maxWorkers;
  const refusal = childRefusal(root, parent, requested);
  if (refusal) {
    deps.log.warn('child job refused by a limit', { ...scope, limit: refusal.limit });
    throw limitExceeded(refusal.limit, refusal.message, refusal.details);
  }

  const now = deps.now().toISOString();
  if (!(await deps.budget.reserveTasks(root, requested, now, true))) {
    const fresh = (await deps.jobs.getJob(root.jobId)) ?? root;
    const r = tasksRefusal(fresh, requested);
    deps.log.warn('child job refused by a limit', { ...scope, limit: r.limit });
    throw limitExceeded(r.limit, r.message, r.details);
  }

  const job: JobRecord = {
    jobId,
    tenant: parent.tenant,
    status: subtasks ? 'running' : 'planning',
    request: body.request,
    // Children inherit the root's settings; a body cannot raise them.
    config: {
      ...root.config,
      maxWorkers: Math.min(root.config.maxWorkers, body.config?.max_workers ?? root.config.maxWorkers),
    },
    depth: parent.depth + 1,
    rootJobId: root.jobId,
    parentJobId: parent.jobId,
    parentTaskNo: task.taskNo,
    parentAttempt: scope.attempt,
    childMode: mode,
    path: childJobPath(parent.path, task.taskNo),
    totalTasks: subtasks?.length ?? 0,
    finishedTasks: [],
    createdAt: now,
    updatedAt: now,
    idempotencyKey: input.idempotencyKey,
    requestHash: canonicalHash(body),
    ...(source ? { source } : {}),
  };
  const tasks = firstTasks(job, subtasks, now);
  try {
    await deps.tasks.putTasks(tasks);
    if (!(await deps.jobs.createJob(job))) {
      // Another call created it first (a retried POST): its reservation stands, ours goes back.
      await deps.budget.releaseTasks(root.jobId, requested);
      const first = (await deps.jobs.getJob(jobId)) as JobRecord;
      if (mode === 'handoff')
        await startChild(deps, task, input, root, first, await deps.tasks.listTasks(jobId));
      return { job: first, created: false };
    }
  } catch (err) {
    await deps.budget.releaseTasks(root.jobId, requested);
    throw err;
  }
  await startChild(deps, task, input, root, job, tasks);
  deps.log.info('child job created', {
    jobId,
    parentJobId: parent.jobId,
    parentTaskNo: task.taskNo,
    depth: job.depth,
    mode,
    tasks: tasks.length,
  });
  return { job, created: true };
}

/**
 * After the child job exists: a hand-off is recorded on the parent task (its
 * attempt ends waiting for the child; its slot and spend go back), then the
 * child's link is written and its queued tasks are sent. Safe to repeat: a
 * hand-off already recorded for this child stands, and a task sent twice is
 * claimed once. A parent attempt that ended first gets its child cancelled.
 */
async function startChild(
  deps: Deps,
  task: TaskRecord,
  input: ChildRequest,
  root: JobRecord,
  job: JobRecord,
  tasks: readonly TaskRecord[],
): Promise<void> {
  const { scope, mode } = input;
  const jobId = job.jobId;
  const now = deps.now().toISOString();
  if (mode === 'handoff') {
    // With the model gateway, what the decision cost is what it metered; the worker's figure is kept beside it.
    const metered = meteredCostOf(task);
    const cost = metered ?? input.decideCostUsd ?? 0;
    const record = {
      attempt: scope.attempt,
      state: 'waiting_on_child' as const,
      costUsd: cost,
      ...(metered !== undefined ? { reportedCostUsd: input.decideCostUsd ?? 0 } : {}),
      finishedAt: now,
    };
    const waiting = await deps.tasks.handoffToChild(task, scope.attempt, jobId, record, now);
    if (waiting) {
      // The parent's container exits now: its running slot goes back.
      await deps.slots.release(task.jobId);
      // The parent's own spending ends here: its reservation becomes what the decision cost.
      const reserved = task.budgetAttempt === scope.attempt ? (task.budgetUsd ?? 0) : 0;
      if (!(await settleMeteredAttempt(deps, task)))
        await deps.budget.settleSpend(root.jobId, reserved, cost);
    } else if (!(await handedOffTo(deps, task, jobId))) {
      // The attempt ended (its worker was found lost, timed out, cancelled) between our checks and
      // the hand-off: nobody will wait for this child, so it must not run. Found by FAULT_SEED=40035032.
      deps.log.warn('parent task moved on before the hand-off was recorded: child job cancelled', {
        ...scope,
        childJobId: jobId,
      });
      await requestCancel(deps, job);
      throw conflict(
        `attempt ${scope.attempt} of task ${task.taskNo} ended before its hand-off was recorded; child job ${jobId} was cancelled`,
      );
    }
  }
  await deps.artifacts.putText(
    childLinkKey(root.jobId, task.depth, task.taskNo, task.jobPath),
    `${JSON.stringify({ child_job_id: jobId, mode, depth: job.depth, parent_job_id: job.parentJobId, parent_task_no: task.taskNo, tasks: tasks.map((t) => ({ task_no: t.taskNo, title: t.title })), created_at: job.createdAt }, null, 2)}\n`,
    'application/json',
  );
  await deps.queue.sendAll(tasks.filter((t) => t.state === 'queued').map(runMessage));
}

/** Whether the parent attempt already waits for this child (a hand-off recorded by an earlier call). */
async function handedOffTo(deps: Deps, task: TaskRecord, childJobId: string): Promise<boolean> {
  const fresh = await deps.tasks.getTask(task.jobId, task.taskNo);
  return fresh?.state === 'waiting_on_child' && fresh.childJobId === childJobId;
}

/**
 * A child job starts from its parent worker's checkout: the parent's base, or
 * the snapshot of the checkout the worker uploaded before handing off.
 */
async function childSource(
  deps: Deps,
  task: TaskRecord,
  parent: JobSource,
  snapshotCommit: string | undefined,
): Promise<JobSource> {
  if (!parent.baseCommit) throw conflict('the parent job has no fetched repository yet');
  const inherited = { kind: 'parent' as const, bundles: [...parent.bundles], baseCommit: parent.baseCommit };
  if (snapshotCommit === undefined || snapshotCommit === parent.baseCommit) return inherited;
  if (!OBJECT_ID.test(snapshotCommit))
    throw badRequest('x-source-commit must be a full git object id', [
      { path: 'x-source-commit', message: 'expected 40 or 64 hex digits' },
    ]);
  const key = snapshotBundleKey(task.rootJobId, task.depth, task.taskNo, task.jobPath);
  if ((await deps.artifacts.size(key)) === undefined)
    throw badRequest('x-source-commit names a snapshot that was not uploaded', [
      { path: 'x-source-commit', message: 'upload the snapshot bundle first' },
    ]);
  return { ...inherited, bundles: [...parent.bundles, key], baseCommit: snapshotCommit, ownBundle: key };
}

/** One hand-off per attempt (a retried POST finds it again); wait-mode children are keyed by Idempotency-Key when given. */
function childJobId(
  task: TaskRecord,
  attempt: number,
  mode: ChildMode,
  key: string | undefined,
  random: Buffer,
): string {
  if (mode === 'handoff') return sha256Hex(`handoff\n${task.jobId}\n${task.taskNo}\n${attempt}`).slice(0, 20);
  if (key !== undefined)
    return sha256Hex(`wait\n${task.jobId}\n${task.taskNo}\n${attempt}\n${key}`).slice(0, 20);
  return random.toString('hex').slice(0, 20);
}
