/**
 * `orchestrator spawn [--wait] "<request>"`, inside a worker: Claude itself
 * starts a child job under its own task (same token, same limits as the
 * worker) and, with --wait, reads the child's results mid-session. Prints the
 * result as JSON; exits 0 completed, 2 partial, 1 failed or refused.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { OrchestratorApiError, OrchestratorClient, sleep } from '../functions/client/orchestrator-client.ts';
import { WORKER_ENV } from '../functions/core/worker-identity.ts';
import { git, identityEnv, runGit } from './git.ts';

const TERMINAL = new Set(['completed', 'partial', 'failed', 'cancelled']);
const OUTPUT_EXCERPT = 4_000;

export interface SpawnOptions {
  request: string;
  wait: boolean;
  /** Seconds to wait for the child before giving up (the child keeps running). */
  timeoutSec: number;
  pollMs?: number;
  /** The checkout the child's branch is merged into (default: the current directory). */
  cwd?: string;
}

/**
 * A repository job's child ended with a branch: it is fetched into the
 * worker's checkout as `fleet/<child>` and merged, so the worker's commit
 * carries the child's work (and its commits, as a parent). A conflict is
 * left for the session to resolve, with how.
 */
async function mergeChildBranch(
  api: OrchestratorClient,
  jobId: string,
  cwd: string,
): Promise<{ branch: string; merged: boolean; note: string }> {
  const scratch = await mkdtemp(join(tmpdir(), 'fleet-spawn-'));
  try {
    const info = await api.request<{ url: string; branch: string }>('GET', `/api/v1/jobs/${jobId}/bundle`);
    const response = await fetch(info.url, { signal: AbortSignal.timeout(15 * 60_000) });
    if (!response.ok) throw new Error(`download refused with ${response.status}`);
    const file = join(scratch, 'child.bundle');
    await writeFile(file, Buffer.from(await response.arrayBuffer()));
    const ref = `refs/heads/${info.branch}`;
    await git(
      [
        '-c',
        'transfer.fsckObjects=true',
        'fetch',
        '--quiet',
        '--no-write-fetch-head',
        file,
        `+${ref}:${ref}`,
      ],
      {
        cwd,
        timeoutMs: 600_000,
      },
    );
    const merge = await runGit(['merge', '--no-edit', '--quiet', info.branch], {
      cwd,
      env: identityEnv({ name: 'spawn (claude-fleet)', email: 'spawn@claude-fleet.invalid' }),
      okCodes: [1],
      timeoutMs: 600_000,
    });
    return merge.exitCode === 0
      ? {
          branch: info.branch,
          merged: true,
          note: `the child's branch ${info.branch} is merged into your checkout`,
        }
      : {
          branch: info.branch,
          merged: false,
          note: `merging ${info.branch} into your checkout stopped on conflicts: resolve them (no conflict markers may remain) and \`git commit\`, or \`git merge --abort\``,
        };
  } catch (err) {
    return {
      branch: jobId,
      merged: false,
      note: `the child's branch could not be merged: ${(err as Error).message}`,
    };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

interface ChildResult {
  job_id: string;
  status: string;
  git?: { branch: string | null };
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
  const token = env[WORKER_ENV.taskToken];
  if (!env.API_URL || !token) {
    out(
      JSON.stringify({
        error: 'orchestrator spawn runs inside a worker: API_URL and TASK_TOKEN are not set',
      }),
    );
    return 1;
  }
  const api = new OrchestratorClient(env.API_URL, undefined, {
    taskToken: token,
    timeoutMs: 15_000,
  });
  let jobId: string;
  try {
    const submitted = await api.orchestrate(options.request, { headers: { 'x-child-mode': 'wait' } });
    jobId = submitted.job_id;
  } catch (err) {
    out(
      JSON.stringify({
        error: 'the child job was refused',
        detail: err instanceof OrchestratorApiError ? err.message : String(err),
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
    status = (await api.request<{ status: string }>('GET', `/api/v1/jobs/${jobId}/status`)).status;
  }
  const result = await api.request<ChildResult>('GET', `/api/v1/jobs/${jobId}`);
  const merged = result.git?.branch
    ? await mergeChildBranch(api, jobId, options.cwd ?? process.cwd())
    : undefined;
  out(
    JSON.stringify(
      {
        job_id: jobId,
        status: result.status,
        ...(merged ? { git: merged } : {}),
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
