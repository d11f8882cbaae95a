/**
 * Poison messages: a work message that reached the dead-letter queue failed
 * every delivery. Its task (or job) is marked failed with the reason, so
 * nothing stays queued or running forever and the job still reaches a final
 * state with its reports.
 */
import type { WorkMessage } from '../core/messages.ts';
import { isTerminalJobStatus, isTerminalTaskState } from '../core/task-states.ts';
import { aggregateJob, writeTreeReports } from './aggregate.ts';
import type { Deps } from './deps.ts';
import { followUp, recordLostWorker } from './record-result.ts';

export async function handleDeadLetter(
  deps: Deps,
  message: WorkMessage,
  receiveCount: number,
): Promise<void> {
  const reason = `its work message failed ${receiveCount} deliveries and went to the dead-letter queue`;
  if (message.type === 'run') {
    const { jobId, taskNo, attempt } = message;
    const task = await deps.tasks.getTask(jobId, taskNo);
    if (!task || task.attempt !== attempt || isTerminalTaskState(task.state)) return;
    if (task.state === 'queued') {
      const now = deps.now().toISOString();
      const failed = await deps.tasks.endAttempt(
        jobId,
        taskNo,
        attempt,
        ['queued'],
        { state: 'failed', attempt },
        { attempt, state: 'failed', error: `the task could never start: ${reason}`, finishedAt: now },
        undefined,
        now,
      );
      if (failed) await followUp(deps, failed, now);
    } else {
      await recordLostWorker(
        deps,
        { jobId, taskNo, attempt },
        `the worker could not be managed: ${reason}`,
        undefined,
        'failed',
        false,
      );
    }
    deps.log.error('poison run message: task failed', { jobId, taskNo, attempt });
    return;
  }
  const job = await deps.jobs.getJob(message.jobId);
  if (!job) return;
  if (message.type === 'aggregate' && !isTerminalJobStatus(job.status)) {
    const now = deps.now().toISOString();
    const moved = await deps.jobs.transitionJob(job.jobId, job.status, 'failed', now, {
      error: `aggregation failed: ${reason}`,
    });
    if (moved) deps.metrics.jobFinished('failed');
    deps.log.error('poison aggregate message: job failed', { jobId: job.jobId });
    // A failed child still completes the parent task that waits for it.
    if (job.depth > 0) await aggregateJob(deps, job.jobId);
  } else {
    deps.log.error('poison message', { type: message.type, jobId: job.jobId });
  }
  // Best effort: the reports may be what failed in the first place.
  const root = job.depth === 0 ? job : await deps.jobs.getJob(job.rootJobId);
  if (root) await writeTreeReports(deps, (await deps.jobs.getJob(root.jobId)) ?? root).catch(() => undefined);
}
