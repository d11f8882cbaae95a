/**
 * Aggregate a job whose tasks are all final: set its final status, complete
 * the parent task a hand-off child was created for (which may finish the
 * parent job in turn, up to the root), and write the reports of the whole
 * tree when the root is done. Reports are written before the root's status,
 * so a crash in between is repaired by the redelivery; every status write is
 * conditional, so running twice changes nothing.
 */
import { tasksCostUsd } from '../core/accounting.ts';
import { finalReportKey, jobPrefix, reportHtmlKey, resultJsonKey } from '../core/layout.ts';
import { childCommit, owedStep, repositoryOutcome, sourceFailure } from '../core/merge-plan.ts';
import type { JobRecord, TaskRecord } from '../core/model.ts';
import { childResultsOf, parentOutcome } from '../core/recursion-policy.ts';
import { renderReportHtml } from '../core/report-html.ts';
import { renderTreeReports } from '../core/reports.ts';
import type { JobResult, TreeNode } from '../core/result-format.ts';
import {
  finalJobStatus,
  isSuccessfulTaskState,
  isTerminalJobStatus,
  isTerminalTaskState,
  type JobStatus,
} from '../core/task-states.ts';
import type { AggregateOutcome, Deps } from './deps.ts';
import { followUp, nextStepOrAggregate } from './record-result.ts';

/**
 * `known`: the job as the caller's last write returned it (inline aggregation); read otherwise.
 * `early`: its tasks as read beside that write, used only when every work task in it is final.
 */
export async function aggregateJob(
  deps: Deps,
  jobId: string,
  known?: JobRecord,
  early?: Promise<TaskRecord[]>,
): Promise<AggregateOutcome> {
  // Side by side: the tasks are read for nothing only on a replay of a job already final.
  const [job, tasks] = await Promise.all([
    known ?? deps.jobs.getJob(jobId),
    known && early ? finalTasksOr(deps, known, early) : deps.tasks.listTasks(jobId),
  ]);
  if (!job) return 'missing';
  if (isTerminalJobStatus(job.status)) {
    // A replay after a crash between the status write and the cascade: finish the cascade.
    if (job.depth > 0) await completeParent(deps, job, job.status, tasks);
    return 'already_final';
  }
  const planner = tasks.find((t) => t.kind === 'plan');
  const work = tasks.filter((t) => t.kind === 'work');

  let status: JobStatus;
  let error: string | undefined;
  const unfetched = sourceFailure(job, tasks);
  if (unfetched) {
    status = 'failed';
    error = unfetched;
    // Tasks that waited for the repository can never start.
    const now = deps.now().toISOString();
    await Promise.all(
      tasks.filter((t) => t.state === 'pending').map((t) => deps.tasks.cancelTask(jobId, t.taskNo, now)),
    );
  } else if (job.status === 'planning') {
    if (!planner || !isTerminalTaskState(planner.state) || planner.state === 'succeeded') return 'not_ready';
    status = 'failed';
    error = `planning failed: ${planner.result?.error ?? planner.attempts.at(-1)?.error ?? planner.state}`;
  } else {
    if (work.length < job.totalTasks || work.some((t) => !isTerminalTaskState(t.state))) {
      deps.log.warn('aggregate before every task was final; waiting for the rest', { jobId });
      return 'not_ready';
    }
    const owed = owedStep(job, tasks);
    if (owed) {
      deps.log.warn(`aggregate before the ${owed.kind} step was final; waiting for it`, { jobId });
      // Its creation may have been lost with a crash: starting it again is harmless.
      if (!owed.task) await nextStepOrAggregate(deps, jobId, deps.now().toISOString(), job);
      return 'not_ready';
    }
    const outcome = repositoryOutcome(job, tasks, finalJobStatus(work.map((t) => t.state)));
    status = outcome.status;
    error = outcome.error;
  }

  const now = deps.now().toISOString();
  const finalRoot = { ...job, status, finishedAt: now, updatedAt: now, error: error ?? job.error };
  const drawn = job.depth === 0 ? await writeTreeReports(deps, finalRoot, tasks) : undefined;
  const moved = await deps.jobs.transitionJob(jobId, job.status, status, now, error ? { error } : {});
  if (moved) deps.metrics.jobFinished(status);
  // A child that ended between the reports' reading and this write saw the root still open and
  // left the reports alone: look again now that the root is final.
  if (moved && drawn) await settleTreeReports(deps, finalRoot, drawn);
  deps.log.info('job finished', {
    jobId,
    status,
    depth: job.depth,
    moved: Boolean(moved),
    tasks: tasks.length,
    succeeded: tasks.filter((t) => isSuccessfulTaskState(t.state)).length,
    costUsd: tasksCostUsd(tasks),
    ...(error ? { error } : {}),
  });
  if (job.depth > 0) {
    // A planned child reserved max_workers tasks up front; a plan that never came gives them back (once).
    if (moved && job.status === 'planning')
      await deps.budget.releaseTasks(job.rootJobId, job.config.maxWorkers);
    await completeParent(deps, job, status, tasks);
    // A child that outlives its root (spawned without --wait) still shows up in the root's reports.
    const root = await deps.jobs.getJob(job.rootJobId);
    if (root && isTerminalJobStatus(root.status))
      await settleTreeReports(deps, root, await writeTreeReports(deps, root));
  }
  return 'aggregated';
}

/**
 * The tasks read beside the write that completed the job, when they show every
 * work task final: a final task does not change state again, so they are what
 * a read now would return. Otherwise (a sibling ended between that read and
 * the write, or the read failed) they are read again.
 */
async function finalTasksOr(deps: Deps, job: JobRecord, early: Promise<TaskRecord[]>): Promise<TaskRecord[]> {
  const tasks = await early.catch(() => undefined);
  const work = tasks?.filter((t) => t.kind === 'work') ?? [];
  if (tasks && work.length >= job.totalTasks && work.every((t) => isTerminalTaskState(t.state))) return tasks;
  return deps.tasks.listTasks(job.jobId);
}

/** The hand-off parent waiting for this child ends with it, and is counted in its own job. */
async function completeParent(
  deps: Deps,
  child: JobRecord,
  status: JobStatus,
  childTasks?: JobRecord[] | unknown,
): Promise<void> {
  if (child.childMode !== 'handoff' || !child.parentJobId || child.parentTaskNo === undefined) return;
  const tasks: TaskRecord[] = Array.isArray(childTasks)
    ? (childTasks as TaskRecord[])
    : await deps.tasks.listTasks(child.jobId);
  const git = childCommit(child, tasks, status);
  const results = { ...childResultsOf(tasks, status), ...(git ? { git } : {}) };
  const to = parentOutcome(status);
  const now = deps.now().toISOString();
  const error = to === 'failed' ? `child job ${child.jobId} ended ${status}` : undefined;
  const parent =
    (await deps.tasks.completeFromChild(
      child.parentJobId,
      child.parentTaskNo,
      child.jobId,
      to,
      results,
      error,
      now,
    )) ?? (await deps.tasks.getTask(child.parentJobId, child.parentTaskNo));
  // Already completed by an earlier delivery: followUp is idempotent and finishes what that one left undone.
  if (parent && parent.childJobId === child.jobId && isTerminalTaskState(parent.state))
    await followUp(deps, parent, now);
}

/** Rewrites of one tree's reports, after its first, while its descendants keep changing under it. */
const MAX_REPORT_REWRITES = 3;

/** The root (as given) and every descendant job with its tasks, as the table has them now. */
async function readTree(deps: Deps, root: JobRecord, rootTasks?: TaskRecord[]): Promise<TreeNode[]> {
  // Most jobs have no children: skip the tree query for them.
  const descendants = root.hasChildren ? await deps.jobs.listDescendants(root.jobId) : [];
  return [
    { job: root, tasks: rootTasks ?? (await deps.tasks.listTasks(root.jobId)) },
    ...(await Promise.all(
      descendants.map(async (job) => ({ job, tasks: await deps.tasks.listTasks(job.jobId) })),
    )),
  ];
}

/** What the reports show of a tree: each job's status and each task's state and attempt. */
function treeState(tree: readonly TreeNode[]): string {
  return JSON.stringify(
    tree.map((n) => [
      n.job.jobId,
      n.job.status,
      n.tasks.map((t) => [t.taskNo, t.state, t.attempt, t.updatedAt]),
    ]),
  );
}

/**
 * The reports of a root that is final were drawn from `drawn`; while a
 * descendant in it was still open, read the tree again and rewrite them if it
 * moved. Each writer of a tree's reports checks after its own write, and every
 * child that ends after the root's final status rewrites them itself, so the
 * last reports written show the last state of the tree.
 */
async function settleTreeReports(deps: Deps, root: JobRecord, drawn: TreeNode[]): Promise<void> {
  let shown = drawn;
  for (let i = 0; i < MAX_REPORT_REWRITES; i++) {
    if (shown.slice(1).every((n) => isTerminalJobStatus(n.job.status))) return;
    const now = await readTree(deps, root, shown[0]?.tasks);
    if (treeState(now) === treeState(shown)) return;
    await putTreeReports(deps, root, now);
    shown = now;
  }
}

/**
 * LEVEL_N_REPORT.md for every depth, FINAL_RESULT.md, result.json and REPORT.html of the whole tree,
 * under the root's prefix. Returns the tree they were drawn from.
 */
export async function writeTreeReports(
  deps: Deps,
  root: JobRecord,
  rootTasks?: TaskRecord[],
): Promise<TreeNode[]> {
  const tree = await readTree(deps, root, rootTasks);
  await putTreeReports(deps, root, tree);
  return tree;
}

async function putTreeReports(deps: Deps, root: JobRecord, tree: TreeNode[]): Promise<void> {
  const ctx = {
    bucket: deps.artifacts.bucket,
    now: deps.now().toISOString(),
    workspace: deps.artifacts.uri(jobPrefix(root.jobId)),
  };
  const reports = renderTreeReports(tree, ctx);
  const markdown = 'text/markdown; charset=utf-8';
  // Independent objects: written side by side. The job's status is set only after all of them landed.
  await Promise.all([
    // The report people open first is sent first.
    deps.artifacts.putText(finalReportKey(root.jobId), reports.finalReport, markdown),
    ...reports.levels.map((level) => deps.artifacts.putText(level.key, level.markdown, markdown)),
    deps.artifacts.putText(resultJsonKey(root.jobId), reports.resultJson, 'application/json'),
    // Drawn from result.json's own text, so the page shows exactly what that file holds.
    deps.artifacts.putText(
      reportHtmlKey(root.jobId),
      renderReportHtml(JSON.parse(reports.resultJson) as JobResult),
      'text/html; charset=utf-8',
    ),
  ]);
}
