/**
 * The local stack for the fault suite. Like test/support/harness.ts, but the
 * emulators are started here and handed to `startLocalStack` as external
 * endpoints, so a scenario can stop and restart them mid-run on the same
 * ports, with DynamoDB on disk (dynalite `path`) and S3 objects on disk (the
 * durable store local mode uses, durable-s3.ts). fauxqs keeps queues in
 * memory: a restart loses them and their messages, the queues are
 * re-provisioned empty, and only the sweep can send again what was lost.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetQueueAttributesCommand, GetQueueUrlCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { type BuildAppOptions, buildApp } from 'fauxqs';
import { createAwsClients } from '../../functions/adapters/aws-clients.ts';
import { ensureResources } from '../../functions/adapters/provision.ts';
import { type OrchestratorConfig, parseConfig } from '../../functions/core/config.ts';
import { durableS3Store } from '../../functions/local/durable-s3.ts';
import { type LocalStack, startLocalStack } from '../../functions/local/stack.ts';
import type { Log } from '../../functions/services/deps.ts';
import { CLAUDE_DOUBLE, type DoubleInvocation } from '../support/harness.ts';
import type { FaultInjector } from './fault-injector.ts';

const require = createRequire(import.meta.url);
const HOST = '127.0.0.1';

interface Ports {
  dynamodb: number;
  fauxqs: number;
}

interface Running {
  dynalite: Server;
  fauxqs: ReturnType<typeof buildApp>;
  ports: Ports;
}

async function startDynalite(port: number, path: string): Promise<Server> {
  const dynalite = require('dynalite') as (o: Record<string, unknown>) => Server;
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0, path });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, HOST, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}

async function startEmulatorsOn(ports: Ports, dataDir: string, region: string): Promise<Running> {
  const dynalite = await startDynalite(ports.dynamodb, join(dataDir, 'dynamodb'));
  const s3Store = await durableS3Store(join(dataDir, 's3'));
  const fauxqs = buildApp({
    logger: false,
    defaultRegion: region,
    stores: { s3Store } as unknown as NonNullable<BuildAppOptions['stores']>,
  });
  const address = await fauxqs.listen({ port: ports.fauxqs, host: HOST });
  return {
    dynalite,
    fauxqs,
    ports: { dynamodb: (dynalite.address() as AddressInfo).port, fauxqs: Number(new URL(address).port) },
  };
}

async function stopEmulators(r: Running): Promise<void> {
  await Promise.allSettled([
    r.fauxqs.close(),
    new Promise<void>((resolve) => {
      r.dynalite.close(() => resolve());
      r.dynalite.closeAllConnections();
    }),
  ]);
}

export interface QueueCounts {
  visible: number;
  inFlight: number;
  delayed: number;
  visibilityTimeoutSec: number;
}

export interface FaultStack extends LocalStack {
  config: OrchestratorConfig;
  apiKey: string;
  workspace: string;
  invocationLog: string;
  logs: { level: string; message: string; extra?: Record<string, unknown> }[];
  /** A clean SQS client (no faults) for the checks. */
  cleanSqs: SQSClient;
  queueUrl: string;
  deadLetterQueueUrl: string;
  /** Submits with an Idempotency-Key, retrying 5xx like a careful caller. */
  submit(body: unknown, idempotencyKey: string): Promise<string>;
  invocations(): Promise<DoubleInvocation[]>;
  queueDepth(url: string): Promise<number>;
  /** A queue's messages by where they are, and how long a received message stays in flight. */
  queueCounts(url: string): Promise<QueueCounts>;
  /**
   * Puts a proxy between the workers and the API that answers 503 for a share of requests
   * (before the API sees them) or drops the API's answer for a 502 (after it acted); `onFault`
   * counts them. Workers launched afterwards use it.
   */
  enableWorkerApiFaults(rate: number, rng: () => number, onFault: (kind: string) => void): Promise<void>;
  /** Stops both emulators and starts them again on the same ports (DynamoDB from disk); returns the downtime. */
  restartEmulators(downMs?: number): Promise<number>;
}

export async function startFaultStack(
  configYaml: string,
  workerEnv: NodeJS.ProcessEnv,
  injector: FaultInjector,
): Promise<FaultStack> {
  const workspace = await mkdtemp(join(tmpdir(), 'orch-faults-'));
  const dataDir = join(workspace, 'data');
  await mkdir(dataDir, { recursive: true });
  const invocationLog = join(workspace, 'claude-invocations.jsonl');
  // Made now so a sandboxed worker can be shown them (bwrap binds only what exists).
  const doubleState = join(workspace, 'double-state');
  await writeFile(invocationLog, '');
  await mkdir(doubleState, { recursive: true });
  const base = parseConfig(configYaml, {});
  const config = parseConfig(
    JSON.stringify({
      ...base,
      orchestrator: { ...base.orchestrator, claude_command: CLAUDE_DOUBLE, workspace_root: workspace },
      api: { ...base.api, port: 0 },
    }),
  );
  const region = config.aws.region;
  let running = await startEmulatorsOn({ dynamodb: 0, fauxqs: 0 }, dataDir, region);
  const endpoints = {
    AWS_ENDPOINT_URL_DYNAMODB: `http://${HOST}:${running.ports.dynamodb}`,
    AWS_ENDPOINT_URL_SQS: `http://${HOST}:${running.ports.fauxqs}`,
    AWS_ENDPOINT_URL_S3: `http://${HOST}:${running.ports.fauxqs}`,
    AWS_REGION: region,
  };
  const logs: FaultStack['logs'] = [];
  const record =
    (level: string): Log['info'] =>
    (message, extra) => {
      logs.push({ level, message, ...(extra ? { extra } : {}) });
    };
  const log: Log = { debug: () => {}, info: record('INFO'), warn: record('WARN'), error: record('ERROR') };
  let stack: LocalStack;
  try {
    stack = await startLocalStack({
      config,
      log,
      port: 0,
      env: endpoints,
      clientOptions: injector.clientOptions(),
      // The only folders of the test a sandboxed worker may write: the double's log and state.
      workerWritablePaths: [invocationLog, doubleState],
      workerEnv: {
        CLAUDE_DOUBLE_LOG: invocationLog,
        CLAUDE_DOUBLE_STATE_DIR: doubleState,
        ...workerEnv,
      },
    });
  } catch (err) {
    await stopEmulators(running);
    throw err;
  }
  const cleanClients = createAwsClients(endpoints);
  const cleanSqs = cleanClients.sqs;
  const queueUrl = (await cleanSqs.send(new GetQueueUrlCommand({ QueueName: config.aws.queue_name })))
    .QueueUrl as string;
  const deadLetterQueueUrl = (
    await cleanSqs.send(new GetQueueUrlCommand({ QueueName: `${config.aws.queue_name}-dlq` }))
  ).QueueUrl as string;
  const apiKey = await stack.createApiKey('tenant-faults');

  const submit = async (body: unknown, idempotencyKey: string): Promise<string> => {
    // The API itself runs on the faulty clients: a 5xx is retried like a careful caller would.
    for (let i = 0; i < 8; i++) {
      const res = await fetch(`${stack.apiUrl}/api/v1/orchestrate`, {
        method: 'POST',
        headers: {
          'x-api-key': apiKey,
          'content-type': 'application/json',
          'idempotency-key': idempotencyKey,
        },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(15_000),
      }).catch((err: Error) => ({ status: 599, text: async () => err.message }) as const);
      const text = await res.text();
      if (res.status === 202 || res.status === 200) return (JSON.parse(text) as { job_id: string }).job_id;
      if (res.status < 500 && res.status !== 429) throw new Error(`submit refused ${res.status}: ${text}`);
      await new Promise((r) => setTimeout(r, 200 * 2 ** i));
    }
    throw new Error('submit kept failing');
  };

  const invocations = async (): Promise<DoubleInvocation[]> => {
    const text = await readFile(invocationLog, 'utf8').catch(() => '');
    return text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as DoubleInvocation);
  };

  const queueCounts = async (url: string): Promise<QueueCounts> => {
    const out = await cleanSqs.send(
      new GetQueueAttributesCommand({
        QueueUrl: url,
        AttributeNames: [
          'ApproximateNumberOfMessages',
          'ApproximateNumberOfMessagesNotVisible',
          'ApproximateNumberOfMessagesDelayed',
          'VisibilityTimeout',
        ],
      }),
    );
    const a = out.Attributes ?? {};
    return {
      visible: Number(a.ApproximateNumberOfMessages ?? 0),
      inFlight: Number(a.ApproximateNumberOfMessagesNotVisible ?? 0),
      delayed: Number(a.ApproximateNumberOfMessagesDelayed ?? 0),
      visibilityTimeoutSec: Number(a.VisibilityTimeout ?? 30),
    };
  };
  const queueDepth = async (url: string): Promise<number> => {
    const c = await queueCounts(url);
    return c.visible + c.inFlight + c.delayed;
  };

  const restartEmulators = async (downMs = 500): Promise<number> => {
    const started = Date.now();
    const ports = running.ports;
    await stopEmulators(running);
    await new Promise((r) => setTimeout(r, downMs));
    running = await startEmulatorsOn(ports, dataDir, region);
    // fauxqs lost its queues: provision them again (same names, same URLs on the same port).
    const again = await ensureResources(cleanClients, {
      tableName: config.aws.table_name,
      queueName: config.aws.queue_name,
      deadLetterQueueName: `${config.aws.queue_name}-dlq`,
      bucketName: config.aws.bucket_name,
      maxReceiveCount: config.aws.max_receive_count,
      visibilityTimeoutSec: 60,
    });
    if (again.queueUrl !== queueUrl) throw new Error(`queue URL changed: ${again.queueUrl} != ${queueUrl}`);
    return Date.now() - started;
  };

  let proxy: Server | undefined;
  const enableWorkerApiFaults = async (
    rate: number,
    rng: () => number,
    onFault: (kind: string) => void,
  ): Promise<void> => {
    proxy = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        void (async () => {
          const roll = rng();
          if (roll < rate / 2) {
            onFault('api_503');
            res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":"injected"}');
            return;
          }
          const headers: Record<string, string> = {};
          for (const [k, v] of Object.entries(req.headers)) {
            if (typeof v === 'string' && !['host', 'content-length', 'connection'].includes(k))
              headers[k] = v;
          }
          const body = Buffer.concat(chunks);
          try {
            const out = await fetch(`${stack.apiUrl}${req.url ?? '/'}`, {
              method: req.method ?? 'GET',
              headers,
              ...(body.length > 0 ? { body } : {}),
              signal: AbortSignal.timeout(20_000),
            });
            const text = await out.text();
            if (roll < rate) {
              onFault('api_lost_response');
              res.writeHead(502, { 'content-type': 'application/json' }).end('{"error":"injected"}');
              return;
            }
            res.writeHead(out.status, {
              'content-type': out.headers.get('content-type') ?? 'application/json',
            });
            res.end(text);
          } catch (err) {
            res.writeHead(502).end(String((err as Error).message));
          }
        })();
      });
    });
    await new Promise<void>((resolve) => proxy?.listen(0, HOST, resolve));
    const { port } = proxy.address() as AddressInfo;
    (stack.launcher as unknown as { options: { apiUrl: string } }).options.apiUrl = `http://${HOST}:${port}`;
  };

  return {
    ...stack,
    enableWorkerApiFaults,
    config,
    apiKey,
    workspace,
    invocationLog,
    logs,
    cleanSqs,
    queueUrl,
    deadLetterQueueUrl,
    submit,
    invocations,
    queueDepth,
    queueCounts,
    restartEmulators,
    stop: async () => {
      injector.enabled = false;
      await stack.stop();
      if (proxy) {
        proxy.closeAllConnections();
        proxy.close();
      }
      await stopEmulators(running);
      await rm(workspace, { recursive: true, force: true });
    },
  };
}
