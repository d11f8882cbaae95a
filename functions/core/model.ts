/**
 * The records the store keeps. Field names are camelCase inside the system;
 * the public API speaks the original tool's snake_case (see result-format.ts).
 */
import type { JobStatus, TaskState } from './task-states.ts';

/** Per-job settings after defaults and deployment caps are applied. */
export interface JobConfig {
  maxWorkers: number;
  defaultTimeoutSec: number;
  maxRetries: number;
  enableRecursion: boolean;
  maxRecursionDepth: number;
  /** Spend limit of the whole tree this job roots (children inherit their root's). */
  maxBudgetUsd: number;
  model?: string | undefined;
}

/**
 * `plan` and `work` run Claude; `merge` runs Claude only to resolve a conflict;
 * `source` (fetch a git URL) and `push` (push the result branch back) never run
 * Claude and are the only steps that get repository credentials.
 */
export type TaskKind = 'plan' | 'work' | 'source' | 'merge' | 'push';

/** Where a job's repository comes from, and the commit its workers start from. */
export interface JobSource {
  /** `git`: fetched from a URL by a step without AI; `bundle`: uploaded by the caller; `parent`: a parent worker's checkout. */
  kind: 'git' | 'bundle' | 'parent';
  /** The remote of a `git` source, without credentials, and the ref asked for. */
  url?: string | undefined;
  ref?: string | undefined;
  /** The commit every worker starts from; unknown until a git URL has been fetched. */
  baseCommit?: string | undefined;
  /** S3 keys of the bundles that together hold baseCommit, in fetch order (each needs only the ones before it). */
  bundles: string[];
  /** The bundle this job added to its parent's chain: the parent worker's changes before it handed off. */
  ownBundle?: string | undefined;
  /** Push the merged branch back to `url` (git sources, when the deployment allows it). */
  push?: boolean | undefined;
}

/** Paths a commit added, modified and deleted, relative to the repository root. */
export interface FileChanges {
  added: string[];
  modified: string[];
  deleted: string[];
}

/** A worker's change as one commit on top of its job's base. */
export interface WorkerGitResult {
  /** Absent when the worker changed nothing. */
  commit?: string | undefined;
  files: FileChanges;
  insertions: number;
  deletions: number;
  /** Files left out of the commit, each with why (e.g. over the size limit). */
  excluded: { path: string; reason: string }[];
  /** True when a file list was cut to the bound; the patch has everything. */
  truncated?: boolean | undefined;
}

/** One worker's commit as the merge step handled it. */
export interface MergedWorker {
  workerId: string;
  taskNo: number;
  commit: string;
  /** `merged` cleanly, `resolved` after a conflict session, `left_out` of the branch. */
  outcome: 'merged' | 'resolved' | 'left_out';
  insertions: number;
  deletions: number;
  filesChanged: number;
}

/** A conflict met while merging a worker's commit, and what became of it. */
export interface MergeConflict {
  /** The workers whose changes met: the one being merged last. */
  workers: string[];
  files: string[];
  /** The first conflicting hunks, as they stood with markers (bounded). */
  hunks: string[];
  resolution: 'resolved' | 'left_out';
  reason?: string | undefined;
}

/** What the merge step of a job produced. */
export interface MergeGitResult {
  branch: string;
  baseCommit: string;
  /** The branch head; equal to baseCommit when nothing was merged. */
  headCommit: string;
  merged: MergedWorker[];
  conflicts: MergeConflict[];
  insertions: number;
  deletions: number;
  filesChanged: number;
}

export interface JobRecord {
  jobId: string;
  tenant: string;
  status: JobStatus;
  request: string;
  config: JobConfig;
  depth: number;
  rootJobId: string;
  parentJobId?: string | undefined;
  parentTaskNo?: number | undefined;
  /** The parent task's attempt that created this child. */
  parentAttempt?: number | undefined;
  /** `handoff`: the parent task waits (without a container) and completes with this job; `wait`: spawn-and-wait. */
  childMode?: 'handoff' | 'wait' | undefined;
  /** Lineage: `''` for the root, `'2'` for the child of root task 2, `'2_1'` below it. */
  path: string;
  /** Number of work tasks (the planner, task 0, is not counted). 0 while planning. */
  totalTasks: number;
  /** Work task numbers that reached a final state; a set, so replaying a write is harmless. */
  finishedTasks: number[];
  createdAt: string;
  updatedAt: string;
  finishedAt?: string | undefined;
  idempotencyKey?: string | undefined;
  /** SHA-256 of the submitted body, to refuse an Idempotency-Key reused for another body. */
  requestHash: string;
  /** Why the job failed as a whole (e.g. planning failed), when it did. */
  error?: string | undefined;
  /** Root jobs only: set once any child job was created in the tree. */
  hasChildren?: boolean | undefined;
  /** Workers of this job running now (launching or running); bounded by config.maxWorkers. */
  runningTasks?: number | undefined;
  /** Root jobs only: the budget of the whole tree, enforced with conditional updates on this item. */
  budget?: RootBudget | undefined;
  /** The repository the workers change; absent for jobs that start in empty directories. */
  source?: JobSource | undefined;
}

/**
 * Limits of one root job's tree and what is used of them. Counters change
 * only through single conditional updates on the root job item.
 */
export interface RootBudget {
  maxTasks: number;
  maxSpendUsd: number;
  /** Effective depth limit: the lower of the deployment cap and the job's own setting. */
  maxDepth: number;
  /** Tasks created or promised across the tree. */
  reservedTasks: number;
  /** Spent plus reserved for running attempts. */
  committedUsd: number;
  /** Reported by finished attempts. */
  spentUsd: number;
}

/** What a parent task learned from its child job. */
export interface ChildResults {
  status: JobStatus;
  total: number;
  succeeded: number;
  failed: number;
  costUsd: number;
  /** The child's merged branch, which becomes the waiting parent worker's commit. */
  git?: { commit: string; bundles: string[] } | undefined;
}

/** Tokens the model sessions of an attempt used, as the claude CLI reports them (summed over its sessions). */
export interface TokenUsage {
  inputTokens: number;
  outputTokens: number;
  cacheReadInputTokens: number;
  cacheCreationInputTokens: number;
}

/** One finished attempt of a task, kept for the reports. */
export interface AttemptRecord {
  attempt: number;
  state: TaskState;
  error?: string | undefined;
  exitCode?: number | undefined;
  durationMs?: number | undefined;
  costUsd?: number | undefined;
  /** With the model gateway, `costUsd` is metered; this is what the worker said it cost (for comparison only). */
  reportedCostUsd?: number | undefined;
  /**
   * When the attempt was claimed for launch and when its worker fetched its
   * assignment: copied from the task when the attempt ends, because a retry
   * clears the task's own fields (records written before they existed lack them).
   */
  launchedAt?: string | undefined;
  startedAt?: string | undefined;
  /** How long the attempt waited for the tree's spend before it could launch (the last such wait). */
  budgetWaitMs?: number | undefined;
  numTurns?: number | undefined;
  usage?: TokenUsage | undefined;
  /** Peak resident memory of the claude process tree, when the platform let the worker read it. */
  peakMemoryMb?: number | undefined;
  finishedAt: string;
  /** Canonical hash of the result body that ended it: only that exact body may be replayed. */
  resultHash?: string | undefined;
}

/** What a worker reported about its last attempt, bounded for the 400 KB item limit. */
export interface TaskResultSummary {
  /** Output text, cut to a bound; the full text is in the task's log in S3. */
  output: string;
  outputTruncated: boolean;
  filesCreated: string[];
  costUsd: number;
  /** With the model gateway, `costUsd` is metered; this is what the worker said it cost (for comparison only). */
  reportedCostUsd?: number | undefined;
  numTurns: number;
  durationMs: number;
  usage?: TokenUsage | undefined;
  peakMemoryMb?: number | undefined;
  sessionId?: string | undefined;
  error?: string | undefined;
  exitCode?: number | undefined;
  /** Repository jobs: the worker's commit (work), the merged branch (merge), the fetched base (source). */
  git?: TaskGitResult | undefined;
  /**
   * `<size>:<etag>` of each file in `filesCreated`, as stored when the result
   * was recorded: an object changed afterwards is no longer the worker's result.
   */
  fileVersions?: string[] | undefined;
  /** File names the API refused to sign during the attempt, each with why (bounded). */
  refusedFiles?: RefusedFile[] | undefined;
  /** How many names were refused in all, when more than `refusedFiles` holds. */
  refusedCount?: number | undefined;
}

/** A file a worker asked to upload and was refused, and why. */
export interface RefusedFile {
  path: string;
  reason: string;
}

export type TaskGitResult =
  | ({ kind: 'work' } & WorkerGitResult)
  | ({ kind: 'merge' } & MergeGitResult)
  | { kind: 'source'; baseCommit: string }
  | { kind: 'push'; remoteRef: string };

export interface TaskRecord {
  jobId: string;
  taskNo: number;
  kind: TaskKind;
  title: string;
  prompt: string;
  state: TaskState;
  /** Counts from 1; a retry increments it. */
  attempt: number;
  maxRetries: number;
  timeoutSec: number;
  depth: number;
  rootJobId: string;
  /** The job's lineage (see JobRecord.path), so keys and worker ids need no job read. */
  jobPath: string;
  createdAt: string;
  updatedAt: string;
  launchedAt?: string | undefined;
  startedAt?: string | undefined;
  finishedAt?: string | undefined;
  launchHandle?: string | undefined;
  /** SHA-256 of the worker's task token for the current attempt. */
  tokenHash?: string | undefined;
  result?: TaskResultSummary | undefined;
  attempts: AttemptRecord[];
  /** The child job this task handed its work to (waiting_on_child, recursive_success). */
  childJobId?: string | undefined;
  childResults?: ChildResults | undefined;
  /** Why the child job did not succeed, when the task ended `failed` with it (completeFromChild). */
  childError?: string | undefined;
  /**
   * A root job's spend limit and max_workers, copied when its task is created:
   * while that many full shares are left, a dispatch reserves one without
   * reading the job (see fullShareWithoutRead). Both never change.
   */
  spendLimits?: { maxSpendUsd: number; maxWorkers: number } | undefined;
  /** Spend reserved on the root for the current attempt, and which attempt it is for. */
  budgetUsd?: number | undefined;
  budgetAttempt?: number | undefined;
  /** The model gateway's account of the attempt `meter.attempt` (see AttemptMeter). */
  meter?: AttemptMeter | undefined;
  /** Queued, but not started because other attempts hold the tree's spend (the gateway off). */
  waitingFor?: 'spend_budget' | undefined;
  waitingSince?: string | undefined;
  /**
   * The last spend wait that ended, kept when the mark is cleared so the
   * reports can show it once the attempt is over: which attempt, from when, until when.
   */
  budgetWaitAttempt?: number | undefined;
  budgetWaitSince?: string | undefined;
  budgetWaitUntil?: string | undefined;
  /** A result that arrived after the task was cancelled; recorded, never applied. */
  lateResult?: TaskResultSummary | undefined;
  /**
   * What the attempt `uploadAttempt` was given upload links for, counted by
   * conditional updates on this item against the per-attempt caps: files
   * (distinct paths; `uploadPaths` holds a short hash of each), bytes signed,
   * and the names refused.
   */
  uploadAttempt?: number | undefined;
  uploadFiles?: number | undefined;
  uploadBytes?: number | undefined;
  uploadPaths?: Set<string> | undefined;
  uploadRefused?: RefusedFile[] | undefined;
  uploadRefusedCount?: number | undefined;
  /** When the worker of attempt `heartbeatAttempt` last posted progress (epoch ms): silence means it is lost. */
  heartbeatAt?: number | undefined;
  heartbeatAttempt?: number | undefined;
}

/**
 * What the model gateway reserved and metered for one attempt, kept on its
 * task item and changed only by conditional updates: a request reserves its
 * maximum cost (`open`, by request id) within `limitUsd`, and settles to what
 * its answer reported. Present from the attempt's dispatch when the gateway
 * is on; its presence for the current attempt means the cost is metered.
 */
export interface AttemptMeter {
  attempt: number;
  /** The attempt's spend limit (limits.max_task_budget_usd). */
  limitUsd: number;
  /** Metered plus still reserved. */
  committedUsd: number;
  /** What the settled requests cost. */
  meteredUsd: number;
  requests: number;
  /** Reservations of requests still in flight, by request id. */
  open: Record<string, number>;
  /** Why the gateway refused a request for good (the tree's budget is spent); a retry cannot help. */
  refusal?: string | undefined;
}

/** A caller's API key as stored: its SHA-256 and metadata, never the key itself. */
export interface ApiKeyRecord {
  sha256: string;
  keyId: string;
  tenant: string;
  name: string;
  createdAt: string;
  revokedAt?: string | undefined;
}

/** A subtask as planned or as given by the caller. */
export interface SubtaskSpec {
  title: string;
  prompt: string;
}

/** The worker's report of one attempt, as posted to the API. */
export interface WorkerOutcome {
  attempt: number;
  status: 'succeeded' | 'failed' | 'timed_out';
  output: string;
  filesCreated: string[];
  costUsd: number;
  numTurns: number;
  durationMs: number;
  usage?: TokenUsage | undefined;
  peakMemoryMb?: number | undefined;
  sessionId?: string | undefined;
  structuredOutput?: unknown;
  error?: string | undefined;
  exitCode?: number | undefined;
  /** False when retrying cannot help (e.g. the CLI is not logged in). */
  retryable: boolean;
  /** Set by the server when the model gateway metered the attempt: what the worker reported instead. */
  reportedCostUsd?: number | undefined;
  git?: TaskGitResult | undefined;
}
