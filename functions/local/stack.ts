/**
 * Local mode: the whole orchestrator in one process on the AWS code path.
 * Embedded emulators (or LocalStack, when AWS_ENDPOINT_URL is set), the same
 * handlers behind a local API Gateway stand-in, the queue consumer behind a
 * local SQS poller, and workers as child processes.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Artifacts } from '../adapters/artifacts.ts';
import { type ClientOptions, createAwsClients, endpointFor } from '../adapters/aws-clients.ts';
import { anthropicUpstream, type ModelUpstream } from '../adapters/model-upstream.ts';
import { ensureResources } from '../adapters/provision.ts';
import { tableStores } from '../adapters/table-stores.ts';
import { WorkQueue } from '../adapters/work-queue.ts';
import type { OrchestratorConfig } from '../core/config.ts';
import { formatApiKey, sha256Hex } from '../core/tokens.ts';
import { EVENT_STREAM_MAX_MS, openEventStream } from '../handlers/api/event-stream.ts';
import { createApiHandler } from '../handlers/api/router.ts';
import { createAuthorizer } from '../handlers/authorizer.ts';
import { createDeadLetterConsumer } from '../handlers/dead-letter-consumer.ts';
import { errorResult } from '../handlers/http.ts';
import { createQueueConsumer } from '../handlers/queue-consumer.ts';
import { aggregateJob } from '../services/aggregate.ts';
import type { Deps, DispatchDeps, Log } from '../services/deps.ts';
import { gatewaySettingsFromConfig, serveModelRequest } from '../services/model-gateway.ts';
import { sweepActiveTasks } from '../services/reconcile.ts';
import { recordLostWorker } from '../services/record-result.ts';
import { settingsFromConfig } from '../services/settings.ts';
import { type Emulators, startEmulators } from './emulators.ts';
import { startLocalApi } from './http-server.ts';
import { LocalLauncher, workerScratchParent } from './local-launcher.ts';
import { logMetrics } from './local-log.ts';
import { startQueuePoller } from './queue-poller.ts';
import { type ResolvedSandbox, resolveSandbox } from './sandbox.ts';

export interface LocalStackOptions {
  config: OrchestratorConfig;
  log: Log;
  /** Port for the API; 0 picks a free one. */
  port?: number;
  /** Extra environment for worker processes. */
  workerEnv?: NodeJS.ProcessEnv;
  /** Use these endpoints instead of starting emulators (LocalStack); defaults to the SDK's variables. */
  env?: NodeJS.ProcessEnv;
  /** SDK middleware for the stack's clients (call counting, fault injection). */
  clientOptions?: ClientOptions;
  /** Keep DynamoDB on disk here (so the emulators can be restarted mid-run). */
  dataDir?: string;
  /** Token for private git remotes; defaults to ORCHESTRATOR_GIT_TOKEN. Only steps without AI receive it. */
  gitToken?: string;
  /**
   * Where the model gateway finds its credential and upstream (ANTHROPIC_API_KEY or ANTHROPIC_AUTH_TOKEN,
   * ANTHROPIC_BASE_URL); defaults to `env`, then the process environment. With one, `gateway.enabled: auto`
   * turns the gateway on, and workers reach the model only through it.
   */
  modelEnv?: NodeJS.ProcessEnv;
  /** The gateway's upstream instead of one built from `modelEnv` (tests). */
  upstream?: ModelUpstream;
  /** With the gateway off, workers use the user's own Claude login (`claude /login`); never shared with it on. */
  shareClaudeLogin?: boolean;
  /** How workers are jailed, when already decided (the CLI's preflight); otherwise from orchestrator.sandbox. */
  sandbox?: ResolvedSandbox;
  /** More paths a sandboxed worker may write (tests: the test double's log and state). */
  workerWritablePaths?: string[];
}

export interface LocalStack {
  apiUrl: string;
  deps: DispatchDeps;
  launcher: LocalLauncher;
  /** How the workers are jailed. */
  sandbox: ResolvedSandbox;
  /** Where the endpoints came from. */
  backend: 'embedded' | 'external';
  /** Endpoint variables and table name other local tools (`orchestrator keys`) can use to reach this stack. */
  dataPlane: { env: Record<string, string>; tableName: string };
  /** Creates an API key for a tenant and returns it (shown once; only its hash is stored). */
  createApiKey(tenant: string, name?: string, key?: string): Promise<string>;
  stop(): Promise<void>;
}

export async function startLocalStack(options: LocalStackOptions): Promise<LocalStack> {
  const { config, log } = options;
  const outerEnv = options.env ?? process.env;
  const external = Boolean(
    endpointFor('DYNAMODB', outerEnv) && endpointFor('SQS', outerEnv) && endpointFor('S3', outerEnv),
  );
  let emulators: Emulators | undefined;
  const cleanups: (() => Promise<void>)[] = [];
  try {
    let clientEnv: NodeJS.ProcessEnv = { ...outerEnv, AWS_REGION: outerEnv.AWS_REGION ?? config.aws.region };
    if (!external) {
      emulators = await startEmulators({
        region: config.aws.region,
        ...(options.dataDir ? { dataDir: options.dataDir } : {}),
      });
      const started = emulators;
      cleanups.push(() => started.stop());
      clientEnv = { ...clientEnv, ...emulators.env };
    }
    const clients = createAwsClients(clientEnv, options.clientOptions);
    const resources = await ensureResources(clients, {
      tableName: config.aws.table_name,
      queueName: config.aws.queue_name,
      deadLetterQueueName: `${config.aws.queue_name}-dlq`,
      bucketName: config.aws.bucket_name,
      maxReceiveCount: config.aws.max_receive_count,
      visibilityTimeoutSec: 60,
    });
    const stores = tableStores(clients.ddb, resources.tableName);
    const queue = new WorkQueue(clients.sqs, resources.queueUrl);
    const artifacts = new Artifacts(clients.s3, resources.bucketName);

    // The API URL is known only once the server listens; the launcher is built after it.
    const settings = settingsFromConfig(config, '');
    const modelEnv = options.modelEnv ?? outerEnv;
    settings.gateway = gatewaySettingsFromConfig(config, modelEnv);
    const upstream = settings.gateway.enabled
      ? (options.upstream ?? localUpstream(settings.gateway.upstreamUrl, modelEnv))
      : undefined;
    const deps: Deps = {
      ...stores,
      queue,
      artifacts,
      settings,
      log,
      metrics: logMetrics(log),
      now: () => new Date(),
      randomBytes: (n) => randomBytes(n),
      upstream,
      // One process writes everything locally, as the API and the dispatcher may on AWS.
      aggregateInline: aggregateJob,
    };
    const api = await startLocalApi({
      host: config.api.host,
      port: options.port ?? config.api.port,
      api: createApiHandler(deps),
      authorizer: createAuthorizer(stores, log),
      gateway: (req) => serveModelRequest(deps, req),
      // As the deployed streaming function: a stream lasts at most its 15 minutes, then the client reconnects.
      openStream: (event) => openEventStream(deps, event, EVENT_STREAM_MAX_MS),
      errorResult: (err) => errorResult(err, log),
    });
    cleanups.unshift(() => api.close());
    settings.apiUrl = api.url;

    // Workers' checkouts live outside the user's folder: git run there must never find the user's repository.
    const scratch = await mkdtemp(join(workerScratchParent(), 'claude-fleet-'));
    cleanups.push(() => rm(scratch, { recursive: true, force: true }));
    const sandbox = options.sandbox ?? (await resolveSandbox(config.orchestrator.sandbox));
    if (sandbox.kind === 'bwrap') log.info('workers run in a bubblewrap sandbox', { bwrap: sandbox.command });
    else log.warn('workers run without a sandbox', { reason: sandbox.reason });
    const launcher = new LocalLauncher({
      apiUrl: api.url,
      maxConcurrent: config.workers.max_workers,
      claudeCommand: config.orchestrator.claude_command,
      workspaceDir: scratch,
      gitToken: options.gitToken ?? (outerEnv.ORCHESTRATOR_GIT_TOKEN || undefined),
      // What the config names from this process's environment, then what the caller gives on purpose.
      env: { ...pickEnv(process.env, config.orchestrator.worker_env), ...(options.workerEnv ?? {}) },
      sandbox,
      ...(options.workerWritablePaths ? { writablePaths: options.workerWritablePaths } : {}),
      // Through the gateway, workers hold no model credential of the user's: not the key, not the login.
      shareClaudeLogin: options.shareClaudeLogin === true && !settings.gateway.enabled,
      // What ECS task-state events do in AWS: a worker gone without a result is a failed attempt.
      onLost: (req, reason, code) => {
        recordLostWorker(deps, req, reason, code).catch((err) =>
          log.error('could not record a lost worker', {
            jobId: req.jobId,
            taskNo: req.taskNo,
            error: (err as Error).message,
          }),
        );
      },
    });
    const dispatchDeps: DispatchDeps = { ...deps, launcher };

    for (const key of config.api.keys) {
      await stores.keys
        .putApiKey({
          sha256: key.sha256,
          keyId: key.name,
          tenant: key.tenant,
          name: key.name,
          createdAt: new Date().toISOString(),
        })
        .catch(() => {
          // Already seeded by an earlier start against the same (external) table.
        });
    }

    // The scheduled sweep of the deployed stack, every minute here: repairs what events missed.
    const sweepTimer = setInterval(() => {
      sweepActiveTasks(deps, launcher).catch((err) =>
        log.warn('sweep failed', { error: (err as Error).message }),
      );
    }, 60_000);
    sweepTimer.unref();
    cleanups.unshift(async () => clearInterval(sweepTimer));
    const poller = startQueuePoller({
      sqs: clients.sqs,
      queueUrl: resources.queueUrl,
      handler: createQueueConsumer(dispatchDeps),
      log,
    });
    const deadLetters = startQueuePoller({
      sqs: clients.sqs,
      queueUrl: resources.deadLetterQueueUrl,
      handler: createDeadLetterConsumer(deps),
      log,
    });
    // Order matters: stop taking work, stop workers, then the API they report to, then the emulators.
    cleanups.unshift(() => launcher.shutdown());
    cleanups.unshift(() => deadLetters.stop());
    cleanups.unshift(() => poller.stop());

    return {
      apiUrl: api.url,
      deps: dispatchDeps,
      launcher,
      sandbox,
      backend: external ? 'external' : 'embedded',
      dataPlane: { env: emulators?.env ?? {}, tableName: resources.tableName },
      createApiKey: async (tenant, name = 'local', given) => {
        const key = given ?? formatApiKey(randomBytes(24));
        const sha256 = sha256Hex(key);
        const existing = given ? await stores.keys.getApiKey(sha256) : undefined;
        if (!existing) {
          await stores.keys.putApiKey({
            sha256,
            keyId: sha256.slice(0, 12),
            tenant,
            name,
            createdAt: new Date().toISOString(),
          });
        }
        return key;
      },
      stop: () => runCleanups(cleanups),
    };
  } catch (err) {
    await runCleanups(cleanups);
    throw err;
  }
}

/** The gateway's upstream from the orchestrator's own credential. */
function localUpstream(baseUrl: string, env: NodeJS.ProcessEnv): ModelUpstream {
  const apiKey = env.ANTHROPIC_API_KEY || undefined;
  const authToken = env.ANTHROPIC_AUTH_TOKEN || undefined;
  if (!apiKey && !authToken)
    throw new Error(
      'gateway.enabled is true, but the orchestrator has no ANTHROPIC_API_KEY (or ANTHROPIC_AUTH_TOKEN) for the model gateway to use; set one, or set gateway.enabled to auto or false to let workers use your own Claude login',
    );
  return anthropicUpstream({ baseUrl, apiKey, authToken });
}

function pickEnv(env: NodeJS.ProcessEnv, names: readonly string[]): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const name of names) if (env[name] !== undefined) out[name] = env[name];
  return out;
}

async function runCleanups(cleanups: (() => Promise<void>)[]): Promise<void> {
  for (const cleanup of cleanups.splice(0)) {
    try {
      await cleanup();
    } catch {
      // Keep tearing down the rest.
    }
  }
}
