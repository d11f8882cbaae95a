/**
 * `orchestrator spawn [--wait] "<request>"`, inside a worker: Claude itself
 * starts a child job under its own task (same token, same limits as the
 * worker) and, with --wait, reads the child's results mid-session. Prints the
 * result as JSON; exits 0 completed, 2 partial, 1 failed or refused.
 */
import { pathToFileURL } from 'node:url';
import { ApiError, sleep, WorkerApiClient } from './api-client.ts';

const TERMINAL = new Set(['completed', 'partial', 'failed', 'cancelled']);
const OUTPUT_EXCERPT = 4_000;

export interface SpawnOptions {
  request: string;
  wait: boolean;
  /** Seconds to wait for the child before giving up (the child keeps running). */
  timeoutSec: number;
  pollMs?: number;
}

interface ChildResult {
  job_id: string;
  status: string;
  results?: {
    tasks?: {
      worker_id: string;
      status: string;
      output?: string;
      files_created?: string[];
      error?: string;
    }[];
  };
}

export async function spawnChild(
  env: NodeJS.ProcessEnv,
  options: SpawnOptions,
  out: (line: string) => void,
): Promise<number> {
  if (!env.API_URL || !env.TASK_TOKEN) {
    out(
      JSON.stringify({
        error: 'orchestrator spawn runs inside a worker: API_URL and TASK_TOKEN are not set',
      }),
    );
    return 1;
  }
  const api = new WorkerApiClient({ baseUrl: env.API_URL, token: env.TASK_TOKEN });
  let jobId: string;
  try {
    const submitted = await api.call<{ job_id: string }>(
      'POST',
      '/api/v1/orchestrate',
      { request: options.request },
      { 'x-child-mode': 'wait' },
    );
    jobId = submitted.job_id;
  } catch (err) {
    out(
      JSON.stringify({
        error: 'the child job was refused',
        detail: err instanceof ApiError ? err.message : String(err),
      }),
    );
    return 1;
  }
  if (!options.wait) {
    out(JSON.stringify({ job_id: jobId, status: 'submitted' }));
    return 0;
  }
  const deadline = Date.now() + options.timeoutSec * 1000;
  let status = 'planning';
  while (!TERMINAL.has(status)) {
    if (Date.now() > deadline) {
      out(JSON.stringify({ job_id: jobId, status, error: `still running after ${options.timeoutSec}s` }));
      return 1;
    }
    await sleep(options.pollMs ?? 2_000);
    status = (await api.call<{ status: string }>('GET', `/api/v1/jobs/${jobId}/status`)).status;
  }
  const result = await api.call<ChildResult>('GET', `/api/v1/jobs/${jobId}`);
  out(
    JSON.stringify(
      {
        job_id: jobId,
        status: result.status,
        tasks: (result.results?.tasks ?? []).map((t) => ({
          worker_id: t.worker_id,
          status: t.status,
          files_created: t.files_created ?? [],
          ...(t.error ? { error: t.error } : {}),
          output: (t.output ?? '').slice(0, OUTPUT_EXCERPT),
        })),
      },
      null,
      2,
    ),
  );
  return result.status === 'completed' ? 0 : result.status === 'partial' ? 2 : 1;
}

/** Argument parsing small enough to ship in the worker image without a CLI library. */
export function parseSpawnArgs(argv: string[]): SpawnOptions | string {
  const [command, ...rest] = argv;
  if (command !== 'spawn') return 'usage: orchestrator spawn [--wait] [--timeout SECONDS] "<request>"';
  let wait = false;
  let timeoutSec = 3600;
  const words: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i] as string;
    if (arg === '--wait') wait = true;
    else if (arg === '--timeout') {
      timeoutSec = Number(rest[++i]);
      if (!Number.isInteger(timeoutSec) || timeoutSec < 1)
        return '--timeout must be a whole number of seconds';
    } else if (arg.startsWith('--')) return `unknown option ${arg}`;
    else words.push(arg);
  }
  const request = words.join(' ').trim();
  if (!request) return 'a request is required: orchestrator spawn --wait "<request>"';
  return { request, wait, timeoutSec };
}

async function main(): Promise<void> {
  const options = parseSpawnArgs(process.argv.slice(2));
  if (typeof options === 'string') {
    process.stderr.write(`${options}\n`);
    process.exitCode = 1;
    return;
  }
  process.exitCode = await spawnChild(process.env, options, (line) => process.stdout.write(`${line}\n`));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) void main();
