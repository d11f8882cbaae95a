/**
 * A planner or work attempt: one Claude session in a fresh directory, which
 * for a repository job is a checkout of the job's base commit. A work
 * session's changes become one commit; the planner's checkout is thrown away.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { OrchestratorClient } from '../functions/client/orchestrator-client.ts';
import { judgeClaudeRun } from '../functions/core/claude-result.ts';
import { workerCommitMessage } from '../functions/core/git-source.ts';
import { WORKER_ENV } from '../functions/core/worker-identity.ts';
import type { Assignment, RepoAssignment } from '../functions/services/worker-access.ts';
import { checkoutBase } from './checkout.ts';
import { bundleRange, commitWork, writePatch } from './commit-work.ts';
import { decideOrHandOff } from './decide.ts';
import { currentProgress, streamReader } from './progress-reporter.ts';
import { type AttemptLog, postResult, type ResultBody, uploadAll } from './reporting.ts';
import { runClaude } from './run-claude.ts';
import { listWorkspaceFiles } from './workspace-files.ts';

const MAX_FILES = 500;
/** Holds the `orchestrator` command for Claude: the worker bundle's bin/ (functions/local/worker-bundle.ts). */
const SPAWN_BIN_DIR = fileURLToPath(new URL('./bin', import.meta.url));

export interface AttemptContext {
  api: OrchestratorClient;
  /** `/api/v1/jobs/<job>/tasks/<n>` */
  base: string;
  assignment: Assignment;
  env: NodeJS.ProcessEnv;
  signal?: AbortSignal | undefined;
  log: AttemptLog;
}

/** A fresh directory for one attempt, outside any repository of the machine's user. */
export async function attemptDir(ctx: AttemptContext): Promise<string> {
  const root = ctx.env.WORKSPACE_DIR || tmpdir();
  await mkdir(root, { recursive: true });
  const a = ctx.assignment;
  return mkdtemp(join(root, `task-${a.job_id}-${a.task_no}-a${a.attempt}-`));
}

export function claudeArgs(a: Assignment, budgetUsd = a.max_budget_usd): string[] {
  // stream-json: the session's turns as they happen (progress, the live log); its last line is the same result as json's.
  const args = ['-p', '--output-format', 'stream-json', '--verbose', '--permission-mode', a.permission_mode];
  if (budgetUsd > 0) args.push('--max-budget-usd', String(Math.floor(budgetUsd * 10_000) / 10_000));
  if (a.model) args.push('--model', a.model);
  if (a.max_turns) args.push('--max-turns', String(a.max_turns));
  return args;
}

/** Variables that choose a model's endpoint or credential; ANTHROPIC_MODEL and its kin only pick a model. */
const MODEL_CHOICE = /^ANTHROPIC_(MODEL|SMALL_FAST_MODEL|DEFAULT_\w+_MODEL)$/;

/**
 * Whether a variable could let Claude reach a model other than through the
 * gateway, or with someone else's credential: any Anthropic key, token, URL
 * or header, the switches to Bedrock, Vertex or Foundry, and every AWS or
 * Google credential setting (the container's role included).
 */
export function isModelCredential(name: string): boolean {
  if (MODEL_CHOICE.test(name)) return false;
  return (
    name.startsWith('ANTHROPIC_') ||
    name.startsWith('AWS_') ||
    /^CLAUDE_CODE_(USE|SKIP)_\w*(BEDROCK|VERTEX|FOUNDRY)/.test(name) ||
    name === 'CLAUDE_CODE_OAUTH_TOKEN' ||
    name === 'GOOGLE_APPLICATION_CREDENTIALS'
  );
}

/**
 * Claude gets the worker's environment, token included, and `orchestrator` on
 * its PATH, so it can run `orchestrator spawn --wait`. The token cannot reach
 * beyond this task: the API scopes it to this attempt and its own children.
 * Repository credentials never reach it, and git run in its directory stops
 * at that directory's parent, so it can never find a repository around it.
 * With the model gateway, the task token is Claude's only model credential:
 * ANTHROPIC_BASE_URL is the gateway, ANTHROPIC_API_KEY the token, and every
 * other model credential is dropped.
 */
/** See docs/claude-cli.md ("Environment"): what keeps the CLI from connecting anywhere else. */
export const QUIET_CLI: Readonly<Record<string, string>> = {
  CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
  DISABLE_AUTOUPDATER: '1',
  DISABLE_TELEMETRY: '1',
  DISABLE_ERROR_REPORTING: '1',
};

export function claudeEnv(
  env: NodeJS.ProcessEnv,
  cwd: string,
  gateway?: Assignment['model_gateway'],
): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(env)) {
    if (k === 'GIT_TOKEN' || k === 'ORCHESTRATOR_GIT_TOKEN') continue;
    if (gateway && isModelCredential(k)) continue;
    out[k] = v;
  }
  return {
    // The CLI is pinned and metered: no update checks, telemetry, error reports or side requests
    // (title, quota) of its own. With the gateway on, its only connection is then the gateway.
    // A value set on purpose in the worker's environment wins.
    ...QUIET_CLI,
    ...out,
    PATH: `${SPAWN_BIN_DIR}${delimiter}${env.PATH ?? ''}`,
    GIT_CEILING_DIRECTORIES: dirname(cwd),
    ...(gateway
      ? {
          ANTHROPIC_BASE_URL: gatewayUrl(gateway.base_url, env.API_URL),
          ANTHROPIC_API_KEY: env[WORKER_ENV.taskToken] ?? '',
        }
      : {}),
  };
}

/** A base URL the API gave as a path (it may not know its own address) is below the worker's API_URL. */
function gatewayUrl(baseUrl: string, apiUrl: string | undefined): string {
  return baseUrl.startsWith('/') ? `${(apiUrl ?? '').replace(/\/+$/, '')}${baseUrl}` : baseUrl;
}

export async function runSession(ctx: AttemptContext): Promise<number> {
  const { api, base, assignment, env, signal, log } = ctx;
  const scratch = await attemptDir(ctx);
  const repo = assignment.repo;
  const cwd = repo ? join(scratch, 'repo') : scratch;
  try {
    if (repo) {
      try {
        const t = await checkoutBase(cwd, join(scratch, 'bundles'), repo.bundles, repo.base_commit, {
          sharedObjects: env.FLEET_SHARED_OBJECTS || undefined,
        });
        log.note(
          `git: checkout of ${repo.base_commit.slice(0, 12)} in ${t.downloadMs + t.fetchMs + t.checkoutMs} ms (download ${t.downloadMs} ms, fetch ${t.fetchMs} ms, checkout ${t.checkoutMs} ms${t.shared ? ', objects from the shared store' : ''})`,
        );
      } catch (err) {
        const error = `could not check out the repository: ${(err as Error).message}`;
        log.note(error);
        return await finish(ctx, { status: 'failed', error, retryable: true });
      }
    }
    const command = env.CLAUDE_COMMAND || 'claude';
    const baseArgs = claudeArgs(assignment);
    const invocation = {
      command,
      cwd,
      env: claudeEnv(env, cwd, assignment.model_gateway),
      ...(signal ? { signal } : {}),
    };

    const handoff =
      repo && assignment.kind === 'work' ? snapshotForHandoff(ctx, cwd, scratch, repo) : undefined;
    const decision = await decideOrHandOff(api, assignment, invocation, baseArgs, handoff).catch(
      (err: Error) => ({
        kind: 'do' as const,
        costUsd: 0,
        note: `could not decide (${err.message}); doing it here`,
      }),
    );
    if (assignment.recursion) log.note(`decompose or do: ${decision.note}`);
    if (decision.kind === 'handed_off') {
      // The task now waits for its child job without a container; only the log is left to upload.
      await uploadAll(api, base, assignment.attempt, { log: log.text() });
      return 0;
    }

    const args =
      assignment.kind === 'plan'
        ? [...baseArgs, '--json-schema', JSON.stringify(assignment.json_schema)]
        : baseArgs;
    log.note(
      `running: ${command} ${args.map((a) => (a.length > 80 ? `${a.slice(0, 77)}...` : a)).join(' ')} (prompt on stdin) in ${cwd}`,
    );
    log.raw('--- claude ---');
    const stream = streamReader(log, currentProgress());
    // Stopped (SIGTERM) while deciding: do not start the work session at all.
    const run = signal?.aborted
      ? { exitCode: null, signal: 'SIGTERM', stdout: '', stderr: '', timedOut: false, durationMs: 0 }
      : await runClaude({
          ...invocation,
          args,
          prompt: assignment.prompt,
          timeoutMs: assignment.timeout_sec * 1000,
          onOutput: stream.onOutput,
        });
    stream.flush();
    const verdict = judgeClaudeRun(run);
    verdict.costUsd += decision.costUsd;
    if (signal?.aborted && verdict.status !== 'succeeded') {
      verdict.status = 'failed';
      verdict.error = `worker interrupted (SIGTERM) after ${Math.round(run.durationMs / 1000)}s`;
    }
    log.note(
      `claude exited code=${run.exitCode} signal=${run.signal} timedOut=${run.timedOut} -> ${verdict.status}${verdict.error ? `: ${verdict.error}` : ''}`,
    );
    // stdout is in the log already, line by line as it came.
    log.raw('--- stderr ---', run.stderr);

    const body: ResultBody = {
      attempt: assignment.attempt,
      status: verdict.status,
      output: verdict.output,
      files_created: [],
      cost_usd: verdict.costUsd,
      num_turns: verdict.numTurns,
      duration_ms: verdict.durationMs,
      ...(verdict.sessionId ? { session_id: verdict.sessionId } : {}),
      ...(verdict.structuredOutput !== undefined ? { structured_output: verdict.structuredOutput } : {}),
      ...(verdict.error ? { error: verdict.error } : {}),
      ...(verdict.exitCode !== undefined ? { exit_code: verdict.exitCode } : {}),
      retryable: verdict.retryable,
    };
    try {
      if (assignment.kind === 'work' && repo && verdict.status === 'succeeded') {
        await collectCommit(ctx, cwd, scratch, repo, verdict.output, body);
      } else if (assignment.kind === 'work' && !repo) {
        const listing = await listWorkspaceFiles(cwd, MAX_FILES);
        if (listing.truncated) log.note(`more than ${MAX_FILES} files; uploading the first ${MAX_FILES}`);
        body.files_created = await uploadAll(api, base, assignment.attempt, {
          files: listing.files,
          dir: cwd,
          log: log.text(),
        });
      } else {
        await uploadAll(api, base, assignment.attempt, { log: log.text() });
      }
    } catch (err) {
      // The result still matters more than the files; report what happened.
      const message = (err as Error).message;
      body.error = `${body.error ? `${body.error}; ` : ''}upload failed: ${message}`;
      if (assignment.kind === 'work' && repo) {
        // Without its commit uploaded, a repository worker has nothing to merge: the attempt failed.
        body.status = 'failed';
        body.retryable = true;
        delete body.git;
      }
      process.stderr.write(`worker: upload failed: ${message}\n`);
    }
    return await post(ctx, body);
  } finally {
    if (!env.KEEP_WORKSPACE) await rm(scratch, { recursive: true, force: true });
  }
}

/** Commits the session's changes, uploads the bundle, the patch and the log, and fills the result's `git`. */
async function collectCommit(
  ctx: AttemptContext,
  cwd: string,
  scratch: string,
  repo: RepoAssignment,
  summary: string,
  body: ResultBody,
): Promise<void> {
  const c = repo.commit;
  if (!c) throw new Error('the assignment says nothing about the commit');
  const started = Date.now();
  const message = workerCommitMessage(c.title, summary, {
    jobId: c.job_id,
    workerId: c.worker_id,
    depth: c.depth,
    attempt: c.attempt,
  });
  const work = await commitWork(
    cwd,
    repo.base_commit,
    message,
    { name: c.author_name, email: c.author_email },
    repo.max_file_bytes,
  );
  for (const e of work.excluded) ctx.log.note(`left out of the commit: ${e.path}: ${e.reason}`);
  const committedMs = Date.now() - started;
  const git: Partial<Record<'bundle' | 'patch', string>> = {};
  if (work.commit) {
    git.bundle = join(scratch, 'commit.bundle');
    git.patch = join(scratch, 'commit.patch');
    await bundleRange(cwd, git.bundle, repo.base_commit, work.commit, `refs/heads/fleet/${c.worker_id}`);
    await writeFile(git.patch, await writePatch(cwd, repo.base_commit, work.commit));
  }
  const bundledMs = Date.now() - started - committedMs;
  ctx.log.note(
    work.commit
      ? `git: commit ${work.commit.slice(0, 12)} (${work.files.added.length} added, ${work.files.modified.length} modified, ${work.files.deleted.length} deleted, +${work.insertions} -${work.deletions}) in ${committedMs} ms; bundle and patch in ${bundledMs} ms`
      : 'git: the session changed nothing; no commit',
  );
  const uploadStarted = Date.now();
  await uploadAll(ctx.api, ctx.base, ctx.assignment.attempt, {
    git,
    log: () => {
      if (work.commit) ctx.log.note(`git: upload in ${Date.now() - uploadStarted} ms`);
      return ctx.log.text();
    },
  });
  body.files_created = work.files.added.slice(0, MAX_FILES);
  body.git = {
    commit: work.commit ?? null,
    files: work.files,
    insertions: work.insertions,
    deletions: work.deletions,
    excluded: work.excluded.slice(0, MAX_FILES),
    truncated: work.truncated,
  };
}

/**
 * Before a hand-off: the checkout as it stands becomes the child job's base.
 * When it differs from the job's base, it is committed and uploaded as the
 * worker's snapshot bundle, and its commit travels in `x-source-commit`.
 */
function snapshotForHandoff(
  ctx: AttemptContext,
  cwd: string,
  scratch: string,
  repo: RepoAssignment,
): () => Promise<Record<string, string>> {
  return async () => {
    const c = repo.commit;
    const who = { name: c?.author_name ?? 'claude-fleet', email: c?.author_email ?? 'claude-fleet@invalid' };
    const title = `${c?.title ?? 'Subtask'} (before handing off to a child job)`;
    const work = await commitWork(cwd, repo.base_commit, `${title}\n`, who, repo.max_file_bytes);
    if (!work.commit) return {} as Record<string, string>;
    const file = join(scratch, 'snapshot.bundle');
    await bundleRange(
      cwd,
      file,
      repo.base_commit,
      work.commit,
      `refs/heads/fleet/${c?.worker_id ?? 'snapshot'}-snapshot`,
    );
    await uploadAll(ctx.api, ctx.base, ctx.assignment.attempt, {
      git: { snapshot: file },
      log: ctx.log.text(),
    });
    ctx.log.note(`git: snapshot ${work.commit.slice(0, 12)} uploaded as the child job's base`);
    return { 'x-source-commit': work.commit };
  };
}

/** Posts a result that needs no Claude run (a failed checkout), with the log. */
async function finish(
  ctx: AttemptContext,
  outcome: { status: 'failed'; error: string; retryable: boolean },
): Promise<number> {
  await uploadAll(ctx.api, ctx.base, ctx.assignment.attempt, { log: ctx.log.text() }).catch(() => {});
  return post(ctx, {
    attempt: ctx.assignment.attempt,
    status: outcome.status,
    output: '',
    cost_usd: 0,
    num_turns: 0,
    duration_ms: 0,
    error: outcome.error,
    retryable: outcome.retryable,
  });
}

export async function post(ctx: AttemptContext, body: ResultBody): Promise<number> {
  try {
    await postResult(ctx.api, ctx.base, body);
    return 0;
  } catch (err) {
    process.stderr.write(`worker: cannot post result: ${(err as Error).message}\n`);
    return 1;
  }
}
