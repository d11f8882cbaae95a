/**
 * Cancel: the API marks the job cancelled and enqueues a `cancel` message;
 * the queue consumer, which holds the launcher, then cancels every
 * descendant job and task and stops their running workers. Results that
 * arrive afterwards are kept as late and change nothing.
 */
import { conflict } from '../core/errors.ts';
import type { JobRecord } from '../core/model.ts';
import { isLiveTaskState, isTerminalJobStatus } from '../core/task-states.ts';
import { aggregateJob, writeTreeReports } from './aggregate.ts';
import type { Deps, DispatchDeps } from './deps.ts';
import { descendantsOf } from './job-tree.ts';

/**
 * Cancels a job that is still going. A job already cancelled is answered as
 * it is (`changed: false`), as every repeated call here is: the cancel message
 * is sent again, which does nothing to a tree already cancelled and finishes
 * one whose first message was lost. A job that ended otherwise is a conflict.
 */
export async function requestCancel(
  deps: Deps,
  job: JobRecord,
): Promise<{ job: JobRecord; changed: boolean }> {
  if (job.status === 'cancelled') {
    await deps.queue.send({ type: 'cancel', jobId: job.jobId });
    return { job, changed: false };
  }
  if (isTerminalJobStatus(job.status)) throw conflict(`job ${job.jobId} already ended ${job.status}`);
  const now = deps.now().toISOString();
  const moved = await deps.jobs.transitionJob(job.jobId, job.status, 'cancelled', now);
  if (!moved) {
    const fresh = await deps.jobs.getJob(job.jobId);
    if (fresh?.status !== 'cancelled')
      throw conflict(`job ${job.jobId} changed while being cancelled; try again`);
  }
  await deps.queue.send({ type: 'cancel', jobId: job.jobId });
  deps.log.info('job cancel requested', { jobId: job.jobId });
  return { job: { ...job, status: 'cancelled', finishedAt: now }, changed: true };
}

/** Cancels the job's whole subtree and stops its workers. Safe to run again. */
export async function cancelTree(
  deps: DispatchDeps,
  jobId: string,
): Promise<{ tasks: number; stopped: number }> {
  const job = await deps.jobs.getJob(jobId);
  if (!job) return { tasks: 0, stopped: 0 };
  const jobs = [job, ...(await descendantsOf(deps, job))];
  const now = deps.now().toISOString();
  let tasks = 0;
  let stopped = 0;
  await Promise.all(
    jobs.map(async (j) => {
      if (!isTerminalJobStatus(j.status)) await deps.jobs.transitionJob(j.jobId, j.status, 'cancelled', now);
      for (const task of await deps.tasks.listTasks(j.jobId)) {
        const before = await deps.tasks.cancelTask(j.jobId, task.taskNo, now);
        if (!before) continue;
        tasks += 1;
        if (isLiveTaskState(before.state)) {
          await deps.slots.release(j.jobId);
          if (before.launchHandle) {
            await deps.launcher.stop(before.launchHandle, `job ${jobId} was cancelled`);
            stopped += 1;
          }
        }
      }
    }),
  );
  deps.log.info('job tree cancelled', { jobId, jobs: jobs.length, tasks, stopped });
  // A cancelled hand-off child fails the parent task that waited for it (unless that one was cancelled too).
  if (job.depth > 0) await aggregateJob(deps, job.jobId);
  const root = job.depth === 0 ? job : await deps.jobs.getJob(job.rootJobId);
  if (root) await writeTreeReports(deps, (await deps.jobs.getJob(root.jobId)) ?? root);
  return { tasks, stopped };
}
