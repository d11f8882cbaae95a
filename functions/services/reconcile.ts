/**
 * The reconciler: finds attempts whose worker is gone without a result and
 * records them as failed (retried while retries remain), so no task stays
 * `launching` or `running` forever. Fed by worker-stopped events (ECS task
 * state changes, local process exits) and by a periodic sweep.
 */
import type { WorkerMonitor } from '../adapters/launcher.ts';
import type { TaskRecord } from '../core/model.ts';
import { isLiveTaskState, isTerminalTaskState } from '../core/task-states.ts';
import type { Deps } from './deps.ts';
import { followUp, recordLostWorker } from './record-result.ts';
import { runMessage } from './submit-job.ts';

export interface SweepOptions {
  /** Most tasks one sweep looks at. */
  limit: number;
  /** A claimed task whose launch never stored a handle after this long is lost (the dispatcher died). */
  launchGraceMs: number;
  /** A running worker this long past its timeout is stopped and counted as failed. */
  overrunGraceMs: number;
  /** A queued task untouched this long gets its run message again (the first may have been lost). */
  requeueAfterMs: number;
  /** A final task still waiting for its job to count it after this long has its follow-up redone. */
  followUpGraceMs: number;
}

export const DEFAULT_SWEEP: SweepOptions = {
  limit: 500,
  launchGraceMs: 5 * 60_000,
  overrunGraceMs: 5 * 60_000,
  requeueAfterMs: 15 * 60_000,
  followUpGraceMs: 60_000,
};

export interface SweepReport {
  examined: number;
  lost: number;
  overdue: number;
  requeued: number;
  /** Final tasks whose follow-up steps (count, plan start, aggregate) had not completed. */
  followedUp: number;
}

export async function sweepActiveTasks(
  deps: Deps,
  monitor: WorkerMonitor,
  options: SweepOptions = DEFAULT_SWEEP,
): Promise<SweepReport> {
  const now = deps.now().getTime();
  const tasks = await deps.tasks.listActiveTasks(options.limit);
  const report: SweepReport = { examined: tasks.length, lost: 0, overdue: 0, requeued: 0, followedUp: 0 };
  const age = (iso: string | undefined) => (iso ? now - Date.parse(iso) : 0);

  const withHandle = tasks.filter((t) => isLiveTaskState(t.state) && t.launchHandle);
  const statuses =
    withHandle.length > 0 ? await monitor.status(withHandle.map((t) => t.launchHandle as string)) : new Map();

  for (const task of tasks) {
    const scope = { jobId: task.jobId, taskNo: task.taskNo, attempt: task.attempt };
    if (isTerminalTaskState(task.state)) {
      // Its writer stopped between the final write and the follow-up: finish the follow-up (idempotent).
      if (age(task.updatedAt) > options.followUpGraceMs) {
        await followUp(deps, task, new Date(now).toISOString());
        report.followedUp += 1;
      }
      continue;
    }
    if (task.state === 'queued') {
      if (age(task.updatedAt) > options.requeueAfterMs) {
        await deps.queue.send(runMessage(task));
        report.requeued += 1;
      }
      continue;
    }
    if (!isLiveTaskState(task.state)) continue;
    if (!task.launchHandle) {
      if (age(task.launchedAt ?? task.updatedAt) > options.launchGraceMs) {
        if (
          await recordLostWorker(
            deps,
            scope,
            'the worker was claimed but never launched (dispatcher stopped?)',
          )
        )
          report.lost += 1;
      }
      continue;
    }
    const status = statuses.get(task.launchHandle);
    if (status?.state === 'stopped' || status?.state === 'missing') {
      const reason = status.state === 'stopped' ? status.reason : 'the launcher no longer knows this worker';
      const exitCode = status.state === 'stopped' ? status.exitCode : undefined;
      if (await recordLostWorker(deps, scope, reason, exitCode)) report.lost += 1;
      continue;
    }
    if (isOverdue(task, now, options.overrunGraceMs)) {
      await monitor.stop(task.launchHandle, `overran its timeout of ${task.timeoutSec}s`);
      const reason = `the worker overran its timeout of ${task.timeoutSec}s and was stopped`;
      if (await recordLostWorker(deps, scope, reason, undefined, 'timed_out')) report.overdue += 1;
      continue;
    }
    const silentMs = task.state === 'running' ? silence(task, now) : 0;
    if (silentMs > deps.settings.worker.heartbeatTimeoutSec * 1000) {
      const reason = `the worker sent no progress or heartbeat for ${Math.round(silentMs / 1000)}s (workers.heartbeat_timeout ${deps.settings.worker.heartbeatTimeoutSec}s): stopped as lost`;
      await monitor.stop(task.launchHandle, reason);
      if (await recordLostWorker(deps, scope, reason)) report.lost += 1;
    }
  }
  await repairSlotCounters(deps, tasks, options.limit);
  if (report.lost + report.overdue + report.requeued + report.followedUp > 0)
    deps.log.info('sweep repaired tasks', { ...report });
  return report;
}

/**
 * A crash between a task's last write and its slot release leaves a counter
 * too high, which would hold the job's queued tasks back. Recount from the
 * tasks themselves (conditional on the value read, so a concurrent take wins).
 */
async function repairSlotCounters(deps: Deps, active: readonly TaskRecord[], limit: number): Promise<void> {
  const running = (t: TaskRecord) => isLiveTaskState(t.state);
  for (const jobId of new Set(active.map((t) => t.jobId))) {
    const counted = (await deps.jobs.getJob(jobId))?.runningTasks ?? 0;
    const actual = (await deps.tasks.listTasks(jobId)).filter(running).length;
    if (counted > actual && (await deps.slots.repairJob(jobId, counted, actual))) {
      deps.log.warn('repaired a running-slot counter', { jobId, counted, actual });
    }
  }
  // The deployment counter can only be recounted when the sweep saw every active task.
  if (active.length < limit) {
    const counted = await deps.slots.readGlobal();
    const actual = active.filter(running).length;
    if (counted > actual && (await deps.slots.repairGlobal(counted, actual))) {
      deps.log.warn('repaired the deployment running-slot counter', { counted, actual });
    }
  }
}

/** How long the running attempt has been silent: since its last progress post, or since it started. */
function silence(task: TaskRecord, now: number): number {
  const last =
    task.heartbeatAttempt === task.attempt && task.heartbeatAt !== undefined
      ? task.heartbeatAt
      : Date.parse(task.startedAt ?? task.launchedAt ?? task.updatedAt);
  return now - last;
}

function isOverdue(task: TaskRecord, now: number, graceMs: number): boolean {
  const started = Date.parse(task.startedAt ?? task.launchedAt ?? task.updatedAt);
  return now > started + task.timeoutSec * 1000 + graceMs;
}
