/**
 * The steps of a repository job after its workers: which commits the merge
 * step takes, whether a merge or push is still owed before the job can be
 * aggregated, and how their outcome shapes the job's status. Pure: the
 * services, the aggregator and the reports all decide from the same records.
 */
import { mergeBundleKey, STEP_TASK_NO, workerBundleKey, workerId } from './layout.ts';
import type { JobRecord, MergeGitResult, TaskRecord } from './model.ts';
import { isTerminalTaskState, type JobStatus } from './task-states.ts';

/** A worker's commit, ready to be merged: where its objects are and what it was asked to do. */
export interface CommitToMerge {
  taskNo: number;
  workerId: string;
  title: string;
  prompt: string;
  commit: string;
  /** S3 keys of the bundles that hold the commit, on top of the job's base chain. */
  bundles: string[];
}

/**
 * The commits of a job's finished workers, in worker order: a worker's own
 * commit, or for a worker that handed off, its child job's merged branch.
 */
export function commitsToMerge(tasks: readonly TaskRecord[]): CommitToMerge[] {
  const out: CommitToMerge[] = [];
  for (const task of [...tasks].sort((a, b) => a.taskNo - b.taskNo)) {
    if (task.kind !== 'work') continue;
    const base = {
      taskNo: task.taskNo,
      workerId: workerId(task.taskNo, task.jobPath),
      title: task.title,
      prompt: task.prompt,
    };
    const git = task.result?.git;
    if (task.state === 'succeeded' && git?.kind === 'work' && git.commit) {
      out.push({
        ...base,
        commit: git.commit,
        bundles: [workerBundleKey(task.rootJobId, task.depth, task.taskNo, task.jobPath)],
      });
    } else if (task.state === 'recursive_success' && task.childResults?.git) {
      out.push({ ...base, commit: task.childResults.git.commit, bundles: task.childResults.git.bundles });
    }
  }
  return out;
}

export function findStep(
  tasks: readonly TaskRecord[],
  kind: 'source' | 'merge' | 'push',
): TaskRecord | undefined {
  return tasks.find((t) => t.taskNo === STEP_TASK_NO[kind] && t.kind === kind);
}

/** What the job's merge step produced, once it succeeded. */
export function mergeResultOf(tasks: readonly TaskRecord[]): MergeGitResult | undefined {
  const merge = findStep(tasks, 'merge');
  const git = merge?.state === 'succeeded' ? merge.result?.git : undefined;
  return git?.kind === 'merge' ? git : undefined;
}

/** Whether the merged branch goes back to the job's git remote. */
export function pushWanted(job: JobRecord, merged: MergeGitResult | undefined): boolean {
  return (
    job.source?.kind === 'git' &&
    job.source.push === true &&
    merged !== undefined &&
    merged.headCommit !== merged.baseCommit
  );
}

/**
 * The repository step the job still owes before it can be aggregated, once
 * every work task is final: the merge (when some worker has a commit), then
 * the push (when wanted). `task` is the step's item when it exists.
 */
export function owedStep(
  job: JobRecord,
  tasks: readonly TaskRecord[],
): { kind: 'merge' | 'push'; task?: TaskRecord | undefined } | undefined {
  if (!job.source?.baseCommit || commitsToMerge(tasks).length === 0) return undefined;
  const merge = findStep(tasks, 'merge');
  if (!merge || !isTerminalTaskState(merge.state)) return { kind: 'merge', task: merge };
  if (pushWanted(job, mergeResultOf(tasks))) {
    const push = findStep(tasks, 'push');
    if (!push || !isTerminalTaskState(push.state)) return { kind: 'push', task: push };
  }
  return undefined;
}

/**
 * The job's status once its repository steps are done: a worker left out of
 * the branch, a merge that failed or a push that failed turn `completed` into
 * `partial`, with the reason.
 */
export function repositoryOutcome(
  job: JobRecord,
  tasks: readonly TaskRecord[],
  status: 'completed' | 'partial' | 'failed',
): { status: 'completed' | 'partial' | 'failed'; error?: string | undefined } {
  if (!job.source?.baseCommit || status === 'failed') return { status };
  const problems: string[] = [];
  const commits = commitsToMerge(tasks);
  const merge = findStep(tasks, 'merge');
  if (commits.length > 0 && merge && merge.state !== 'succeeded') {
    problems.push(
      `merging the workers' commits failed: ${merge.result?.error ?? merge.attempts.at(-1)?.error ?? merge.state}`,
    );
  }
  const merged = mergeResultOf(tasks);
  for (const c of merged?.conflicts ?? []) {
    if (c.resolution !== 'left_out') continue;
    const who = c.workers.at(-1) ?? 'a worker';
    problems.push(
      `${who}'s change was left out of ${merged?.branch}: conflict with ${c.workers.slice(0, -1).join(', ') || 'the branch'} in ${c.files.join(', ')}${c.reason ? ` (${c.reason})` : ''}`,
    );
  }
  const push = findStep(tasks, 'push');
  if (push && isTerminalTaskState(push.state) && push.state !== 'succeeded') {
    problems.push(
      `pushing ${merged?.branch ?? 'the branch'} failed: ${push.result?.error ?? push.attempts.at(-1)?.error ?? push.state}`,
    );
  }
  if (problems.length === 0) return { status };
  return { status: 'partial', error: problems.join('; ') };
}

/** A repository job whose source step failed cannot run at all. */
export function sourceFailure(job: JobRecord, tasks: readonly TaskRecord[]): string | undefined {
  if (job.source?.kind !== 'git') return undefined;
  const source = findStep(tasks, 'source');
  if (!source || !isTerminalTaskState(source.state) || source.state === 'succeeded') return undefined;
  return `fetching the repository failed: ${source.result?.error ?? source.attempts.at(-1)?.error ?? source.state}`;
}

/**
 * What a finished hand-off child gives its waiting parent worker: the child's
 * merged branch as the parent's commit, with the bundles that hold it (the
 * parent's own snapshot, if it had changes before handing off, then the
 * child's result). Undefined when nothing changed.
 */
export function childCommit(
  child: JobRecord,
  tasks: readonly TaskRecord[],
  status: JobStatus,
): { commit: string; bundles: string[] } | undefined {
  const source = child.source;
  if (!source?.baseCommit || status === 'failed' || status === 'cancelled') return undefined;
  const own = source.ownBundle ? [source.ownBundle] : [];
  const merged = mergeResultOf(tasks);
  if (merged && merged.headCommit !== source.baseCommit) {
    return { commit: merged.headCommit, bundles: [...own, mergeBundleKey(child.rootJobId, child.path)] };
  }
  return own.length > 0 ? { commit: source.baseCommit, bundles: own } : undefined;
}
