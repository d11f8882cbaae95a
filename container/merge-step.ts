/**
 * The merge step of a repository job: merges each successful worker's commit
 * into `fleet/<job_id>`, in worker order. A conflict gets a Claude session in
 * the checkout (within what the job's budget has left); the resolution is
 * committed only when no conflict marker remains. A conflict that cannot be
 * resolved leaves that worker's change out of the branch and is reported
 * with its files, hunks and the workers involved.
 */
import { access, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { judgeClaudeRun } from '../functions/core/claude-result.ts';
import { MERGE_IDENTITY, mergeCommitMessage, mergeConflictPrompt } from '../functions/core/git-source.ts';
import type { MergeInput } from '../functions/services/worker-access.ts';
import { checkoutBase, download, fetchBundle, PARALLEL_CHECKOUT } from './checkout.ts';
import { bundleRange, lineCounts, writePatch } from './commit-work.ts';
import { git, identityEnv, runGit, splitZ } from './git.ts';
import { fail } from './git-steps.ts';
import { uploadAll } from './reporting.ts';
import { runClaude } from './run-claude.ts';
import { type AttemptContext, attemptDir, claudeArgs, claudeEnv, post } from './session.ts';

/** Below this nothing useful can be asked of Claude (matches the server's smallest attempt budget). */
const MIN_SESSION_USD = 0.01;
/** A resolution session needs at least this long to be worth starting. */
const MIN_SESSION_MS = 30_000;
const MAX_HUNKS = 20;
const MAX_HUNK_LINES = 40;
const MAX_HUNK_CHARS = 4_000;

interface Merged {
  worker_id: string;
  task_no: number;
  commit: string;
  outcome: 'merged' | 'resolved' | 'left_out';
  insertions: number;
  deletions: number;
  files_changed: number;
}

interface Conflict {
  workers: string[];
  files: string[];
  hunks: string[];
  resolution: 'resolved' | 'left_out';
  reason?: string;
}

export async function runMergeStep(ctx: AttemptContext): Promise<number> {
  const { assignment, log } = ctx;
  const repo = assignment.repo;
  const plan = assignment.merge;
  if (!repo || !plan) return fail(ctx, 'the assignment has nothing to merge', false);
  const started = Date.now();
  const scratch = await attemptDir(ctx);
  const cwd = join(scratch, 'repo');
  const base = repo.base_commit;
  try {
    // No files yet: clean merges are computed on trees (`git merge-tree`); only a conflict needs a checkout.
    const t = await checkoutBase(cwd, join(scratch, 'bundles'), repo.bundles, base, {
      checkout: false,
      sharedObjects: ctx.env.FLEET_SHARED_OBJECTS || undefined,
    });
    log.note(`git: objects of ${base.slice(0, 12)} in ${t.downloadMs + t.fetchMs} ms`);
    let head = base;
    let checkedOut = false;
    // Leave a tenth of the step's time for the result bundle, the patch and the uploads.
    const deadline = started + assignment.timeout_sec * 900;

    // With the model gateway on, the gateway bounds the spend (max_budget_usd is 0): no budget of our own.
    const metered = assignment.model_gateway !== undefined;
    let budget = metered ? Number.POSITIVE_INFINITY : assignment.max_budget_usd;
    let costUsd = 0;
    let turns = 0;
    const merged: Merged[] = [];
    const conflicts: Conflict[] = [];
    const onBranch: { input: MergeInput; files: Set<string> }[] = [];

    for (const [n, w] of plan.workers.entries()) {
      const stats = async (): Promise<Omit<Merged, 'outcome'>> => {
        const lines = await lineCounts(cwd, base, w.commit);
        const files = await changedFiles(cwd, base, w.commit);
        return {
          worker_id: w.worker_id,
          task_no: w.task_no,
          commit: w.commit,
          ...lines,
          files_changed: files.size,
        };
      };
      try {
        for (const [i, b] of w.bundles.entries()) {
          const file = join(scratch, 'bundles', `w${n}-${i}.bundle`);
          await download(b.url, file);
          await fetchBundle(cwd, file, 1000 + n * 10 + i, true);
        }
        await git(['cat-file', '-e', `${w.commit}^{commit}`], { cwd });
      } catch (err) {
        log.note(`${w.worker_id}: its commit could not be fetched (${(err as Error).message}); left out`);
        merged.push({
          worker_id: w.worker_id,
          task_no: w.task_no,
          commit: w.commit,
          outcome: 'left_out',
          insertions: 0,
          deletions: 0,
          files_changed: 0,
        });
        continue;
      }
      const before = head;
      const message = mergeCommitMessage({
        branch: plan.branch,
        jobId: plan.job_id,
        workerId: w.worker_id,
        title: w.title,
      });
      const files = await changedFiles(cwd, base, w.commit);
      const clean = await mergeTrees(cwd, head, w.commit, message);
      if (clean) {
        head = clean;
        merged.push({ ...(await stats()), outcome: 'merged' });
        onBranch.push({ input: w, files });
        log.note(`${w.worker_id}: merged`);
        continue;
      }
      // A conflict: redo this merge in a working tree, where a Claude session can resolve it.
      await git([...PARALLEL_CHECKOUT, 'checkout', '--quiet', '--force', '-B', plan.branch, head], {
        cwd,
        timeoutMs: 600_000,
      });
      if (checkedOut) await git(['clean', '-fdxq'], { cwd, timeoutMs: 600_000 });
      checkedOut = true;
      const attempt = await runGit(['merge', '--no-ff', '--no-edit', '--quiet', '-m', message, w.commit], {
        cwd,
        env: identityEnv(MERGE_IDENTITY),
        okCodes: [1],
        timeoutMs: 600_000,
      });
      if (attempt.exitCode === 0) {
        // merge-tree saw a conflict that git merge resolved by itself: take git merge's word.
        head = await git(['rev-parse', 'HEAD'], { cwd });
        merged.push({ ...(await stats()), outcome: 'merged' });
        onBranch.push({ input: w, files });
        log.note(`${w.worker_id}: merged`);
        continue;
      }
      const unmerged = [
        ...new Set(splitZ(await git(['diff', '--name-only', '-z', '--diff-filter=U'], { cwd }))),
      ];
      const ours = onBranch.filter((o) => unmerged.some((f) => o.files.has(f)));
      const involved = (ours.length > 0 ? ours : onBranch).map((o) => o.input);
      const conflict: Conflict = {
        workers: [...involved.map((o) => o.worker_id), w.worker_id],
        files: unmerged.slice(0, 200),
        hunks: await conflictHunks(cwd, unmerged),
        resolution: 'left_out',
      };
      log.note(
        `${w.worker_id}: conflict with ${involved.map((o) => o.worker_id).join(', ') || 'the branch'} in ${unmerged.join(', ')}`,
      );
      let reason: string | undefined;
      if (unmerged.length === 0) {
        reason = `git merge failed: ${attempt.stderr.trim().slice(-500)}`;
      } else if (budget < MIN_SESSION_USD) {
        reason = "the job's budget is used up, so no Claude session could resolve it";
      } else if (deadline - Date.now() < MIN_SESSION_MS) {
        reason = "the merge step's time is used up, so no Claude session could resolve it";
      } else {
        const prompt = mergeConflictPrompt({
          branch: plan.branch,
          ours: involved.map(side),
          theirs: side(w),
          files: unmerged,
        });
        const run = await runClaude({
          command: ctx.env.CLAUDE_COMMAND || 'claude',
          args: claudeArgs(assignment, metered ? 0 : budget),
          prompt,
          cwd,
          env: claudeEnv(ctx.env, cwd, ctx.assignment.model_gateway),
          // Every session shares the step's own timeout: what is left of it, not a fresh one each.
          timeoutMs: deadline - Date.now(),
          ...(ctx.signal ? { signal: ctx.signal } : {}),
        });
        const verdict = judgeClaudeRun(run);
        costUsd += verdict.costUsd;
        turns += verdict.numTurns;
        budget -= verdict.costUsd;
        log.raw(`--- resolution of ${w.worker_id}: stdout ---`, run.stdout, '--- stderr ---', run.stderr);
        reason =
          verdict.status === 'succeeded'
            ? await commitResolution(
                cwd,
                before,
                w.commit,
                unmerged,
                mergeCommitMessage({
                  branch: plan.branch,
                  jobId: plan.job_id,
                  workerId: w.worker_id,
                  title: w.title,
                  conflictWith: involved.map((o) => o.worker_id),
                  files: unmerged,
                }),
              )
            : `the resolution session ${verdict.status}: ${verdict.error ?? ''}`.trim();
      }
      if (reason === undefined) {
        head = await git(['rev-parse', 'HEAD'], { cwd });
        conflict.resolution = 'resolved';
        merged.push({ ...(await stats()), outcome: 'resolved' });
        onBranch.push({ input: w, files });
        log.note(`${w.worker_id}: conflict resolved`);
      } else {
        conflict.reason = reason;
        await restore(cwd, before);
        merged.push({ ...(await stats()), outcome: 'left_out' });
        log.note(`${w.worker_id}: left out: ${reason}`);
      }
      conflicts.push(conflict);
    }

    await git(['update-ref', `refs/heads/${plan.branch}`, head], { cwd });
    const totals = head === base ? { insertions: 0, deletions: 0 } : await lineCounts(cwd, base, head);
    const filesChanged = head === base ? 0 : (await changedFiles(cwd, base, head)).size;
    const artifacts: Partial<Record<'bundle' | 'patch', string>> = {};
    if (head !== base) {
      artifacts.bundle = join(scratch, 'result.bundle');
      artifacts.patch = join(scratch, 'changes.patch');
      await bundleRange(cwd, artifacts.bundle, base, head, `refs/heads/${plan.branch}`);
      await writeFile(artifacts.patch, await writePatch(cwd, base, head));
    }
    const summary =
      head === base
        ? 'No worker change could be merged; no branch was created.'
        : `${plan.branch} at ${head}: ${merged.filter((m) => m.outcome !== 'left_out').length} of ${merged.length} workers merged, ${filesChanged} files changed (+${totals.insertions} -${totals.deletions})`;
    log.note(`${summary} in ${Date.now() - started} ms`);
    await uploadAll(ctx.api, ctx.base, assignment.attempt, { git: artifacts, log: log.text() });
    return post(ctx, {
      attempt: assignment.attempt,
      status: 'succeeded',
      output: summary,
      cost_usd: costUsd,
      num_turns: turns,
      duration_ms: Date.now() - started,
      retryable: true,
      git: {
        branch: plan.branch,
        base_commit: base,
        head_commit: head,
        merged,
        conflicts,
        insertions: totals.insertions,
        deletions: totals.deletions,
        files_changed: filesChanged,
      },
    });
  } catch (err) {
    return fail(ctx, `merge failed: ${(err as Error).message}`, true);
  } finally {
    if (!ctx.env.KEEP_WORKSPACE) await rm(scratch, { recursive: true, force: true });
  }
}

/**
 * Merges `theirs` into `ours` without a working tree: the merge commit when
 * it is clean, undefined on a conflict.
 */
async function mergeTrees(
  cwd: string,
  ours: string,
  theirs: string,
  message: string,
): Promise<string | undefined> {
  const out = await runGit(['merge-tree', '--write-tree', '--no-messages', ours, theirs], {
    cwd,
    okCodes: [1],
    timeoutMs: 600_000,
  });
  if (out.exitCode === 1) return undefined;
  const tree = out.stdout.split('\n')[0]?.trim() as string;
  return git(['commit-tree', tree, '-p', ours, '-p', theirs, '-F', '-'], {
    cwd,
    env: identityEnv(MERGE_IDENTITY),
    input: message,
  });
}

function side(w: MergeInput) {
  return { workerId: w.worker_id, title: w.title, prompt: w.prompt };
}

async function changedFiles(cwd: string, from: string, to: string): Promise<Set<string>> {
  return new Set(
    splitZ(await git(['diff', '--name-only', '--no-renames', '-z', from, to], { cwd, timeoutMs: 300_000 })),
  );
}

/** A line git writes to open or close a conflict; `=======` alone is too common in text (setext headings). */
const MARKER = /^(?:<{7}|>{7})(?:\s|$)/m;

/**
 * Commits the merge once the session left no markers; undefined on success,
 * else why it cannot be committed. A session that committed the merge itself
 * is accepted (its message rewritten); one that abandoned it is not.
 */
async function commitResolution(
  cwd: string,
  before: string,
  theirs: string,
  files: string[],
  message: string,
): Promise<string | undefined> {
  for (const f of files) {
    const text = await readFile(join(cwd, f), 'utf8').catch(() => undefined);
    if (text !== undefined && MARKER.test(text)) return `conflict markers remain in ${f}`;
  }
  const env = identityEnv(MERGE_IDENTITY);
  const merging = await access(join(cwd, '.git', 'MERGE_HEAD')).then(
    () => true,
    () => false,
  );
  if (merging) {
    await git(['add', '--all', '--', '.'], { cwd, timeoutMs: 600_000 });
    const left = splitZ(await git(['diff', '--name-only', '-z', '--diff-filter=U'], { cwd }));
    if (left.length > 0) return `still unmerged: ${left.join(', ')}`;
    await git(['commit', '--quiet', '--no-verify', '-F', '-'], { cwd, env, input: message });
    return undefined;
  }
  const head = await git(['rev-parse', 'HEAD'], { cwd });
  const second = await git(['rev-parse', '--verify', '--quiet', 'HEAD^2'], { cwd }).catch(() => '');
  if (head !== before && second === theirs) {
    await git(['commit', '--quiet', '--amend', '--no-verify', '--reset-author', '-F', '-'], {
      cwd,
      env,
      input: message,
    });
    return undefined;
  }
  return 'the resolution session abandoned the merge';
}

/** Puts the branch and the working tree back to where they were before a merge that is left out. */
async function restore(cwd: string, head: string): Promise<void> {
  await runGit(['merge', '--abort'], { cwd, okCodes: [128, 1] });
  await git(['reset', '--quiet', '--hard', head], { cwd, timeoutMs: 600_000 });
  await git(['clean', '-fdxq'], { cwd, timeoutMs: 600_000 });
}

/** The first conflict blocks of the files, as they stand with markers, bounded for the report. */
async function conflictHunks(cwd: string, files: string[]): Promise<string[]> {
  const hunks: string[] = [];
  for (const f of files) {
    const text = await readFile(join(cwd, f), 'utf8').catch(() => '');
    const lines = text.split('\n');
    for (let i = 0; i < lines.length && hunks.length < MAX_HUNKS; i++) {
      if (!lines[i]?.startsWith('<<<<<<<')) continue;
      const end = lines.findIndex((l, j) => j > i && l.startsWith('>>>>>>>'));
      const block = lines.slice(i, end < 0 ? i + MAX_HUNK_LINES : Math.min(end + 1, i + MAX_HUNK_LINES));
      hunks.push(`${f}:${i + 1}\n${block.join('\n')}`.slice(0, MAX_HUNK_CHARS));
      if (end > i) i = end;
    }
    if (hunks.length >= MAX_HUNKS) break;
  }
  return hunks;
}
