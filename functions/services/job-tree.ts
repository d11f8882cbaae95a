/** Reading a job with everything below it: the subtree a result or report covers. */
import type { JobRecord } from '../core/model.ts';
import type { TreeNode } from '../core/result-format.ts';
import type { Deps } from './deps.ts';

/** The job's descendants (all of the tree for a root), in lineage order. */
export async function descendantsOf(deps: Deps, job: JobRecord): Promise<JobRecord[]> {
  const all = await deps.jobs.listDescendants(job.rootJobId);
  if (job.depth === 0) return all;
  return all.filter((j) => j.depth > job.depth && j.path.startsWith(`${job.path}_`));
}

/** The job and every descendant, each with its tasks; the job itself first. */
export async function loadSubtree(deps: Deps, job: JobRecord): Promise<TreeNode[]> {
  const jobs = [job, ...(await descendantsOf(deps, job))];
  return Promise.all(jobs.map(async (j) => ({ job: j, tasks: await deps.tasks.listTasks(j.jobId) })));
}
