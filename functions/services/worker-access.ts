/** What a worker may ask for during its attempt: its assignment and upload links. */
import type { GitArtifact, UploadRequest } from '../core/api-schemas.ts';
import { conflict, forbidden, HttpError } from '../core/errors.ts';
import { workerIdentity } from '../core/git-source.ts';
import {
  baseBundleKey,
  mergeBundleKey,
  mergePatchKey,
  resultBranch,
  snapshotBundleKey,
  workerBundleKey,
  workerFilesPrefix,
  workerId,
  workerLogKey,
  workerPatchKey,
} from '../core/layout.ts';
import { commitsToMerge, mergeResultOf } from '../core/merge-plan.ts';
import type { JobRecord, RefusedFile, TaskRecord } from '../core/model.ts';
import { plannerSchema, workerPrompt } from '../core/planner.ts';
import { decidePrompt, decideSchema, splitOffer } from '../core/recursion-policy.ts';
import { fileVersion } from '../core/report-links.ts';
import { isTerminalJobStatus, LIVE_TASK_STATES, type TaskState } from '../core/task-states.ts';
import { sha256Hex, type TaskTokenScope } from '../core/tokens.ts';
import type { Deps } from './deps.ts';
import { gatewayBaseUrl, gatewayEnabled } from './model-gateway.ts';

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
  /** How often to post progress, and the longest silence allowed (the sweep counts a worker silent longer as lost). */
  progress?: { interval_ms: number; heartbeat_ms: number } | undefined;
  max_turns?: number | undefined;
  /** `claude --max-budget-usd` for this attempt, from what the job tree has left. */
  max_budget_usd: number;
  /**
   * Present when the model gateway is on: Claude's ANTHROPIC_BASE_URL, with the task token as its only
   * credential; the gateway meters and bounds the spend, so `max_budget_usd` is 0.
   */
  model_gateway?: { base_url: string } | undefined;
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

/**
 * Returns the attempt's assignment and marks the task running (repeat calls
 * are harmless). `knownJob`: the task's job, read with it (see liveAttempt).
 */
export async function getAssignment(
  deps: Deps,
  task: TaskRecord,
  attempt: number,
  knownJob?: JobRecord,
): Promise<Assignment> {
  const { job } = await liveAttempt(
    deps,
    { jobId: task.jobId, taskNo: task.taskNo, attempt },
    'assignment',
    LIVE_TASK_STATES,
    task,
    knownJob,
  );
  if (task.state === 'launching') {
    await deps.tasks.markRunning(task.jobId, task.taskNo, attempt, deps.now().toISOString());
  }
  const root = job.depth === 0 ? job : await deps.jobs.getJob(job.rootJobId);
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
    progress: {
      interval_ms: deps.settings.worker.progressIntervalMs,
      // Three heartbeats fit in the timeout, so one lost post never makes a live worker look lost.
      heartbeat_ms: Math.min(20_000, Math.floor((deps.settings.worker.heartbeatTimeoutSec * 1000) / 3)),
    },
    max_turns: deps.settings.worker.maxTurns,
    max_budget_usd: budgetUsd,
    ...(gatewayEnabled(deps.settings) && ['plan', 'work', 'merge'].includes(task.kind)
      ? { model_gateway: { base_url: gatewayBaseUrl(deps.settings) } }
      : {}),
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
    const tasks = await deps.tasks.listTasks(job.jobId);
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
    const merged = mergeResultOf(await deps.tasks.listTasks(job.jobId));
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
  /** Names refused one by one, each with why; everything else asked for stands. */
  refused: RefusedFile[];
  log?: { url: string } | undefined;
  git?: Partial<Record<GitArtifact, { url: string }>> | undefined;
  /** Seconds the links stay valid: never past the attempt's deadline. */
  expires_in: number;
  /** What the attempt may still ask for (limits.max_files_per_worker, limits.max_upload_mb_per_worker). */
  files_left: number;
  bytes_left: number;
}

/**
 * A worker uploads after its session ends, which the sweep allows this long
 * past the timeout (reconcile.ts overrunGraceMs): no link outlives that.
 */
const UPLOAD_GRACE_MS = 5 * 60_000;
/** Refused names kept on the task item per attempt (the count covers the rest). */
const KEPT_REFUSALS = 20;
/** Concurrent requests of one attempt race on its counters; each retry re-reads them. */
const MAX_COUNT_TRIES = 4;

/**
 * Why a worker-given file name cannot be used as it stands under the
 * worker's own prefix; undefined when it can. Names are never rewritten, so
 * the key is exactly the name the worker will read its file by.
 */
export function unsafeNameReason(name: string): string | undefined {
  if (name.length === 0) return 'empty name';
  if (Buffer.byteLength(name, 'utf8') > 900) return 'longer than 900 bytes';
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  if (/[\u0000-\u001f\u007f]/.test(name)) return 'holds a control character';
  if (name.includes('\\')) return 'holds a backslash, a path separator on Windows';
  if (name.startsWith('/')) return 'an absolute path';
  const segments = name.split('/');
  if (segments.includes('..')) return 'a .. segment would leave the worker directory';
  if (segments.some((s) => s === '' || s === '.')) return 'an empty or . segment';
  return undefined;
}

/** The short hash a path is counted by on the task item (bounded item size, whatever the names). */
function pathTag(path: string): string {
  return sha256Hex(path).slice(0, 16);
}

/** Bytes an attempt may be given links for: a repository step may also carry a bundle up to the source limit. */
function uploadByteCap(deps: Deps, task: TaskRecord): number {
  const { maxUploadBytesPerWorker, maxSourceBytes } = deps.settings.limits;
  return task.kind === 'plan' || task.kind === 'work'
    ? maxUploadBytesPerWorker
    : maxUploadBytesPerWorker + maxSourceBytes;
}

/** Seconds a link may live: the presign setting, cut to what is left of the attempt. */
function uploadExpiry(deps: Deps, task: TaskRecord): number {
  const started = Date.parse(task.startedAt ?? task.launchedAt ?? task.updatedAt);
  const deadline = started + task.timeoutSec * 1000 + UPLOAD_GRACE_MS;
  const left = Math.floor((deadline - deps.now().getTime()) / 1000);
  if (!(left >= 1)) {
    deps.log.warn('uploads refused: attempt past its deadline', {
      jobId: task.jobId,
      taskNo: task.taskNo,
      attempt: task.attempt,
    });
    throw forbidden(`task ${task.taskNo} attempt ${task.attempt} is past its deadline; no more uploads`);
  }
  return Math.min(deps.settings.presignExpirySec, left);
}

/**
 * Presigned PUT links under the worker's own prefix, each signing the exact
 * size asked for, so storage refuses any other body. Every request counts
 * against the attempt's caps on the task item (files: distinct names; bytes:
 * everything signed, a repeat included) and is refused whole once it would
 * pass one. An unsafe name is refused on its own: the rest is signed, and
 * the refusals are kept for the attempt's result.
 */
export async function uploadLinks(
  deps: Deps,
  task: TaskRecord,
  request: UploadRequest,
  knownJob?: JobRecord,
): Promise<UploadLinks> {
  const scope = { jobId: task.jobId, taskNo: task.taskNo, attempt: request.attempt };
  // After a hand-off the worker still uploads its log for the attempt, and nothing else.
  const logOnly = request.files.length === 0 && request.git.length === 0;
  const states: readonly TaskState[] = logOnly ? [...LIVE_TASK_STATES, 'waiting_on_child'] : LIVE_TASK_STATES;
  let current = (await liveAttempt(deps, scope, 'uploads', states, task, knownJob)).task;
  const expires = uploadExpiry(deps, current);

  const granted: { path: string; size: number }[] = [];
  const refused: RefusedFile[] = [];
  const seen = new Set<string>();
  for (const entry of request.files) {
    const path = typeof entry === 'string' ? entry : entry.path;
    const reason =
      unsafeNameReason(path) ??
      (typeof entry === 'string' ? 'no size: ask for each file as {path, size_bytes}' : undefined);
    if (reason !== undefined) refused.push({ path, reason });
    else if (!seen.has(path)) {
      seen.add(path);
      granted.push({ path, size: (entry as { size_bytes: number }).size_bytes });
    }
  }
  const gitKeys = request.git.map((g) => ({ ...g, key: gitArtifactKey(current, g.name) }));
  const wrongGit = gitKeys.filter((g) => g.key === undefined).map((g) => g.name);
  if (wrongGit.length > 0) throw forbidden(`a ${current.kind} task has no ${wrongGit.join(', ')} to upload`);
  if (refused.length > 0) {
    deps.log.warn('uploads refused: path outside the worker prefix', {
      jobId: task.jobId,
      taskNo: task.taskNo,
      refused: refused.length,
      paths: refused.slice(0, 5).map((r) => r.path.slice(0, 200)),
    });
  }

  const bytes =
    granted.reduce((n, f) => n + f.size, 0) +
    request.git.reduce((n, g) => n + g.size_bytes, 0) +
    (request.log_bytes ?? 0);
  const caps = { files: deps.settings.limits.maxFilesPerWorker, bytes: uploadByteCap(deps, current) };
  let used = { files: 0, bytes: 0 };
  for (let tries = 1; ; tries++) {
    const first = current.uploadAttempt !== request.attempt;
    const known = first ? new Set<string>() : (current.uploadPaths ?? new Set<string>());
    const newPaths = [...new Set(granted.map((f) => pathTag(f.path)))].filter((t) => !known.has(t));
    used = first
      ? { files: 0, bytes: 0 }
      : { files: current.uploadFiles ?? 0, bytes: current.uploadBytes ?? 0 };
    if (used.files + newPaths.length > caps.files)
      throw uploadLimit(
        deps,
        current,
        'max_files_per_worker',
        `${used.files + newPaths.length} files`,
        caps.files,
      );
    if (used.bytes + bytes > caps.bytes)
      throw uploadLimit(deps, current, 'max_upload_mb_per_worker', `${used.bytes + bytes} bytes`, caps.bytes);
    const kept = first ? 0 : (current.uploadRefused?.length ?? 0);
    const grant = {
      newPaths,
      bytes,
      refused: refused
        .slice(0, Math.max(0, KEPT_REFUSALS - kept))
        .map((r) => ({ path: r.path.slice(0, 200), reason: r.reason })),
      refusedCount: refused.length,
    };
    if (await deps.tasks.countUploads(task.jobId, task.taskNo, request.attempt, states, first, grant, caps)) {
      used = { files: used.files + newPaths.length, bytes: used.bytes + bytes };
      break;
    }
    // The attempt ended, or another request of it counted first: read again and decide.
    if (tries >= MAX_COUNT_TRIES) throw conflict('the upload counters kept changing; ask again');
    current = await liveTask(deps, scope, 'uploads', states);
  }

  const nothingSigned = granted.length === 0 && request.git.length === 0 && request.log_bytes === undefined;
  if (nothingSigned && refused.length > 0) {
    throw new HttpError(
      403,
      'every file named was refused: names must be relative paths that stay inside the worker directory',
      refused
        .slice(0, 20)
        .map((r) => ({ path: 'files', message: `refused path: ${r.path.slice(0, 200)} (${r.reason})` })),
      'forbidden',
      { refused: refused.slice(0, 20) },
    );
  }

  const { rootJobId: root, depth, taskNo, jobPath } = current;
  const prefix = workerFilesPrefix(root, depth, taskNo, jobPath);
  const files = await Promise.all(
    granted.map(async (f) => ({
      path: f.path,
      url: await deps.artifacts.presignPut(`${prefix}${f.path}`, expires, f.size),
    })),
  );
  const log =
    request.log_bytes === undefined
      ? undefined
      : {
          url: await deps.artifacts.presignPut(
            workerLogKey(root, depth, taskNo, jobPath, request.attempt),
            expires,
            request.log_bytes,
          ),
        };
  const git =
    gitKeys.length > 0
      ? Object.fromEntries(
          await Promise.all(
            gitKeys.map(async (g) => [
              g.name,
              { url: await deps.artifacts.presignPut(g.key as string, expires, g.size_bytes) },
            ]),
          ),
        )
      : undefined;
  return {
    files,
    refused,
    ...(log ? { log } : {}),
    ...(git ? { git } : {}),
    expires_in: expires,
    files_left: caps.files - used.files,
    bytes_left: caps.bytes - used.bytes,
  };
}

function uploadLimit(deps: Deps, task: TaskRecord, limit: string, wanted: string, cap: number): HttpError {
  deps.log.warn('uploads refused: over the attempt cap', {
    jobId: task.jobId,
    taskNo: task.taskNo,
    attempt: task.attempt,
    limit,
  });
  return new HttpError(
    413,
    `this attempt would reach ${wanted}, over limits.${limit} (${cap}); nothing was signed`,
    undefined,
    'limit_exceeded',
    { limit, max: cap },
  );
}

/**
 * The files an attempt stored under its prefix, as the storage lists them
 * when its result is recorded: only names the attempt was given links for,
 * with the size and ETag of each. What the worker says it created is not used.
 */
/** What an attempt stored, as the storage lists it. */
export interface StoredFiles {
  paths: string[];
  versions: string[];
  refused: RefusedFile[];
  refusedCount: number;
}

export async function storedFiles(deps: Deps, task: TaskRecord, attempt: number): Promise<StoredFiles> {
  const counted = task.uploadAttempt === attempt;
  const refused = counted ? (task.uploadRefused ?? []) : [];
  const refusedCount = counted ? (task.uploadRefusedCount ?? refused.length) : 0;
  const grants = counted ? task.uploadPaths : undefined;
  if (!grants || grants.size === 0) return { paths: [], versions: [], refused, refusedCount };
  const prefix = workerFilesPrefix(task.rootJobId, task.depth, task.taskNo, task.jobPath);
  const max = deps.settings.limits.maxFilesPerWorker;
  // Earlier attempts of the task left at most `max` objects each under the same prefix.
  const { objects } = await deps.artifacts.listUpTo(prefix, max * Math.max(1, attempt));
  const mine = objects
    .map((o) => ({ ...o, path: o.key.slice(prefix.length) }))
    .filter((o) => grants.has(pathTag(o.path)))
    .slice(0, max);
  return {
    paths: mine.map((o) => o.path),
    versions: mine.map((o) => fileVersion(o)),
    refused,
    refusedCount,
  };
}

/**
 * The task of a worker token, provided its attempt is live: the token's
 * attempt is the task's current one, the task is in one of `states`, and its
 * job has not ended. Anything else is a 403, logged as `<what> refused`: a
 * token is refused once its attempt has ended. `known` saves the task read,
 * and `knownJob` (read in the same request as `known`) the job read.
 */
export async function liveTask(
  deps: Deps,
  scope: TaskTokenScope,
  what: string,
  states: readonly TaskState[] = LIVE_TASK_STATES,
  known?: TaskRecord,
): Promise<TaskRecord> {
  return (await liveAttempt(deps, scope, what, states, known)).task;
}

/** liveTask, also returning the job it read to check that the job has not ended. */
export async function liveAttempt(
  deps: Deps,
  scope: TaskTokenScope,
  what: string,
  states: readonly TaskState[] = LIVE_TASK_STATES,
  known?: TaskRecord,
  knownJob?: JobRecord,
): Promise<{ task: TaskRecord; job: JobRecord }> {
  const task = known ?? (await deps.tasks.getTask(scope.jobId, scope.taskNo));
  const live = task !== undefined && task.attempt === scope.attempt && states.includes(task.state);
  const job = live ? (knownJob ?? (await deps.jobs.getJob(scope.jobId))) : undefined;
  if (!live || !job || isTerminalJobStatus(job.status)) {
    deps.log.warn(`${what} refused: attempt no longer active`, {
      ...scope,
      state: task?.state,
      jobStatus: job?.status,
    });
    throw forbidden(
      `task ${scope.taskNo} attempt ${scope.attempt} is no longer active (${task?.state ?? 'gone'}${job ? `, job ${job.status}` : ''}); its token is no longer valid`,
    );
  }
  return { task, job };
}
