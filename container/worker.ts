/**
 * The worker entrypoint: one attempt of one task, in a Fargate container or
 * as a local child process. It starts with only API_URL and TASK_TOKEN (the
 * token names its job, task and attempt), fetches its assignment, runs the
 * Claude CLI in a fresh directory, uploads the files and its log through
 * presigned URLs, and posts the result. It holds no AWS credentials.
 *
 * Exit codes: 0 result posted; 1 could not post a result; 2 bad environment.
 */
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { judgeClaudeRun } from '../functions/core/claude-result.ts';
import { parseTaskToken } from '../functions/core/tokens.ts';
import type { Assignment, UploadLinks } from '../functions/services/worker-access.ts';
import { putPresigned, WorkerApiClient } from './api-client.ts';
import { decideOrHandOff } from './decide.ts';
import { runClaude } from './run-claude.ts';
import { listWorkspaceFiles } from './workspace-files.ts';

const MAX_FILES = 500;
/** Holds the `orchestrator` command for Claude (container/bin here; /opt/worker/bin in the image). */
const SPAWN_BIN_DIR = fileURLToPath(new URL('./bin', import.meta.url));
const MAX_FILE_BYTES = 100 * 1024 * 1024;
const UPLOAD_CONCURRENCY = 4;

export interface WorkerEnv {
  API_URL?: string | undefined;
  TASK_TOKEN?: string | undefined;
  CLAUDE_COMMAND?: string | undefined;
  WORKSPACE_DIR?: string | undefined;
  KEEP_WORKSPACE?: string | undefined;
}

export async function runWorker(env: WorkerEnv & NodeJS.ProcessEnv, signal?: AbortSignal): Promise<number> {
  const token = env.TASK_TOKEN;
  const scope = token ? parseTaskToken(token) : undefined;
  if (!env.API_URL || !token || !scope) {
    process.stderr.write('worker: API_URL and a valid TASK_TOKEN are required\n');
    return 2;
  }
  const api = new WorkerApiClient({ baseUrl: env.API_URL, token });
  const base = `/api/v1/jobs/${scope.jobId}/tasks/${scope.taskNo}`;
  const log: string[] = [];
  const note = (line: string) => log.push(`[${new Date().toISOString()}] ${line}`);

  let assignment: Assignment;
  try {
    assignment = await api.call<Assignment>('GET', `${base}/assignment`);
  } catch (err) {
    process.stderr.write(`worker: cannot fetch assignment: ${(err as Error).message}\n`);
    return 1;
  }
  note(
    `task ${scope.jobId}/${scope.taskNo} attempt ${scope.attempt} (${assignment.kind}): ${assignment.title}`,
  );

  const root = env.WORKSPACE_DIR || tmpdir();
  await mkdir(root, { recursive: true });
  const workdir = await mkdtemp(join(root, `task-${scope.jobId}-${scope.taskNo}-a${scope.attempt}-`));
  const command = env.CLAUDE_COMMAND || 'claude';
  const baseArgs = claudeArgs(assignment);
  const invocation = { command, cwd: workdir, env: claudeEnv(env), ...(signal ? { signal } : {}) };

  const decision = await decideOrHandOff(api, assignment, invocation, baseArgs).catch((err: Error) => ({
    kind: 'do' as const,
    costUsd: 0,
    note: `could not decide (${err.message}); doing it here`,
  }));
  if (assignment.recursion) note(`decompose or do: ${decision.note}`);
  if (decision.kind === 'handed_off') {
    // The task now waits for its child job without a container; only the log is left to upload.
    try {
      await uploadFiles(api, base, assignment.attempt, workdir, [], log.join('\n'));
    } finally {
      if (!env.KEEP_WORKSPACE) await rm(workdir, { recursive: true, force: true });
    }
    return 0;
  }

  const args =
    assignment.kind === 'plan'
      ? [...baseArgs, '--json-schema', JSON.stringify(assignment.json_schema)]
      : baseArgs;
  note(
    `running: ${command} ${args.map((a) => (a.length > 80 ? `${a.slice(0, 77)}...` : a)).join(' ')} (prompt on stdin) in ${workdir}`,
  );
  // Stopped (SIGTERM) while deciding: do not start the work session at all.
  const run = signal?.aborted
    ? { exitCode: null, signal: 'SIGTERM', stdout: '', stderr: '', timedOut: false, durationMs: 0 }
    : await runClaude({
        ...invocation,
        args,
        prompt: assignment.prompt,
        timeoutMs: assignment.timeout_sec * 1000,
      });
  const verdict = judgeClaudeRun(run);
  verdict.costUsd += decision.costUsd;
  if (signal?.aborted && verdict.status !== 'succeeded') {
    verdict.status = 'failed';
    verdict.error = `worker interrupted (SIGTERM) after ${Math.round(run.durationMs / 1000)}s`;
  }
  note(
    `claude exited code=${run.exitCode} signal=${run.signal} timedOut=${run.timedOut} -> ${verdict.status}${verdict.error ? `: ${verdict.error}` : ''}`,
  );
  log.push('--- stdout ---', run.stdout, '--- stderr ---', run.stderr);

  let filesCreated: string[] = [];
  try {
    if (assignment.kind === 'work') {
      const listing = await listWorkspaceFiles(workdir, MAX_FILES);
      if (listing.truncated) note(`more than ${MAX_FILES} files; uploading the first ${MAX_FILES}`);
      filesCreated = await uploadFiles(api, base, assignment.attempt, workdir, listing.files, log.join('\n'));
    } else {
      await uploadFiles(api, base, assignment.attempt, workdir, [], log.join('\n'));
    }
  } catch (err) {
    // The result still matters more than the files; report what happened.
    verdict.error = `${verdict.error ? `${verdict.error}; ` : ''}upload failed: ${(err as Error).message}`;
    process.stderr.write(`worker: upload failed: ${(err as Error).message}\n`);
  }

  try {
    await api.call('POST', `${base}/result`, {
      attempt: assignment.attempt,
      status: verdict.status,
      output: verdict.output,
      files_created: filesCreated,
      cost_usd: verdict.costUsd,
      num_turns: verdict.numTurns,
      duration_ms: verdict.durationMs,
      ...(verdict.sessionId ? { session_id: verdict.sessionId } : {}),
      ...(verdict.structuredOutput !== undefined ? { structured_output: verdict.structuredOutput } : {}),
      ...(verdict.error ? { error: verdict.error } : {}),
      ...(verdict.exitCode !== undefined ? { exit_code: verdict.exitCode } : {}),
      retryable: verdict.retryable,
    });
  } catch (err) {
    process.stderr.write(`worker: cannot post result: ${(err as Error).message}\n`);
    return 1;
  } finally {
    if (!env.KEEP_WORKSPACE) await rm(workdir, { recursive: true, force: true });
  }
  return 0;
}

function claudeArgs(a: Assignment): string[] {
  const args = ['-p', '--output-format', 'json', '--permission-mode', a.permission_mode];
  if (a.max_budget_usd > 0) args.push('--max-budget-usd', String(a.max_budget_usd));
  if (a.model) args.push('--model', a.model);
  if (a.max_turns) args.push('--max-turns', String(a.max_turns));
  return args;
}

/**
 * Claude gets the worker's environment, token included, and `orchestrator` on
 * its PATH, so it can run `orchestrator spawn --wait`. The token cannot reach
 * beyond this task: the API scopes it to this attempt and its own children.
 */
function claudeEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return { ...env, PATH: `${SPAWN_BIN_DIR}${delimiter}${env.PATH ?? ''}` };
}

/** Asks for presigned URLs, then uploads files (bounded concurrency) and the log. Returns uploaded paths. */
async function uploadFiles(
  api: WorkerApiClient,
  base: string,
  attempt: number,
  workdir: string,
  files: string[],
  logText: string,
): Promise<string[]> {
  const links = await api.call<UploadLinks>('POST', `${base}/uploads`, { attempt, files, include_log: true });
  const queue = [...links.files];
  const uploaded: string[] = [];
  const workers = Array.from({ length: UPLOAD_CONCURRENCY }, async () => {
    for (let next = queue.shift(); next; next = queue.shift()) {
      const body = await readFile(join(workdir, next.path));
      if (body.byteLength > MAX_FILE_BYTES) continue;
      await putPresigned(next.url, body);
      uploaded.push(next.path);
    }
  });
  await Promise.all(workers);
  if (links.log) await putPresigned(links.log.url, logText);
  return uploaded.sort();
}

async function main(): Promise<void> {
  const controller = new AbortController();
  // SIGTERM (ECS stop, local cancel): stop Claude, still upload and report what exists.
  process.once('SIGTERM', () => controller.abort());
  process.once('SIGINT', () => controller.abort());
  const code = await runWorker(process.env, controller.signal);
  process.exitCode = code;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  void main();
}
