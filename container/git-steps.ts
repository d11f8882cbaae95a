/**
 * The two steps that run no AI and are the only ones given the repository
 * token (in GIT_TOKEN): fetching a job's git URL into its base bundle, and
 * pushing its merged branch back. They run git only, never Claude.
 */
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { checkoutBase } from './checkout.ts';
import { git, remoteProtocolArgs, runGit, tokenEnv } from './git.ts';
import { uploadAll } from './reporting.ts';
import { type AttemptContext, attemptDir, post } from './session.ts';

const REMOTE_TIMEOUT_MS = 20 * 60_000;
/** The remote refused our credentials (git then wants a prompt, which is disabled). */
const REFUSED_LOGIN =
  /authentication failed|terminal prompts disabled|could not read (username|password)|\b(401|403)\b/i;
/** Answers a retry will not change: a refused login, a missing repository or ref. */
const PERMANENT_FETCH = new RegExp(`${REFUSED_LOGIN.source}|couldn't find remote ref|not found`, 'i');

/** Fetches `fetch.ref` (or the remote's HEAD) and uploads it as the job's base bundle. */
export async function runSourceStep(ctx: AttemptContext): Promise<number> {
  const fetch = ctx.assignment.fetch;
  if (!fetch) return fail(ctx, 'the assignment has nothing to fetch', false);
  const started = Date.now();
  const scratch = await attemptDir(ctx);
  try {
    const repo = join(scratch, 'repo.git');
    await git(['init', '--quiet', '--bare', repo], { cwd: scratch });
    const ref = fetch.ref ?? 'HEAD';
    const auth = tokenEnv(ctx.env.GIT_TOKEN, fetch.token_username);
    ctx.log.note(`fetching ${ref} from ${fetch.url}${ctx.env.GIT_TOKEN ? ' with the deployment token' : ''}`);
    try {
      await runGit(
        [
          ...remoteProtocolArgs(fetch.url),
          'fetch',
          '--no-tags',
          '--quiet',
          fetch.url,
          `${ref}:refs/heads/fleet-base`,
        ],
        { cwd: repo, env: auth, timeoutMs: REMOTE_TIMEOUT_MS },
      );
    } catch (err) {
      // A missing ref or a refused login will not change on a retry; a network error may.
      const text = (err as Error).message;
      const permanent = PERMANENT_FETCH.test(text);
      return fail(ctx, `git fetch ${fetch.url} ${ref} failed: ${text}`, !permanent);
    }
    const base = await git(['rev-parse', 'refs/heads/fleet-base^{commit}'], { cwd: repo });
    const file = join(scratch, 'base.bundle');
    await runGit(['bundle', 'create', '--quiet', file, 'refs/heads/fleet-base'], {
      cwd: repo,
      timeoutMs: REMOTE_TIMEOUT_MS,
    });
    const size = (await stat(file)).size;
    if (size > fetch.max_bytes)
      return fail(
        ctx,
        `the repository is ${size} bytes as a bundle, over limits.max_source_mb (${fetch.max_bytes} bytes)`,
        false,
      );
    ctx.log.note(`git: fetched ${base.slice(0, 12)}, bundle of ${size} bytes, in ${Date.now() - started} ms`);
    await uploadAll(ctx.api, ctx.base, ctx.assignment.attempt, {
      git: { bundle: file },
      log: ctx.log.text(),
    });
    return succeed(ctx, started, `Fetched ${ref} of ${fetch.url} at ${base}`, { base_commit: base });
  } catch (err) {
    return fail(ctx, (err as Error).message, true);
  } finally {
    if (!ctx.env.KEEP_WORKSPACE) await rm(scratch, { recursive: true, force: true });
  }
}

/** Pushes the merged branch to the job's remote (never forced: a branch already there at another commit is an error). */
export async function runPushStep(ctx: AttemptContext): Promise<number> {
  const push = ctx.assignment.push;
  if (!push) return fail(ctx, 'the assignment has nothing to push', false);
  const started = Date.now();
  const scratch = await attemptDir(ctx);
  try {
    const repo = join(scratch, 'repo.git');
    await checkoutBase(repo, join(scratch, 'bundles'), push.bundles, push.head_commit, { bare: true });
    const target = `refs/heads/${push.branch}`;
    ctx.log.note(`pushing ${push.head_commit.slice(0, 12)} to ${push.url} as ${target}`);
    try {
      await runGit(
        [...remoteProtocolArgs(push.url), 'push', '--quiet', push.url, `${push.head_commit}:${target}`],
        {
          cwd: repo,
          env: tokenEnv(ctx.env.GIT_TOKEN, push.token_username),
          timeoutMs: REMOTE_TIMEOUT_MS,
        },
      );
    } catch (err) {
      const text = (err as Error).message;
      const permanent = /rejected|non-fast-forward|denied/i.test(text) || REFUSED_LOGIN.test(text);
      return fail(ctx, `git push to ${push.url} failed: ${text}`, !permanent);
    }
    await uploadAll(ctx.api, ctx.base, ctx.assignment.attempt, { log: ctx.log.text() });
    return succeed(ctx, started, `Pushed ${push.branch} (${push.head_commit}) to ${push.url}`, {
      remote_ref: target,
    });
  } catch (err) {
    return fail(ctx, (err as Error).message, true);
  } finally {
    if (!ctx.env.KEEP_WORKSPACE) await rm(scratch, { recursive: true, force: true });
  }
}

/** Reports a step that ran no AI and succeeded: it spent nothing. */
function succeed(ctx: AttemptContext, started: number, output: string, git: Record<string, unknown>) {
  return post(ctx, {
    attempt: ctx.assignment.attempt,
    status: 'succeeded',
    output,
    cost_usd: 0,
    num_turns: 0,
    duration_ms: Date.now() - started,
    retryable: true,
    git,
  });
}

/** Reports a failed step, with its log; the token never appears in what is reported. */
export async function fail(ctx: AttemptContext, error: string, retryable: boolean): Promise<number> {
  const token = ctx.env.GIT_TOKEN;
  const clean = token ? error.split(token).join('***') : error;
  ctx.log.note(clean);
  await uploadAll(ctx.api, ctx.base, ctx.assignment.attempt, { log: ctx.log.text() }).catch(() => {});
  return post(ctx, {
    attempt: ctx.assignment.attempt,
    status: 'failed',
    output: '',
    cost_usd: 0,
    num_turns: 0,
    duration_ms: 0,
    error: clean.slice(0, 3_900),
    retryable,
  });
}
