/** Runtime settings from the validated config: defaults for jobs and the limits bodies must respect. */
import * as z from 'zod';
import type { OrchestratorConfig } from '../core/config.ts';
import { zodIssues } from '../core/errors.ts';
import type { Settings } from './deps.ts';

export function settingsFromConfig(config: OrchestratorConfig, apiUrl: string): Settings {
  return {
    apiUrl,
    presignExpirySec: 900,
    defaults: {
      maxWorkers: Math.min(config.workers.max_workers, config.limits.max_workers_per_job),
      defaultTimeoutSec: config.workers.default_timeout,
      maxRetries: config.workers.max_retries,
      enableRecursion: config.recursion.enable,
      maxRecursionDepth: config.recursion.max_depth,
      maxBudgetUsd: config.limits.max_spend_usd_per_root,
      model: config.orchestrator.model ?? undefined,
    },
    limits: {
      maxWorkersPerJob: config.limits.max_workers_per_job,
      maxRequestChars: config.limits.max_request_chars,
      maxTaskPromptChars: config.limits.max_task_prompt_chars,
      maxOutputChars: config.limits.max_output_chars,
      maxFilesPerWorker: config.limits.max_files_per_worker,
      maxTimeoutSec: 86_400,
      maxRetries: 10,
      maxRecursionDepth: config.recursion.max_depth,
      maxTasksPerRoot: config.limits.max_tasks_per_root,
      maxSpendUsdPerRoot: config.limits.max_spend_usd_per_root,
      maxTaskBudgetUsd: config.limits.max_task_budget_usd,
      maxSourceBytes: config.limits.max_source_mb * 1024 * 1024,
      maxCommitFileBytes: config.limits.max_commit_file_mb * 1024 * 1024,
      maxUploadBytesPerWorker: config.limits.max_upload_mb_per_worker * 1024 * 1024,
    },
    git: {
      allowHttp: config.git.allow_http,
      pushResults: config.git.push_results,
      tokenUsername: config.git.token_username,
    },
    worker: {
      maxRunning: config.workers.max_running,
      permissionMode: config.orchestrator.permission_mode,
      maxTurns: config.orchestrator.max_turns ?? undefined,
      progressIntervalMs: config.workers.progress_interval_ms,
      heartbeatTimeoutSec: config.workers.heartbeat_timeout,
    },
  };
}

const count = z.number().int().nonnegative();
const positiveCount = z.number().int().positive();
const usd = z.number().nonnegative();

const ModelPriceSchema = z.strictObject({
  input: usd,
  output: usd,
  cacheWrite: usd,
  cacheRead: usd,
  cacheWrite1h: usd,
  webSearch: usd,
});

/**
 * `Settings` as a deployment hands them to its Lambdas (JOB_SETTINGS): checked
 * at synth, before they are written, and again at each cold start, so a bad
 * or stale value fails there with the field named, not later in a use case.
 */
export const SettingsSchema: z.ZodType<Settings, Settings> = z.strictObject({
  defaults: z.strictObject({
    maxWorkers: positiveCount,
    defaultTimeoutSec: positiveCount,
    maxRetries: count,
    enableRecursion: z.boolean(),
    maxRecursionDepth: count,
    maxBudgetUsd: usd,
    model: z.string().min(1).optional(),
  }),
  limits: z.strictObject({
    maxWorkersPerJob: positiveCount,
    maxRequestChars: positiveCount,
    maxTaskPromptChars: positiveCount,
    maxOutputChars: positiveCount,
    maxFilesPerWorker: count,
    maxTimeoutSec: positiveCount,
    maxRetries: count,
    maxRecursionDepth: count,
    maxTasksPerRoot: positiveCount,
    maxSpendUsdPerRoot: usd,
    maxTaskBudgetUsd: usd,
    maxSourceBytes: positiveCount,
    maxCommitFileBytes: count,
    maxUploadBytesPerWorker: count,
  }),
  // Empty in a deployment's settings: the API's URL is not known at synth (see gatewayBaseUrl).
  apiUrl: z.string(),
  presignExpirySec: positiveCount,
  worker: z.strictObject({
    maxRunning: positiveCount,
    permissionMode: z.string().min(1),
    maxTurns: positiveCount.optional(),
    progressIntervalMs: positiveCount,
    heartbeatTimeoutSec: positiveCount,
  }),
  git: z.strictObject({
    allowHttp: z.boolean(),
    pushResults: z.boolean(),
    tokenUsername: z.string(),
  }),
  gateway: z
    .strictObject({
      enabled: z.boolean(),
      baseUrl: z.string().min(1).optional(),
      prices: z.record(z.string().min(1), ModelPriceSchema),
      upstreamUrl: z.url(),
    })
    .optional(),
});

/** JOB_SETTINGS as a Lambda reads it at cold start: JSON text holding settings that pass the schema. */
export const SettingsJsonSchema = z
  .string()
  .transform((text, ctx): unknown => {
    try {
      return JSON.parse(text);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `not JSON: ${(err as Error).message}` });
      return z.NEVER;
    }
  })
  .pipe(SettingsSchema);

/** The JSON a deployment writes to JOB_SETTINGS, once the settings pass the schema (at synth). */
export function settingsJson(settings: Settings): string {
  const parsed = SettingsSchema.safeParse(settings);
  if (!parsed.success) {
    const issues = zodIssues(parsed.error).map((i) => `${i.path}: ${i.message}`);
    throw new Error(`invalid JOB_SETTINGS: ${issues.join('; ')}`);
  }
  return JSON.stringify(settings);
}
