/** What a worker may ask for during its attempt: its assignment and upload links. */
import type { GitArtifact } from '../core/api-schemas.ts';
import { conflict, forbidden, HttpError } from '../core/errors.ts';
import { workerIdentity } from '../core/git-source.ts';
import {
  baseBundleKey,
  mergeBundleKey,
  mergePatchKey,
  resultBranch,
  safeRelativePath,
  snapshotBundleKey,
  workerBundleKey,
  workerFilesPrefix,
  workerId,
  workerLogKey,
  workerPatchKey,
} from '../core/layout.ts';
import { commitsToMerge, mergeResultOf } from '../core/merge-plan.ts';
import type { JobRecord, TaskRecord } from '../core/model.ts';
import { plannerSchema, workerPrompt } from '../core/planner.ts';
import { decidePrompt, decideSchema, splitOffer } from '../core/recursion-policy.ts';
import { isActiveAttempt } from './auth.ts';
import type { Deps } from './deps.ts';

export interface Assignment {
  job_id: string;
  task_no: number;
  attempt: number;
  kind: TaskRecord['kind'];
  title: string;
  /** The full prompt to give Claude. */
  prompt: string;
  json_schema?: Record<string, unknown> | undefined;
  timeout_sec: number;
  model?: string | undefined;
  permission_mode: string;
  max_turns?: number | undefined;
  /** `claude --max-budget-usd` for this attempt, from what the job tree has left. */
  max_budget_usd: number;
  /** Present when the worker may split its subtask into a child job (ask Claude with `decide_schema` first). */
  recursion?:
    | {
        depth: number;
        max_depth: number;
        max_subtasks: number;
        /** The subtask as given, without the worker framing: the request of a child job. */
        subtask_prompt: string;
        decide_prompt: string;
        decide_schema: Record<string, unknown>;
      }
    | undefined;
  /** Repository jobs (plan, work, merge): the checkout to work in. */
  repo?: RepoAssignment | undefined;
  /** `source` steps: the remote to fetch. The token is in the step's environment, never here. */
  fetch?: { url: string; ref?: string | undefined; token_username: string; max_bytes: number } | undefined;
  /** `merge` steps: the workers' commits, merged in this order onto `branch`. */
  merge?: { branch: string; job_id: string; workers: MergeInput[] } | undefined;
  /** `push` steps: the merged branch and where it goes. */
  push?:
    | { url: string; branch: string; head_commit: string; token_username: string; bundles: { url: string }[] }
    | undefined;
}

export interface RepoAssignment {
  base_commit: string;
  /** Fetch these in order: together they hold base_commit. */
  bundles: { url: string }[];
  /** A changed file larger than this is left out of the commit. */
  max_file_bytes: number;
  /** Work tasks: who the commit is by and what its message says. */
  commit?:
    | {
        author_name: string;
        author_email: string;
        title: string;
        job_id: string;
        worker_id: string;
        depth: number;
        attempt: number;
      }
    | undefined;
}

export interface MergeInput {
  worker_id: string;
  task_no: number;
  title: string;
  prompt: string;
  commit: string;
  bundles: { url: string }[];
}

/** Returns the attempt's assignment and marks the task running (repeat calls are harmless). */
export async function getAssignment(deps: Deps, task: TaskRecord, attempt: number): Promise<Assignment> {
  if (!isActiveAttempt(task, attempt)) {
    deps.log.warn('assignment refused: attempt no longer active', {
      jobId: task.jobId,
      taskNo: task.taskNo,
      attempt,
      state: task.state,
    });
    throw forbidden(
      `task ${task.taskNo} attempt ${attempt} is no longer active (${task.state}, attempt ${task.attempt}); its token is no longer valid`,
    );
  }
  if (task.state === 'launching') {
    await deps.store.markRunning(task.jobId, task.taskNo, attempt, deps.now().toISOString());
  }
  const job = await deps.store.getJob(task.jobId);
  if (!job) throw conflict(`job ${task.jobId} is gone`);
  const root = job.depth === 0 ? job : await deps.store.getJob(job.rootJobId);
  if (!root) throw conflict(`root job ${job.rootJobId} is gone`);
  // Reserved by the dispatcher before the worker started.
  const budgetUsd = task.budgetAttempt === attempt ? (task.budgetUsd ?? 0) : 0;
  const offer = splitOffer(root, job, task);
  const isPlan = task.kind === 'plan';
  const expires = deps.settings.presignExpirySec;
  const links = (keys: readonly string[]) =>
    Promise.all(keys.map(async (key) => ({ url: await deps.artifacts.presignGet(key, expires) })));
  const steps = await stepAssignment(deps, job, task, links);
  const repository = job.source !== undefined;
  if (repository && !job.source?.baseCommit && task.kind !== 'source')
    throw conflict(`job ${job.jobId}: the repository has not been fetched yet`);
  return {
    job_id: task.jobId,
    task_no: task.taskNo,
    attempt,
    kind: task.kind,
    title: task.title,
    prompt: isPlan
      ? task.prompt
      : workerPrompt({
          request: job.request,
          title: task.title,
          prompt: task.prompt,
          taskNo: task.taskNo,
          totalTasks: job.totalTasks,
          canSpawn: offer.allowed,
          repository,
        }),
    json_schema: isPlan ? plannerSchema(job.config.maxWorkers) : undefined,
    timeout_sec: task.timeoutSec,
    model: job.config.model,
    permission_mode: deps.settings.worker.permissionMode,
    max_turns: deps.settings.worker.maxTurns,
    max_budget_usd: budgetUsd,
    recursion: offer.allowed
      ? {
          depth: job.depth,
          max_depth: root.budget?.maxDepth ?? 0,
          max_subtasks: offer.maxSubtasks,
          subtask_prompt: task.prompt,
          decide_prompt: decidePrompt(task.prompt, job.depth, root.budget?.maxDepth ?? 0, offer.maxSubtasks),
          decide_schema: decideSchema(offer.maxSubtasks),
        }
      : undefined,
    ...steps,
  };
}

type Links = (keys: readonly string[]) => Promise<{ url: string }[]>;

/** The repository parts of an assignment, by the task's kind. */
async function stepAssignment(
  deps: Deps,
  job: JobRecord,
  task: TaskRecord,
  links: Links,
): Promise<Pick<Assignment, 'repo' | 'fetch' | 'merge' | 'push'>> {
  const source = job.source;
  if (!source) return {};
  const tokenUsername = deps.settings.git.tokenUsername;
  if (task.kind === 'source') {
    return {
      fetch: {
        url: source.url ?? '',
        ...(source.ref !== undefined ? { ref: source.ref } : {}),
        token_username: tokenUsername,
        max_bytes: deps.settings.limits.maxSourceBytes,
      },
    };
  }
  if (!source.baseCommit) return {};
  const repo: RepoAssignment = {
    base_commit: source.baseCommit,
    bundles: await links(source.bundles),
    max_file_bytes: deps.settings.limits.maxCommitFileBytes,
  };
  if (task.kind === 'work') {
    const id = workerId(task.taskNo, task.jobPath);
    const who = workerIdentity(id);
    repo.commit = {
      author_name: who.name,
      author_email: who.email,
      title: task.title,
      job_id: job.jobId,
      worker_id: id,
      depth: task.depth,
      attempt: task.attempt,
    };
  }
  if (task.kind === 'merge') {
    const tasks = await deps.store.listTasks(job.jobId);
    const workers = await Promise.all(
      commitsToMerge(tasks).map(async (c) => ({
        worker_id: c.workerId,
        task_no: c.taskNo,
        title: c.title,
        prompt: c.prompt,
        commit: c.commit,
        bundles: await links(c.bundles),
      })),
    );
    return { repo, merge: { branch: resultBranch(job.jobId), job_id: job.jobId, workers } };
  }
  if (task.kind === 'push') {
    const merged = mergeResultOf(await deps.store.listTasks(job.jobId));
    if (!merged) throw conflict(`job ${job.jobId} has no merged branch to push`);
    return {
      push: {
        url: source.url ?? '',
        branch: merged.branch,
        head_commit: merged.headCommit,
        token_username: tokenUsername,
        bundles: await links([...source.bundles, mergeBundleKey(job.rootJobId, job.path)]),
      },
    };
  }
  return { repo };
}

/** Where a task's git artifacts go, by its kind; undefined for an artifact the kind has no use for. */
function gitArtifactKey(task: TaskRecord, artifact: GitArtifact): string | undefined {
  const { rootJobId: root, depth, taskNo, jobPath } = task;
  switch (task.kind) {
    case 'work':
      if (artifact === 'bundle') return workerBundleKey(root, depth, taskNo, jobPath);
      if (artifact === 'patch') return workerPatchKey(root, depth, taskNo, jobPath);
      return snapshotBundleKey(root, depth, taskNo, jobPath);
    case 'merge':
      if (artifact === 'bundle') return mergeBundleKey(root, jobPath);
      if (artifact === 'patch') return mergePatchKey(root, jobPath);
      return undefined;
    case 'source':
      return artifact === 'bundle' && depth === 0 ? baseBundleKey(root) : undefined;
    default:
      return undefined;
  }
}

export interface UploadLinks {
  files: { path: string; url: string }[];
  log?: { url: string } | undefined;
  git?: Partial<Record<GitArtifact, { url: string }>> | undefined;
  expires_in: number;
}

/** Presigned PUT links under the worker's own prefix; a path that would leave it is refused. */
export async function uploadLinks(
  deps: Deps,
  task: TaskRecord,
  request: { attempt: number; files: string[]; include_log: boolean; git?: GitArtifact[] | undefined },
): Promise<UploadLinks> {
  // After a hand-off the worker still uploads its log for the attempt.
  const uploading =
    task.attempt === request.attempt && ['launching', 'running', 'waiting_on_child'].includes(task.state);
  if (!uploading) {
    deps.log.warn('uploads refused: attempt no longer active', {
      jobId: task.jobId,
      taskNo: task.taskNo,
      attempt: request.attempt,
      state: task.state,
    });
    throw forbidden(
      `task ${task.taskNo} attempt ${request.attempt} is no longer active; its token is no longer valid`,
    );
  }
  const bad = request.files.filter((f) => safeRelativePath(f) === undefined);
  if (bad.length > 0) {
    deps.log.warn('uploads refused: path outside the worker prefix', {
      jobId: task.jobId,
      taskNo: task.taskNo,
      paths: bad.slice(0, 5),
    });
    throw new HttpError(
      403,
      'file paths must be relative and stay inside the worker directory',
      bad.slice(0, 20).map((f) => ({ path: 'files', message: `refused path: ${f}` })),
      'forbidden',
    );
  }
  const expires = deps.settings.presignExpirySec;
  const prefix = workerFilesPrefix(task.rootJobId, task.depth, task.taskNo, task.jobPath);
  const files = await Promise.all(
    request.files.map(async (f) => {
      const path = safeRelativePath(f) as string;
      return { path, url: await deps.artifacts.presignPut(`${prefix}${path}`, expires) };
    }),
  );
  const log = request.include_log
    ? {
        url: await deps.artifacts.presignPut(
          workerLogKey(task.rootJobId, task.depth, task.taskNo, task.jobPath),
          expires,
        ),
      }
    : undefined;
  const wanted = request.git ?? [];
  const refused = wanted.filter((a) => gitArtifactKey(task, a) === undefined);
  if (refused.length > 0) throw forbidden(`a ${task.kind} task has no ${refused.join(', ')} to upload`);
  const git =
    wanted.length > 0
      ? Object.fromEntries(
          await Promise.all(
            wanted.map(async (a) => [
              a,
              { url: await deps.artifacts.presignPut(gitArtifactKey(task, a) as string, expires) },
            ]),
          ),
        )
      : undefined;
  return { files, log, ...(git ? { git } : {}), expires_in: expires };
}
