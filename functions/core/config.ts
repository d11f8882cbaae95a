/**
 * The orchestrator's configuration file (`config.yaml`, from
 * `config.template.yaml`): one zod schema for local mode and, later, CDK synth.
 * Parsing is pure: the caller reads the file and the environment.
 */
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { type FieldIssue, zodIssues } from './errors.ts';

const positiveInt = (max: number) => z.number().int().min(1).max(max);

const ApiKeySchema = z.strictObject({
  name: z.string().min(1).max(64),
  tenant: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'letters, digits, _ . - only (1-64)'),
  /** Hex SHA-256 of the key; the key itself never sits in a file. */
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be a lowercase hex SHA-256'),
});

export const ConfigSchema = z.strictObject({
  orchestrator: z
    .strictObject({
      workspace_root: z.string().min(1).default('./workspace'),
      claude_command: z.string().min(1).default('claude'),
      model: z.string().min(1).max(100).nullable().default(null),
      launcher: z.enum(['local', 'ecs']).default('local'),
      /** Claude Code permission mode for workers; they run unattended in a sandbox. */
      permission_mode: z
        .enum(['acceptEdits', 'auto', 'bypassPermissions', 'default', 'dontAsk', 'plan'])
        .default('bypassPermissions'),
      max_turns: positiveInt(500).nullable().default(null),
    })
    .prefault({}),
  workers: z
    .strictObject({
      max_workers: positiveInt(100).default(5),
      /** Seconds a worker may run before it is stopped and counted as timed out. */
      default_timeout: positiveInt(86_400).default(600),
      max_retries: z.number().int().min(0).max(10).default(2),
    })
    .prefault({}),
  recursion: z
    .strictObject({
      enable: z.boolean().default(false),
      max_depth: z.number().int().min(0).max(10).default(2),
    })
    .prefault({}),
  api: z
    .strictObject({
      host: z.string().min(1).default('127.0.0.1'),
      port: z.number().int().min(0).max(65_535).default(8000),
      keys: z.array(ApiKeySchema).max(1000).default([]),
    })
    .prefault({}),
  logging: z
    .strictObject({
      level: z.enum(['DEBUG', 'INFO', 'WARN', 'ERROR']).default('INFO'),
      enable_structured: z.boolean().default(true),
      log_dir: z.string().min(1).nullable().default(null),
    })
    .prefault({}),
  limits: z
    .strictObject({
      /** Upper bound a job's `config.max_workers` may ask for. */
      max_workers_per_job: positiveInt(100).default(20),
      max_request_chars: positiveInt(200_000).default(20_000),
      max_task_prompt_chars: positiveInt(200_000).default(20_000),
      /** Output kept in the task item; the full text is in the worker's log in S3. */
      max_output_chars: positiveInt(300_000).default(64_000),
      max_files_per_worker: positiveInt(10_000).default(500),
    })
    .prefault({}),
  aws: z
    .strictObject({
      region: z.string().min(1).default('us-east-1'),
      /** Resource names for local mode and LocalStack; a deployment names its own. */
      table_name: z.string().min(3).max(255).default('claude-orchestrator'),
      queue_name: z.string().min(1).max(80).default('claude-orchestrator-work'),
      bucket_name: z
        .string()
        .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be a valid S3 bucket name')
        .default('claude-orchestrator-artifacts'),
      /** Deliveries before a work message moves to the dead-letter queue. */
      max_receive_count: positiveInt(100).default(5),
    })
    .prefault({}),
});

export type OrchestratorConfig = z.infer<typeof ConfigSchema>;

export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly issues: FieldIssue[],
  ) {
    super(
      `invalid configuration in ${source}:\n${issues.map((i) => `  - ${i.path}: ${i.message}`).join('\n')}`,
    );
    this.name = 'ConfigError';
  }
}

/**
 * Environment variables that override the file, by config path. Text options
 * are taken verbatim; numbers and booleans are converted, and a value that does
 * not convert is left as text so the schema reports it with its path.
 */
export const ENV_OVERRIDES: Readonly<
  Record<string, readonly [string, string, 'text' | 'number' | 'boolean']>
> = {
  CLAUDE_COMMAND: ['orchestrator', 'claude_command', 'text'],
  CLAUDE_MODEL: ['orchestrator', 'model', 'text'],
  ORCHESTRATOR_WORKSPACE: ['orchestrator', 'workspace_root', 'text'],
  ORCHESTRATOR_LAUNCHER: ['orchestrator', 'launcher', 'text'],
  MAX_WORKERS: ['workers', 'max_workers', 'number'],
  DEFAULT_TIMEOUT: ['workers', 'default_timeout', 'number'],
  MAX_RETRIES: ['workers', 'max_retries', 'number'],
  ENABLE_RECURSION: ['recursion', 'enable', 'boolean'],
  MAX_RECURSION_DEPTH: ['recursion', 'max_depth', 'number'],
  LOG_LEVEL: ['logging', 'level', 'text'],
};

/**
 * Parses YAML text plus environment overrides into a validated config.
 * Throws ConfigError naming each bad option's path and the reason.
 */
export function parseConfig(
  yamlText: string | undefined,
  env: Record<string, string | undefined> = {},
  source = 'config',
): OrchestratorConfig {
  let raw: unknown;
  try {
    raw = yamlText === undefined || yamlText.trim() === '' ? {} : parseYaml(yamlText);
  } catch (err) {
    throw new ConfigError(source, [{ path: '(file)', message: `not valid YAML: ${(err as Error).message}` }]);
  }
  if (raw === null || raw === undefined) raw = {};
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(source, [{ path: '(root)', message: 'expected a mapping of sections' }]);
  }
  const merged = structuredClone(raw) as Record<string, Record<string, unknown>>;
  // `workers:` with every key commented out parses as null; it means "all defaults".
  for (const [section, value] of Object.entries(merged)) if (value === null) merged[section] = {};
  for (const [variable, [section, key, kind]] of Object.entries(ENV_OVERRIDES)) {
    const value = env[variable];
    if (value === undefined || value === '') continue;
    const current = merged[section];
    // A section that is not a mapping stays as it is, so the schema still reports it.
    if (current !== undefined && (current === null || typeof current !== 'object' || Array.isArray(current)))
      continue;
    merged[section] = { ...(current ?? {}), [key]: convert(value, kind) };
  }
  const result = ConfigSchema.safeParse(merged);
  if (!result.success) throw new ConfigError(source, zodIssues(result.error));
  return result.data;
}

function convert(value: string, kind: 'text' | 'number' | 'boolean'): unknown {
  if (kind === 'number') {
    const n = Number(value.trim());
    return value.trim() !== '' && Number.isFinite(n) ? n : value;
  }
  if (kind === 'boolean') {
    const v = value.trim().toLowerCase();
    return v === 'true' ? true : v === 'false' ? false : value;
  }
  return value;
}
