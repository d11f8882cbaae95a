/**
 * Aggregate a job whose tasks are all final: write its level report, final
 * report and result.json, then set its final status. Reports are written
 * before the status so a crash in between is repaired by the redelivery; the
 * status write is conditional, so running twice changes nothing.
 */

import { finalReportKey, levelReportKey, resultJsonKey } from '../core/layout.ts';
import type { JobRecord } from '../core/model.ts';
import { renderFinalReport, renderLevelReport, renderResultJson } from '../core/reports.ts';
import type { ResultContext } from '../core/result-format.ts';
import {
  finalJobStatus,
  isTerminalJobStatus,
  isTerminalTaskState,
  type JobStatus,
} from '../core/task-states.ts';
import type { Deps } from './deps.ts';

export type AggregateOutcome = 'aggregated' | 'already_final' | 'not_ready' | 'missing';

export async function aggregateJob(deps: Deps, jobId: string): Promise<AggregateOutcome> {
  const job = await deps.store.getJob(jobId);
  if (!job) return 'missing';
  if (isTerminalJobStatus(job.status)) return 'already_final';
  const tasks = await deps.store.listTasks(jobId);
  const planner = tasks.find((t) => t.kind === 'plan');
  const work = tasks.filter((t) => t.kind === 'work');

  let status: JobStatus;
  let error: string | undefined;
  if (job.status === 'planning') {
    if (!planner || !isTerminalTaskState(planner.state) || planner.state === 'succeeded') return 'not_ready';
    status = 'failed';
    error = `planning failed: ${planner.result?.error ?? planner.state}`;
  } else {
    if (work.length < job.totalTasks || work.some((t) => !isTerminalTaskState(t.state))) {
      deps.log.warn('aggregate before every task was final; waiting for the rest', { jobId });
      return 'not_ready';
    }
    status = finalJobStatus(work.map((t) => t.state));
  }

  const now = deps.now().toISOString();
  const finished: JobRecord = { ...job, status, finishedAt: now, updatedAt: now, error: error ?? job.error };
  const ctx: ResultContext = {
    bucket: deps.artifacts.bucket,
    now,
    workspace: deps.artifacts.uri(`jobs/${job.rootJobId}/`),
  };
  await deps.artifacts.putText(
    levelReportKey(job.rootJobId, job.depth),
    renderLevelReport(finished, tasks, ctx),
    'text/markdown; charset=utf-8',
  );
  await deps.artifacts.putText(
    resultJsonKey(job.rootJobId),
    renderResultJson(finished, tasks, ctx),
    'application/json',
  );
  await deps.artifacts.putText(
    finalReportKey(job.rootJobId),
    renderFinalReport(finished, tasks, ctx),
    'text/markdown; charset=utf-8',
  );
  const moved = await deps.store.transitionJob(jobId, job.status, status, now, error ? { error } : {});
  deps.log.info('job finished', { jobId, status, moved: Boolean(moved) });
  return 'aggregated';
}
