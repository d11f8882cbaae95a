/**
 * Request and response bodies of the HTTP API. Submissions follow the
 * original tool's JSON input (`request`, `config.max_workers`, ...), with
 * unknown fields refused and every size bounded.
 */
import { z } from 'zod';
import type { JobConfig, SubtaskSpec, WorkerOutcome } from './model.ts';

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
        max_budget_usd: z.number().positive().max(limits.maxSpendUsdPerRoot).optional(),
        model: z
          .string()
          .regex(/^[A-Za-z0-9._:@/-]{1,100}$/, 'a model id: letters, digits and . _ : @ / - only')
          .optional(),
      })
      .optional(),
    tasks: z.array(task).min(1).max(limits.maxWorkersPerJob).optional(),
  });
}

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

/** What a worker posts when its attempt ends. */
export function workerResultSchema(limits: ApiLimits) {
  return z.strictObject({
    attempt: z.number().int().min(1),
    status: z.enum(['succeeded', 'failed', 'timed_out']),
    // Cut rather than refuse: a long answer is still an answer.
    output: z.string().transform((s) => s.slice(0, limits.maxOutputChars * 4)),
    files_created: z.array(z.string().min(1).max(512)).max(limits.maxFilesPerWorker).default([]),
    cost_usd: z.number().min(0).max(1_000_000).default(0),
    num_turns: z.number().int().min(0).default(0),
    duration_ms: z.number().int().min(0).default(0),
    session_id: z.string().max(200).optional(),
    structured_output: z.unknown().optional(),
    error: z.string().max(4000).optional(),
    exit_code: z.number().int().optional(),
    retryable: z.boolean().default(true),
  });
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
  };
}

/** A worker asks where to upload its files; the server answers with presigned PUT URLs. */
export function uploadRequestSchema(limits: ApiLimits) {
  return z.strictObject({
    attempt: z.number().int().min(1),
    files: z.array(z.string().min(1).max(512)).max(limits.maxFilesPerWorker),
    include_log: z.boolean().default(true),
  });
}
