/**
 * After Claude: everything that changed in the checkout (respecting
 * .gitignore) becomes one commit on top of the base, whatever Claude did with
 * git itself. Files over the size limit are left out, each with the reason.
 * What leaves the container is a bundle of only the new objects
 * (`base..commit`) and a patch, never the repository.
 */
import { lstat } from 'node:fs/promises';
import type { CommitIdentity } from '../functions/core/git-source.ts';
import type { FileChanges } from '../functions/core/model.ts';
import { git, identityEnv, runGit, splitZ } from './git.ts';

/** Longest file list a result carries per kind of change; the patch has everything. */
export const MAX_LISTED_FILES = 500;

export interface WorkCommit {
  /** Undefined when nothing changed. */
  commit?: string | undefined;
  files: FileChanges;
  insertions: number;
  deletions: number;
  excluded: { path: string; reason: string }[];
  truncated: boolean;
}

const EMPTY: FileChanges = { added: [], modified: [], deleted: [] };

/**
 * Stages the working tree, leaves out files over `maxFileBytes`, and commits
 * the result on top of `base` (never on whatever HEAD Claude may have moved to).
 */
export async function commitWork(
  dir: string,
  base: string,
  message: string,
  identity: CommitIdentity,
  maxFileBytes: number,
): Promise<WorkCommit> {
  await git(['add', '--all', '--', '.'], { cwd: dir, timeoutMs: 600_000 });
  const excluded = await leaveOutLargeFiles(dir, base, maxFileBytes);
  const tree = await git(['write-tree'], { cwd: dir });
  const baseTree = await git(['rev-parse', `${base}^{tree}`], { cwd: dir });
  if (tree === baseTree) return { files: EMPTY, insertions: 0, deletions: 0, excluded, truncated: false };
  const children = await mergedChildBranches(dir);
  const commit = await git(
    ['commit-tree', tree, '-p', base, ...children.flatMap((c) => ['-p', c]), '-F', '-'],
    {
      cwd: dir,
      env: identityEnv(identity),
      input: message,
    },
  );
  const changes = await changesBetween(dir, base, commit);
  return { commit, ...changes, excluded };
}

/**
 * Heads of child jobs' branches (`orchestrator spawn --wait` fetched them as
 * `fleet/<child>`) that the session merged: they become extra parents of the
 * worker's commit, so `git log` shows the children's commits in its lineage.
 */
async function mergedChildBranches(dir: string): Promise<string[]> {
  const heads = (await git(['for-each-ref', '--format=%(objectname)', 'refs/heads/fleet/'], { cwd: dir }))
    .split('\n')
    .filter(Boolean);
  const merged: string[] = [];
  for (const head of heads) {
    const ancestor = await runGit(['merge-base', '--is-ancestor', head, 'HEAD'], { cwd: dir, okCodes: [1] });
    if (ancestor.exitCode === 0) merged.push(head);
  }
  return merged;
}

/** Added, modified and deleted paths and line counts between two commits (renames as delete + add). */
export async function changesBetween(
  dir: string,
  from: string,
  to: string,
): Promise<{ files: FileChanges; insertions: number; deletions: number; truncated: boolean }> {
  const status = splitZ(
    await git(['diff', '--name-status', '--no-renames', '-z', from, to], { cwd: dir, timeoutMs: 300_000 }),
  );
  const files: FileChanges = { added: [], modified: [], deleted: [] };
  let truncated = false;
  for (let i = 0; i + 1 < status.length; i += 2) {
    const code = status[i] as string;
    const path = status[i + 1] as string;
    const list = code === 'A' ? files.added : code === 'D' ? files.deleted : files.modified;
    if (list.length < MAX_LISTED_FILES) list.push(path);
    else truncated = true;
  }
  const { insertions, deletions } = await lineCounts(dir, from, to);
  return { files, insertions, deletions, truncated };
}

export async function lineCounts(
  dir: string,
  from: string,
  to: string,
): Promise<{ insertions: number; deletions: number }> {
  const numstat = await git(['diff', '--numstat', '--no-renames', from, to], {
    cwd: dir,
    timeoutMs: 300_000,
  });
  let insertions = 0;
  let deletions = 0;
  for (const line of numstat.split('\n')) {
    const [added, removed] = line.split('\t');
    // Binary files show `-`: they count as changed files, not lines.
    if (added && added !== '-') insertions += Number(added);
    if (removed && removed !== '-') deletions += Number(removed);
  }
  return { insertions, deletions };
}

/** Unstages every added or modified file over the limit (back to its base version, or out of the index). */
async function leaveOutLargeFiles(
  dir: string,
  base: string,
  maxFileBytes: number,
): Promise<{ path: string; reason: string }[]> {
  const raw = splitZ(
    await git(['diff', '--cached', '--raw', '--no-renames', '-z', base], { cwd: dir, timeoutMs: 300_000 }),
  );
  const candidates: { path: string; status: string }[] = [];
  // `--raw -z`: ":<modes> <ids> <status>\0<path>\0" per change.
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const status = (raw[i] as string).trim().split(' ').at(-1) ?? '';
    if (status === 'A' || status === 'M' || status === 'T')
      candidates.push({ path: raw[i + 1] as string, status });
  }
  const excluded: { path: string; reason: string }[] = [];
  for (const c of candidates) {
    const size = await lstat(`${dir}/${c.path}`).then(
      (s) => s.size,
      () => 0,
    );
    if (size <= maxFileBytes) continue;
    if (c.status === 'A') await git(['rm', '--cached', '--quiet', '--', c.path], { cwd: dir });
    else await git(['reset', '--quiet', base, '--', c.path], { cwd: dir });
    excluded.push({
      path: c.path,
      reason: `${size} bytes, over the ${maxFileBytes}-byte limit for a file in a commit (limits.max_commit_file_mb)`,
    });
  }
  return excluded;
}

/** A bundle of only what `tip` adds on top of `base`, under `ref`. */
export async function bundleRange(
  dir: string,
  file: string,
  base: string,
  tip: string,
  ref: string,
): Promise<void> {
  await git(['update-ref', ref, tip], { cwd: dir });
  await runGit(['bundle', 'create', '--quiet', file, ref, `^${base}`], { cwd: dir, timeoutMs: 900_000 });
}

/** The unified diff base..tip, binary changes included so `git apply` can replay it. */
export async function writePatch(dir: string, base: string, tip: string): Promise<string> {
  return (
    await runGit(['diff', '--binary', '--no-renames', base, tip], {
      cwd: dir,
      timeoutMs: 300_000,
      maxOutputBytes: 1024 * 1024 * 1024,
    })
  ).stdout;
}
