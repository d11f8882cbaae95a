/**
 * Request and response bodies of the HTTP API. Submissions follow the
 * original tool's JSON input (`request`, `config.max_workers`, ...), with
 * unknown fields refused and every size bounded.
 */
import * as z from 'zod';
import { roundUsd } from './accounting.ts';
import { OBJECT_ID } from './git-source.ts';
import type { JobConfig, SubtaskSpec, TaskGitResult, TaskKind, WorkerOutcome } from './model.ts';
import { MAX_EVENTS_PER_POST, WorkerEventSchema } from './progress.ts';

/** The limits the server applies to bodies; they come from the deployment config. */
export interface ApiLimits {
  maxWorkersPerJob: number;
  maxRequestChars: number;
  maxTaskPromptChars: number;
  maxOutputChars: number;
  maxFilesPerWorker: number;
  maxTimeoutSec: number;
  maxRetries: number;
  maxRecursionDepth: number;
  maxTasksPerRoot: number;
  maxSpendUsdPerRoot: number;
  maxTaskBudgetUsd: number;
  /** Largest repository bundle a job may start from. */
  maxSourceBytes: number;
  /** A changed file larger than this is left out of a worker's commit. */
  maxCommitFileBytes: number;
  /** Bytes one worker attempt may be given upload links for, in all. */
  maxUploadBytesPerWorker: number;
}

/** Job settings used when a submission leaves them out. */
export interface JobDefaults {
  maxWorkers: number;
  defaultTimeoutSec: number;
  maxRetries: number;
  enableRecursion: boolean;
  maxRecursionDepth: number;
  maxBudgetUsd: number;
  model?: string | undefined;
}

/** The smallest budget a job may set: a cent (below it no worker can run, see MIN_ATTEMPT_BUDGET_USD). */
export const MIN_BUDGET_USD = 0.01;

/**
 * Dollars in whole cents, from a cent to `max`. Anything else (0, negatives,
 * 1e-300, 1e308, fractions of a cent) is refused with the reason, never
 * passed on to a store whose numbers it would under- or overflow.
 */
export const usdAmount = (max: number, maxName: string) =>
  z
    .number({ error: 'must be a number of dollars' })
    .min(MIN_BUDGET_USD, `must be at least ${MIN_BUDGET_USD} (one cent)`)
    .max(max, `must be at most ${max} (${maxName})`)
    .refine((usd) => Math.round(usd * 100) / 100 === usd, 'must be in whole cents (at most 2 decimals)');

const text = (max: number) =>
  z.string().trim().min(1, 'must not be empty').max(max, `at most ${max} characters`);

export function submitBodySchema(limits: ApiLimits) {
  const task = z.strictObject({
    title: z.string().trim().min(1).max(200).optional(),
    prompt: text(limits.maxTaskPromptChars),
  });
  return z.strictObject({
    request: text(limits.maxRequestChars),
    config: z
      .strictObject({
        max_workers: z.number().int().min(1).max(limits.maxWorkersPerJob).optional(),
        default_timeout: z.number().int().min(1).max(limits.maxTimeoutSec).optional(),
        max_retries: z.number().int().min(0).max(limits.maxRetries).optional(),
        enable_recursion: z.boolean().optional(),
        max_recursion_depth: z.number().int().min(0).max(limits.maxRecursionDepth).optional(),
        max_budget_usd: usdAmount(limits.maxSpendUsdPerRoot, 'limits.max_spend_usd_per_root').optional(),
        model: z
          .string()
          .regex(/^[A-Za-z0-9._:@/-]{1,100}$/, 'a model id: letters, digits and . _ : @ / - only')
          .optional(),
      })
      .optional(),
    tasks: z.array(task).min(1).max(limits.maxWorkersPerJob).optional(),
    source: sourceSchema.optional(),
  });
}

/** Source bundle ids: `src_` and 32 hex digits (16 random bytes). */
export const BUNDLE_ID = /^src_[0-9a-f]{32}$/;

/**
 * The repository a job works on: a git URL fetched by a step without AI, or a
 * bundle uploaded through `POST /sources`. Exactly one of the two.
 */
const sourceSchema = z
  .strictObject({
    git: z
      .strictObject({
        url: z.string().trim().min(1).max(2000),
        ref: z.string().trim().min(1).max(200).optional(),
      })
      .optional(),
    bundle_id: z.string().regex(BUNDLE_ID, 'an id returned by POST /api/v1/sources').optional(),
    /** Which ref of the uploaded bundle is the base, when it has several. */
    ref: z.string().trim().min(1).max(200).optional(),
  })
  .superRefine((s, ctx) => {
    if ((s.git === undefined) === (s.bundle_id === undefined))
      ctx.addIssue({ code: 'custom', path: [], message: 'give exactly one of git or bundle_id' });
    if (s.git !== undefined && s.ref !== undefined)
      ctx.addIssue({ code: 'custom', path: ['ref'], message: 'for a git source, give the ref as git.ref' });
  });

export type SourceBody = z.infer<typeof sourceSchema>;

/** `POST /sources`: the size of the bundle about to be uploaded, checked against limits.max_source_mb. */
export const CreateSourceBodySchema = z.strictObject({
  size_bytes: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
});

export type SubmitBody = z.infer<ReturnType<typeof submitBodySchema>>;

/** Merges a submission's `config` over the deployment defaults. */
export function resolveJobConfig(body: SubmitBody, defaults: JobDefaults): JobConfig {
  const c = body.config ?? {};
  return {
    maxWorkers: c.max_workers ?? defaults.maxWorkers,
    defaultTimeoutSec: c.default_timeout ?? defaults.defaultTimeoutSec,
    maxRetries: c.max_retries ?? defaults.maxRetries,
    enableRecursion: c.enable_recursion ?? defaults.enableRecursion,
    maxRecursionDepth: c.max_recursion_depth ?? defaults.maxRecursionDepth,
    maxBudgetUsd: c.max_budget_usd ?? defaults.maxBudgetUsd,
    model: c.model ?? defaults.model,
  };
}

/** Caller-given tasks as subtask specs, titled when the caller left the title out. */
export function givenSubtasks(body: SubmitBody): SubtaskSpec[] | undefined {
  return body.tasks?.map((t, i) => ({ title: t.title ?? `Task ${i + 1}`, prompt: t.prompt }));
}

export const ListJobsQuerySchema = z.strictObject({
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z.string().max(2048).optional(),
});

/** Deeper than any structured output or git result we read; the server hashes and stores these values. */
const MAX_RESULT_DEPTH = 64;

/** Whether a parsed JSON value nests at most `max` arrays/objects deep; iterative, so any depth is safe to ask. */
export function jsonDepthWithin(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop() as [unknown, number];
    if (v === null || typeof v !== 'object') continue;
    if (depth + 1 > max) return false;
    for (const child of Object.values(v)) stack.push([child, depth + 1]);
  }
  return true;
}

const boundedJson = z
  .unknown()
  .refine((v) => jsonDepthWithin(v, MAX_RESULT_DEPTH), `nested deeper than ${MAX_RESULT_DEPTH} levels`);

/** A token count of one attempt: far above any real session, far below where numbers lose precision. */
const tokenCount = z.number().int().min(0).max(1e12).default(0);

/** What a worker posts when its attempt ends. */
export function workerResultSchema(limits: ApiLimits) {
  return z.strictObject({
    attempt: z.number().int().min(1),
    status: z.enum(['succeeded', 'failed', 'timed_out']),
    // Cut rather than refuse: a long answer is still an answer.
    output: z.string().transform((s) => s.slice(0, limits.maxOutputChars * 4)),
    files_created: z.array(z.string().min(1).max(512)).max(limits.maxFilesPerWorker).default([]),
    // To the micro-dollar, like every total: 1e-300 would underflow the store's numbers.
    cost_usd: z.number().min(0).max(1_000_000).default(0).transform(roundUsd),
    num_turns: z.number().int().min(0).default(0),
    duration_ms: z.number().int().min(0).default(0),
    session_id: z.string().max(200).optional(),
    structured_output: boundedJson.optional(),
    error: z.string().max(4000).optional(),
    exit_code: z.number().int().optional(),
    retryable: z.boolean().default(true),
    /** Repository jobs: what the attempt did in git; checked against the task's kind (gitResultSchema). */
    git: z.record(z.string(), boundedJson).optional(),
    /** Tokens of the attempt's Claude sessions, as the CLI reported them; for the reports only, never billed. */
    usage: z
      .strictObject({
        input_tokens: tokenCount,
        output_tokens: tokenCount,
        cache_read_input_tokens: tokenCount,
        cache_creation_input_tokens: tokenCount,
      })
      .optional(),
    peak_memory_mb: z.number().min(0).max(1_048_576).optional(),
    /** The progress events not posted yet (a short attempt's only ones); stored before the result. */
    events: z.array(WorkerEventSchema).max(MAX_EVENTS_PER_POST).optional(),
  });
}

const repoPath = z.string().min(1).max(1024);
/** The most paths a worker may list per kind of change; the server keeps limits.max_files_per_worker of them. */
const MAX_REPORTED_PATHS = 10_000;
const objectId = z.string().regex(OBJECT_ID, 'a full git object id');
const count = z.number().int().min(0).max(1e9);

/** The `git` part of a worker's result, by the kind of its task; undefined for kinds without one. */
export function gitResultSchema(kind: TaskKind, limits: ApiLimits) {
  // Lists are cut to the deployment's bound rather than refused: the patch has everything.
  const max = limits.maxFilesPerWorker;
  const paths = z.array(repoPath).max(MAX_REPORTED_PATHS);
  const cut = (list: string[]) => list.slice(0, max);
  switch (kind) {
    case 'work':
      return z
        .strictObject({
          commit: objectId.nullable(),
          files: z.strictObject({ added: paths, modified: paths, deleted: paths }),
          insertions: count,
          deletions: count,
          excluded: z
            .array(z.strictObject({ path: repoPath, reason: z.string().max(500) }))
            .max(MAX_REPORTED_PATHS)
            .default([]),
          truncated: z.boolean().default(false),
        })
        .transform((g): TaskGitResult => {
          const { added, modified, deleted } = g.files;
          const over = [added, modified, deleted, g.excluded].some((l) => l.length > max);
          return {
            kind: 'work',
            ...(g.commit ? { commit: g.commit } : {}),
            files: { added: cut(added), modified: cut(modified), deleted: cut(deleted) },
            insertions: g.insertions,
            deletions: g.deletions,
            excluded: g.excluded.slice(0, max),
            truncated: g.truncated || over,
          };
        });
    case 'merge':
      return z
        .strictObject({
          branch: z.string().min(1).max(200),
          base_commit: objectId,
          head_commit: objectId,
          merged: z
            .array(
              z.strictObject({
                worker_id: z.string().min(1).max(200),
                task_no: z.number().int().min(1),
                commit: objectId,
                outcome: z.enum(['merged', 'resolved', 'left_out']),
                insertions: count,
                deletions: count,
                files_changed: count,
              }),
            )
            .max(limits.maxWorkersPerJob),
          conflicts: z
            .array(
              z.strictObject({
                workers: z.array(z.string().min(1).max(200)).min(1).max(limits.maxWorkersPerJob),
                files: z.array(repoPath).max(200),
                hunks: z.array(z.string().max(4000)).max(20),
                resolution: z.enum(['resolved', 'left_out']),
                reason: z.string().max(2000).optional(),
              }),
            )
            .max(limits.maxWorkersPerJob),
          insertions: count,
          deletions: count,
          files_changed: count,
        })
        .transform(
          (g): TaskGitResult => ({
            kind: 'merge',
            branch: g.branch,
            baseCommit: g.base_commit,
            headCommit: g.head_commit,
            merged: g.merged.map((m) => ({
              workerId: m.worker_id,
              taskNo: m.task_no,
              commit: m.commit,
              outcome: m.outcome,
              insertions: m.insertions,
              deletions: m.deletions,
              filesChanged: m.files_changed,
            })),
            conflicts: g.conflicts,
            insertions: g.insertions,
            deletions: g.deletions,
            filesChanged: g.files_changed,
          }),
        );
    case 'source':
      return z
        .strictObject({ base_commit: objectId })
        .transform((g): TaskGitResult => ({ kind: 'source', baseCommit: g.base_commit }));
    case 'push':
      return z
        .strictObject({ remote_ref: z.string().min(1).max(300) })
        .transform((g): TaskGitResult => ({ kind: 'push', remoteRef: g.remote_ref }));
    default:
      return undefined;
  }
}

export function toWorkerOutcome(body: z.infer<ReturnType<typeof workerResultSchema>>): WorkerOutcome {
  return {
    attempt: body.attempt,
    status: body.status,
    output: body.output,
    filesCreated: body.files_created,
    costUsd: body.cost_usd,
    numTurns: body.num_turns,
    durationMs: body.duration_ms,
    sessionId: body.session_id,
    structuredOutput: body.structured_output,
    error: body.error,
    exitCode: body.exit_code,
    retryable: body.retryable,
    ...(body.usage && {
      usage: {
        inputTokens: body.usage.input_tokens,
        outputTokens: body.usage.output_tokens,
        cacheReadInputTokens: body.usage.cache_read_input_tokens,
        cacheCreationInputTokens: body.usage.cache_creation_input_tokens,
      },
    }),
    ...(body.peak_memory_mb !== undefined && { peakMemoryMb: Math.round(body.peak_memory_mb) }),
  };
}

/**
 * The `git` part of a result, checked against what the task's kind may
 * report; the issues name the offending fields under `git.`.
 */
export function parseGitResult(
  kind: TaskKind,
  raw: unknown,
  limits: ApiLimits,
): { ok: true; value: TaskGitResult } | { ok: false; issues: { path: string; message: string }[] } {
  const schema = gitResultSchema(kind, limits);
  if (!schema)
    return { ok: false, issues: [{ path: 'git', message: `a ${kind} task reports no git result` }] };
  const parsed = schema.safeParse(raw);
  if (parsed.success) return { ok: true, value: parsed.data };
  return {
    ok: false,
    issues: parsed.error.issues.map((i) => ({
      path: ['git', ...i.path.map(String)].join('.'),
      message: i.code === 'unrecognized_keys' ? `unknown field(s): ${i.keys.join(', ')}` : i.message,
    })),
  };
}

/** Git artifacts a worker may upload, by name; where each goes depends on its task's kind. */
export const GIT_ARTIFACTS = ['bundle', 'patch', 'snapshot'] as const;
export type GitArtifact = (typeof GIT_ARTIFACTS)[number];

/** S3's largest single PUT. */
const MAX_PUT_BYTES = 5 * 1024 ** 3;
const sizeBytes = z.number().int().min(0).max(MAX_PUT_BYTES);

/**
 * A worker asks where to upload its files, its log and its git artifacts,
 * each with its exact size; the server answers with presigned PUT URLs that
 * sign that size. A file named by a bare string (no size) is refused by name,
 * like an unsafe path, not the whole request.
 */
export function uploadRequestSchema(limits: ApiLimits) {
  return z.strictObject({
    attempt: z.number().int().min(1),
    files: z
      .array(
        z.union([
          z.string().min(1).max(512),
          z.strictObject({ path: z.string().min(1).max(512), size_bytes: sizeBytes }),
        ]),
      )
      .max(limits.maxFilesPerWorker)
      .default([]),
    log_bytes: sizeBytes.optional(),
    git: z
      .array(z.strictObject({ name: z.enum(GIT_ARTIFACTS), size_bytes: sizeBytes }))
      .max(GIT_ARTIFACTS.length)
      .default([]),
  });
}

export type UploadRequest = z.infer<ReturnType<typeof uploadRequestSchema>>;
