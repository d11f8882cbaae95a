/**
 * The orchestrator's configuration file (`config.yaml`, from
 * `config.template.yaml`): one zod schema for local mode and, later, CDK synth.
 * Parsing is pure: the caller reads the file and the environment.
 */
import { parse as parseYaml } from 'yaml';
import * as z from 'zod';
import { type FieldIssue, zodIssues } from './errors.ts';

const positiveInt = (max: number) => z.number().int().min(1).max(max);

/** USD per million tokens; `cache_write_1h` defaults to twice `input`, `web_search` (per search) to 0.01. */
const ModelPriceSchema = z.strictObject({
  input: z.number().min(0).max(10_000),
  output: z.number().min(0).max(10_000),
  cache_write: z.number().min(0).max(10_000),
  cache_read: z.number().min(0).max(10_000),
  cache_write_1h: z.number().min(0).max(10_000).optional(),
  web_search: z.number().min(0).max(100).optional(),
});

const ApiKeySchema = z.strictObject({
  name: z.string().min(1).max(64),
  tenant: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'letters, digits, _ . - only (1-64)'),
  /** Hex SHA-256 of the key; the key itself never sits in a file. */
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be a lowercase hex SHA-256'),
});

/** Names `orchestrator.worker_env` may not pass on: the orchestrator's keys, AWS and git credentials. */
const WORKER_ENV_REFUSED =
  /^(ORCHESTRATOR_.*|AWS_.*|ANTHROPIC_API_KEY|ANTHROPIC_AUTH_TOKEN|GIT_TOKEN|GH_TOKEN|GITHUB_TOKEN|NODE_OPTIONS)$/;

export const ConfigSchema = z
  .strictObject({
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
        /** Local workers' jail: auto (bubblewrap when installed and working, Linux), bwrap (required), none. */
        sandbox: z.enum(['auto', 'bwrap', 'none']).default('auto'),
        /**
         * Variables of the orchestrator's environment its local workers also get, by name (they
         * otherwise get only locale, paths, terminal and proxies). Credentials are refused.
         */
        worker_env: z
          .array(
            z
              .string()
              .regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, 'must be an environment variable name')
              .refine((name) => !WORKER_ENV_REFUSED.test(name), 'is a credential: workers never get it'),
          )
          .max(100)
          .default([]),
      })
      .prefault({}),
    workers: z
      .strictObject({
        max_workers: positiveInt(100).default(5),
        /** Seconds a worker may run before it is stopped and counted as timed out. */
        default_timeout: positiveInt(86_400).default(600),
        max_retries: z.number().int().min(0).max(10).default(2),
        /** Workers running at once across every job of the deployment. */
        max_running: positiveInt(10_000).default(50),
        /** Least time between a worker's progress posts (what `watch` shows; each is an API call). */
        progress_interval_ms: z.number().int().min(500).max(60_000).default(2_000),
        /** A running worker that has posted nothing (not even a heartbeat) for this long is treated as lost. */
        heartbeat_timeout: z.number().int().min(10).max(86_400).default(300),
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
        /** Tasks one root job's whole tree may create, recursion included. */
        max_tasks_per_root: positiveInt(10_000).default(100),
        /** Highest spend (sum of workers' total_cost_usd) a root job's tree may reach; a job may set less. */
        max_spend_usd_per_root: z
          .number()
          .min(0.01, 'must be at least 0.01 (one cent)')
          .max(100_000)
          .default(25),
        /** Most one worker attempt may spend (`claude --max-budget-usd`), within what the tree has left. */
        max_task_budget_usd: z.number().min(0.01, 'must be at least 0.01 (one cent)').max(10_000).default(5),
        /** Largest repository bundle a job may start from (`POST /sources`, `orchestrator run`, a fetched URL). */
        max_source_mb: positiveInt(5_000).default(500),
        /** A file a worker changed that is larger than this is left out of its commit, with the reason. */
        max_commit_file_mb: positiveInt(1_000).default(10),
        /** Bytes one worker attempt may upload in all (files, log, git artifacts); each link signs its file's size. */
        max_upload_mb_per_worker: positiveInt(100_000).default(100),
      })
      .prefault({}),
    /** Jobs on a repository (`source` on a job); both local mode and the deployment read it. */
    git: z
      .strictObject({
        /** Accept http:// remotes as well as https:// (for tests and trusted networks only). */
        allow_http: z.boolean().default(false),
        /** Push the merged branch `fleet/<job_id>` back to a git URL source, from a step without AI. */
        push_results: z.boolean().default(false),
        /** User name sent with the token (GitHub: x-access-token, GitLab: oauth2). */
        token_username: z.string().min(1).max(100).default('x-access-token'),
      })
      .prefault({}),
    /**
     * The model gateway: workers reach Claude only through the API, with their
     * task token, and every request is metered and held to the budgets.
     */
    gateway: z
      .strictObject({
        /** `auto`: on when the orchestrator has ANTHROPIC_API_KEY (or ANTHROPIC_AUTH_TOKEN) in its environment. */
        enabled: z
          .union([z.literal('auto'), z.boolean()], { error: 'must be auto, true or false' })
          .default('auto'),
        /** Where requests go; null: ANTHROPIC_BASE_URL, else https://api.anthropic.com. */
        upstream_url: z
          .url({ protocol: /^https?$/ })
          .nullable()
          .default(null),
        /** Model id → price, added to (and overriding) the built-in table; a model in neither is refused. */
        prices: z
          .record(z.string().min(1).max(200), ModelPriceSchema)
          .default({})
          .superRefine((prices, ctx) => {
            for (const model of Object.keys(prices))
              if (model === '__proto__' || model === 'constructor' || model === 'prototype')
                ctx.addIssue({ code: 'custom', path: [model], message: 'not a model id' });
          }),
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
    /** The AWS deployment (`cdk deploy`); local mode ignores it. */
    deploy: z
      .strictObject({
        stack_name: z
          .string()
          .regex(/^[A-Za-z][A-Za-z0-9-]{0,127}$/, 'a CloudFormation stack name')
          .default('ClaudeOrchestrator'),
        /** `retain` keeps the table and bucket when the stack is deleted; `destroy` removes them (and the bucket's objects). */
        removal_policy: z.enum(['retain', 'destroy']).default('retain'),
        /** Days before a job's artifacts expire from S3; 0 keeps them forever. */
        artifact_retention_days: z.number().int().min(0).max(3650).default(90),
        /** CloudWatch Logs retention for every log group (must be a value CloudWatch accepts). */
        log_retention_days: z
          .union(
            [
              1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
              3288, 3653,
            ].map((n) => z.literal(n)),
          )
          .default(30),
        worker: z
          .strictObject({
            /** Fargate CPU units and memory (MiB); the pair must be a valid Fargate size. */
            cpu: z.union([256, 512, 1024, 2048, 4096, 8192, 16384].map((n) => z.literal(n))).default(1024),
            memory_mib: z.number().int().min(512).max(122_880).default(4096),
            architecture: z.enum(['arm64', 'x86_64']).default('arm64'),
            /** Fargate Spot is about 70% cheaper; an interrupted worker is retried. */
            spot: z.boolean().default(true),
            /** Seconds ECS waits after SIGTERM before SIGKILL (Fargate allows up to 120). */
            stop_timeout_sec: z.number().int().min(2).max(120).default(60),
          })
          .prefault({}),
        anthropic: z
          .strictObject({
            /** How the model gateway reaches Claude: `api_key`, the Anthropic API with a key from Secrets Manager; `bedrock`, Amazon Bedrock with the gateway's own role. Workers get neither. */
            mode: z.enum(['api_key', 'bedrock']).default('api_key'),
            /** Name of an existing secret holding the key; created empty (to fill in) when null. */
            secret_name: z.string().min(1).max(512).nullable().default(null),
            bedrock_region: z.string().min(1).nullable().default(null),
            /**
             * bedrock mode: model id as the CLI sends it → Bedrock model or inference profile id. The
             * gateway's role may invoke exactly these; any other model is refused.
             */
            bedrock_models: z.record(z.string().min(1).max(100), z.string().min(1).max(300)).default({
              'claude-sonnet-4-5-20250929': 'global.anthropic.claude-sonnet-4-5-20250929-v1:0',
              'claude-haiku-4-5-20251001': 'global.anthropic.claude-haiku-4-5-20251001-v1:0',
            }),
          })
          .prefault({}),
        vpc: z
          .strictObject({
            /** Import an existing VPC instead of creating one. */
            vpc_id: z
              .string()
              .regex(/^vpc-[0-9a-f]+$/, 'a VPC id like vpc-0abc…')
              .nullable()
              .default(null),
            /** Subnets for the workers when importing; they need a route to the internet (NAT) or the endpoints they call. */
            subnet_ids: z
              .array(z.string().regex(/^subnet-[0-9a-f]+$/, 'a subnet id like subnet-0abc…'))
              .default([]),
            max_azs: z.number().int().min(1).max(6).default(2),
            /** NAT gateways of a created VPC; 0 puts workers in public subnets with public IPs (cheapest idle). */
            nat_gateways: z.number().int().min(0).max(6).default(0),
          })
          .prefault({}),
        dispatcher: z
          .strictObject({
            timeout_sec: z.number().int().min(10).max(900).default(60),
            /** Most dispatcher Lambdas running at once (SQS event source maximum concurrency, 2-1000). */
            max_concurrency: z.number().int().min(2).max(1000).default(5),
            batch_size: z.number().int().min(1).max(10).default(10),
          })
          .prefault({}),
        api: z
          .strictObject({
            throttle_rate_per_sec: z.number().min(1).max(10_000).default(20),
            throttle_burst: z.number().int().min(1).max(5_000).default(40),
          })
          .prefault({}),
        git: z
          .strictObject({
            /**
             * Secrets Manager secret holding a token for private git remotes. Only the steps that run
             * no AI (fetching a URL source, pushing a result) receive it; null: public remotes only.
             */
            token_secret_name: z.string().min(1).max(512).nullable().default(null),
          })
          .prefault({}),
        /** Email address for alarm notifications; null creates the alarms without a subscription. */
        alarm_email: z.email().nullable().default(null),
      })
      .prefault({})
      .superRefine((d, ctx) => {
        if (d.vpc.vpc_id && d.vpc.subnet_ids.length === 0) {
          ctx.addIssue({
            code: 'custom',
            path: ['vpc', 'subnet_ids'],
            message: 'required when vpc.vpc_id is set',
          });
        }
        const { cpu, memory_mib: mem } = d.worker;
        const ranges: Record<number, [number, number, number]> = {
          256: [512, 2048, 512],
          512: [1024, 4096, 1024],
          1024: [2048, 8192, 1024],
          2048: [4096, 16384, 1024],
          4096: [8192, 30720, 1024],
          8192: [16384, 61440, 4096],
          16384: [32768, 122880, 8192],
        };
        const [min, max, step] = ranges[cpu] as [number, number, number];
        if (mem < min || mem > max || (mem - min) % step !== 0) {
          ctx.addIssue({
            code: 'custom',
            path: ['worker', 'memory_mib'],
            message: `not a Fargate size for cpu ${cpu}: use ${min}-${max} MiB in steps of ${step}`,
          });
        }
      }),
  })
  .superRefine((c, ctx) => {
    // Through Bedrock the gateway can reach only the mapped models, and the CLI's default (an opus id)
    // is not one of them unless mapped: say so at synth, not as a 400 in every worker.
    if (c.deploy.anthropic.mode !== 'bedrock') return;
    const mapped = Object.keys(c.deploy.anthropic.bedrock_models);
    const model = c.orchestrator.model;
    if (model === null || !mapped.includes(model)) {
      ctx.addIssue({
        code: 'custom',
        path: ['orchestrator', 'model'],
        message: `with deploy.anthropic.mode bedrock, set it to a model of deploy.anthropic.bedrock_models (${mapped.join(', ') || 'none mapped'})${model === null ? ": the CLI's default model has no Bedrock mapping" : ''}`,
      });
    }
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
  ORCHESTRATOR_SANDBOX: ['orchestrator', 'sandbox', 'text'],
  MAX_WORKERS: ['workers', 'max_workers', 'number'],
  DEFAULT_TIMEOUT: ['workers', 'default_timeout', 'number'],
  MAX_RETRIES: ['workers', 'max_retries', 'number'],
  ENABLE_RECURSION: ['recursion', 'enable', 'boolean'],
  MAX_RECURSION_DEPTH: ['recursion', 'max_depth', 'number'],
  LOG_LEVEL: ['logging', 'level', 'text'],
  MODEL_GATEWAY: ['gateway', 'enabled', 'boolean'],
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
  /** Config paths an environment variable set, so an error names the variable, not the file. */
  const fromEnv = new Map<string, string>();
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
    fromEnv.set(
      `${section}.${key}`,
      `${variable}=${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`,
    );
  }
  const result = ConfigSchema.safeParse(merged);
  if (!result.success) {
    const issues = zodIssues(result.error);
    const named = issues.map((i) => {
      const variable = fromEnv.get(i.path);
      return variable ? { path: i.path, message: `${i.message} (set by the environment: ${variable})` } : i;
    });
    const envOnly = issues.length > 0 && issues.every((i) => fromEnv.has(i.path));
    throw new ConfigError(envOnly ? 'the environment' : source, named);
  }
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
