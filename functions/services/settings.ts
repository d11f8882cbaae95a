/** Runtime settings from the validated config: defaults for jobs and the limits bodies must respect. */
import type { OrchestratorConfig } from '../core/config.ts';
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
