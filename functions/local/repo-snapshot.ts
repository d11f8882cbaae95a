/**
 * `orchestrator run` in a repository: the base the workers start from is
 * HEAD plus the uncommitted changes (tracked modifications and untracked
 * files that are not ignored), taken as one snapshot commit, and the result
 * comes back as the branch `fleet/<job_id>`.
 *
 * The user's repository is never written except to add that branch. The
 * snapshot is staged in a copy of the index and its objects go to a private
 * "shadow" repository whose alternates point at the user's object store; the
 * bundle is made there, and the result is fetched there first, then into the
 * user's repository under the new branch only. HEAD, the index and the
 * working tree stay byte-identical.
 */
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { git, identityEnv, runGit, splitZ } from '../../container/git.ts';

export interface RepoSnapshot {
  /** The work tree's top directory. */
  root: string;
  /** The user's HEAD commit; undefined on a branch with no commits yet. */
  head?: string | undefined;
  /** The commit the workers start from: HEAD itself when nothing was uncommitted. */
  base: string;
  /** Paths that differ between HEAD and the snapshot (the uncommitted changes). */
  uncommitted: string[];
  /** The bundle to upload (the base and its whole history). */
  bundleFile: string;
  /** Private repository holding the snapshot's objects; removed by cleanup(). */
  shadow: string;
  cleanup(): Promise<void>;
}

const SNAPSHOT_IDENTITY = { name: 'claude-fleet snapshot', email: 'snapshot@claude-fleet.invalid' };
const LONG = 15 * 60_000;

/** The top of the git work tree `dir` is in, or undefined when it is in none. */
export async function findWorkTree(dir: string): Promise<string | undefined> {
  const out = await runGit(['rev-parse', '--is-inside-work-tree', '--show-toplevel'], {
    cwd: dir,
    okCodes: [128],
    userConfig: true,
  }).catch(() => undefined);
  if (out?.exitCode !== 0) return undefined;
  const [inside, top] = out.stdout.trim().split('\n');
  return inside === 'true' && top ? top : undefined;
}

/** Takes the snapshot and writes its bundle; nothing in `root` changes. */
export async function snapshotRepository(root: string): Promise<RepoSnapshot> {
  const scratch = await mkdtemp(join(tmpdir(), 'claude-fleet-snapshot-'));
  const cleanup = () => rm(scratch, { recursive: true, force: true });
  try {
    const user = { cwd: root, userConfig: true, timeoutMs: LONG };
    const objects = await git(['rev-parse', '--path-format=absolute', '--git-path', 'objects'], user);
    const index = await git(['rev-parse', '--path-format=absolute', '--git-path', 'index'], user);
    const head = await git(['rev-parse', '--verify', '--quiet', 'HEAD^{commit}'], user).catch(
      () => undefined,
    );

    const shadow = join(scratch, 'shadow.git');
    await git(['init', '--quiet', '--bare', shadow], { cwd: scratch });
    await writeFile(join(shadow, 'objects', 'info', 'alternates'), `${objects}\n`);
    const tmpIndex = join(scratch, 'index');
    // A copy keeps git's stat cache, so only changed files are read again; a repository without one starts empty.
    await copyFile(index, tmpIndex).catch(() => undefined);
    const staged = {
      ...user,
      env: {
        GIT_INDEX_FILE: tmpIndex,
        GIT_OBJECT_DIRECTORY: join(shadow, 'objects'),
        GIT_ALTERNATE_OBJECT_DIRECTORIES: objects,
        ...identityEnv(SNAPSHOT_IDENTITY),
      },
    };
    await git(['add', '--all', '--', '.'], staged);
    const tree = await git(['write-tree'], staged);
    const headTree = head ? await git(['rev-parse', `${head}^{tree}`], user) : undefined;
    let base = head;
    let uncommitted: string[] = [];
    if (!head || tree !== headTree) {
      uncommitted = head
        ? splitZ(await git(['diff', '--name-only', '--no-renames', '-z', head, tree], staged))
        : splitZ(await git(['ls-tree', '-r', '--name-only', '-z', tree], staged));
      base = await git(['commit-tree', tree, ...(head ? ['-p', head] : []), '-F', '-'], {
        ...staged,
        input: `claude-fleet: snapshot of the working tree${head ? ` on top of ${head.slice(0, 12)}` : ''}\n\nThe uncommitted changes the workers started from.\n`,
      });
    }
    const shadowGit = { cwd: shadow, timeoutMs: LONG };
    await git(['update-ref', 'refs/heads/fleet-base', base as string], shadowGit);
    const bundleFile = join(scratch, 'base.bundle');
    // No new delta search (existing deltas are still reused): on thousands of loose objects it costs
    // seconds per thousand files and saves little, since the history is mostly packed already.
    await runGit(
      ['-c', 'pack.window=0', 'bundle', 'create', '--quiet', bundleFile, 'refs/heads/fleet-base'],
      shadowGit,
    );
    return { root, head, base: base as string, uncommitted, bundleFile, shadow, cleanup };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/**
 * Adds the job's branch to the user's repository from its result bundle.
 * Only the new branch is written: no FETCH_HEAD, no tags, no maintenance,
 * and an existing branch of that name is never overwritten.
 */
export async function addResultBranch(
  snapshot: RepoSnapshot,
  resultBundle: string,
  branch: string,
): Promise<void> {
  const ref = `refs/heads/${branch}`;
  // The result needs the snapshot's objects, which only the shadow has.
  // The workers' objects are checked (fsck) before they come anywhere near the user's repository.
  await git(
    [
      '-c',
      'transfer.fsckObjects=true',
      'fetch',
      '--quiet',
      '--no-tags',
      '--no-write-fetch-head',
      resultBundle,
      `${ref}:${ref}`,
    ],
    {
      cwd: snapshot.shadow,
      timeoutMs: LONG,
    },
  );
  await git(
    [
      'fetch',
      '--quiet',
      '--no-tags',
      '--no-write-fetch-head',
      '--no-auto-maintenance',
      snapshot.shadow,
      `${ref}:${ref}`,
    ],
    { cwd: snapshot.root, userConfig: true, timeoutMs: LONG },
  );
}

/** `git diff --stat base..branch` in the user's repository (reads objects only). */
export async function diffstat(snapshot: RepoSnapshot, branch: string): Promise<string> {
  const out = await runGit(['diff', '--stat', '--no-color', `${snapshot.base}..${branch}`], {
    cwd: snapshot.root,
    userConfig: true,
    timeoutMs: LONG,
  });
  // Not trimmed at the start: git indents every line of the stat by one space.
  return out.stdout.trimEnd();
}
