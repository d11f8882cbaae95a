/**
 * Starts the whole local stack for a test: embedded emulators, the API on a
 * free loopback port, the queue poller and the local launcher with the
 * `claude` test double. Every test awaits `stop()` in its own clean-up.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ClientOptions } from '../../functions/adapters/aws-clients.ts';
import { OrchestratorClient, type RawResponse } from '../../functions/client/orchestrator-client.ts';
import { parseConfig } from '../../functions/core/config.ts';
import { isTerminalJobStatus, type JobStatus } from '../../functions/core/task-states.ts';
import { type LocalStack, startLocalStack } from '../../functions/local/stack.ts';
import type { Log } from '../../functions/services/deps.ts';
import { EXTERNAL } from './backend.ts';

export const CLAUDE_DOUBLE = fileURLToPath(new URL('./claude-double.mjs', import.meta.url));

export interface TestStack extends LocalStack {
  apiKey: string;
  workspace: string;
  /** File the test double appends one JSON line per invocation to. */
  invocationLog: string;
  /** The test double's state folder ($CLAUDE_DOUBLE_STATE_DIR: fail_times counters, steps.jsonl). */
  doubleState: string;
  logs: { level: string; message: string; extra?: Record<string, unknown> }[];
  /** The client of every other caller, with this stack's key. */
  client: OrchestratorClient;
  api(
    method: string,
    path: string,
    init?: { body?: unknown; headers?: Record<string, string>; rawBody?: string },
  ): Promise<RawResponse>;
  waitForJob(jobId: string, timeoutMs?: number): Promise<JobStatus>;
  invocations(): Promise<DoubleInvocation[]>;
}

export interface DoubleInvocation {
  pid: number;
  cwd: string;
  prompt: string | null;
  start: number;
  end: number | null;
  exitCode: number | null;
  phase?: string;
  /** Names of the environment variables the session saw. */
  envKeys?: string[];
}

/** `configYaml` is merged into defaults that suit tests (fast retries, short timeouts). */
export interface TestStackOptions {
  /** SDK middleware on the stack's clients (fault injection, call counting). */
  clientOptions?: ClientOptions;
  /** Keep DynamoDB on disk, e.g. to restart the emulators mid-run. */
  dataDir?: string;
  /** Token for private git remotes (what ORCHESTRATOR_GIT_TOKEN is to local mode). */
  gitToken?: string;
  /** The `claude` executable the workers run; the test double by default. */
  claudeCommand?: string;
  /**
   * The orchestrator's model credentials for the model gateway (ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL as
   * the upstream); none by default, so `gateway.enabled: auto` leaves the gateway off.
   */
  modelEnv?: NodeJS.ProcessEnv;
  /** Workers use the user's own `claude /login` (~/.claude shown read-write inside the sandbox). */
  shareClaudeLogin?: boolean;
}

export async function startTestStack(
  configYaml = '',
  workerEnv: NodeJS.ProcessEnv = {},
  options: TestStackOptions = {},
): Promise<TestStack> {
  const workspace = await mkdtemp(join(tmpdir(), 'orch-test-'));
  const invocationLog = join(workspace, 'claude-invocations.jsonl');
  // Made now so a sandboxed worker can be shown them (bwrap binds only what exists).
  const doubleState = join(workspace, 'double-state');
  await writeFile(invocationLog, '');
  await mkdir(doubleState, { recursive: true });
  const base = parseConfig(configYaml, {});
  // Against LocalStack every stack gets its own table, queue and bucket: test files run in parallel and state persists.
  const suffix = EXTERNAL ? `-${randomBytes(4).toString('hex')}` : '';
  const config = parseConfig(
    JSON.stringify({
      ...base,
      orchestrator: {
        ...base.orchestrator,
        claude_command: options.claudeCommand ?? CLAUDE_DOUBLE,
        workspace_root: workspace,
      },
      api: { ...base.api, port: 0 },
      aws: {
        ...base.aws,
        table_name: `${base.aws.table_name}${suffix}`,
        queue_name: `${base.aws.queue_name}${suffix}`,
        bucket_name: `${base.aws.bucket_name}${suffix}`,
      },
    }),
  );
  const logs: TestStack['logs'] = [];
  const record =
    (level: string): Log['info'] =>
    (message, extra) => {
      logs.push({ level, message, ...(extra ? { extra } : {}) });
    };
  const log: Log = { debug: () => {}, info: record('INFO'), warn: record('WARN'), error: record('ERROR') };
  const stack = await startLocalStack({
    config,
    log,
    port: 0,
    env: EXTERNAL ? process.env : {},
    ...(options.clientOptions ? { clientOptions: options.clientOptions } : {}),
    ...(options.dataDir ? { dataDir: options.dataDir } : {}),
    ...(options.gitToken ? { gitToken: options.gitToken } : {}),
    ...(options.shareClaudeLogin ? { shareClaudeLogin: true } : {}),
    modelEnv: options.modelEnv ?? {},
    // The only folders of the test a sandboxed worker may write: the double's log and state.
    workerWritablePaths: [invocationLog, doubleState],
    workerEnv: {
      CLAUDE_DOUBLE_LOG: invocationLog,
      CLAUDE_DOUBLE_STATE_DIR: doubleState,
      ...workerEnv,
    },
  });
  const apiKey = await stack.createApiKey('tenant-a');

  const client = new OrchestratorClient(stack.apiUrl, apiKey, { timeoutMs: 15_000 });
  // One try: tests assert the status the API answers, 429 and 5xx included.
  const api: TestStack['api'] = (method, path, init = {}) =>
    client.send(method, path, { ...init, retry: false });

  const waitForJob = async (jobId: string, timeoutMs = 45_000): Promise<JobStatus> => {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const job = await stack.deps.jobs.getJob(jobId);
      if (job && isTerminalJobStatus(job.status)) return job.status;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`job ${jobId} did not finish within ${timeoutMs} ms`);
  };

  const invocations = async (): Promise<DoubleInvocation[]> => {
    const text = await readFile(invocationLog, 'utf8').catch(() => '');
    return text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as DoubleInvocation);
  };

  return {
    ...stack,
    apiKey,
    workspace,
    invocationLog,
    doubleState,
    logs,
    client,
    api,
    waitForJob,
    invocations,
    stop: async () => {
      await stack.stop();
      await rm(workspace, { recursive: true, force: true });
    },
  };
}
