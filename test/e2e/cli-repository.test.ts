/**
 * `orchestrator run` inside a repository, with the real bin: HEAD plus the
 * uncommitted changes are the workers' base, and the only thing added to the
 * user's repository is the branch `fleet/<job_id>`.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLAUDE_DOUBLE } from '../support/harness.ts';
import { git, sampleRepo } from '../support/repos.ts';
import { runBin } from '../support/run-bin.ts';

/** Every file under `dir` (the .git folder's HEAD, index and refs included) with a digest of its bytes. */
async function fingerprint(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const full = join(d, e.name);
      const rel = relative(dir, full);
      // Objects may be added for the new branch; everything else must stay as it was.
      if (rel === '.git/objects' || rel === '.git/refs' || rel === '.git/logs') continue;
      if (e.isDirectory()) await walk(full);
      else
        out[rel] = createHash('sha256')
          .update(await readFile(full))
          .digest('hex');
    }
  };
  await walk(dir);
  return out;
}

describe('orchestrator run inside a repository', () => {
  let dir: string;
  let repo: string;
  let head: string;
  let before: Record<string, string>;
  let refsBefore: string;
  let run: { code: number | null; stdout: string; stderr: string };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'orch-cli-repo-'));
    repo = join(dir, 'project');
    head = await sampleRepo(repo, {
      '.gitignore': '*.log\n',
      'tracked.txt': 'first\nsecond\n',
      'staged.txt': 'staged base\n',
      'src/app.ts': 'export const app = 1;\n',
    });
    // Uncommitted work of every kind: a modification, a staged change, an untracked file, an ignored one.
    await writeFile(join(repo, 'tracked.txt'), 'first\nsecond, edited but not committed\n');
    await writeFile(join(repo, 'staged.txt'), 'staged change\n');
    await git(repo, 'add', 'staged.txt');
    await writeFile(join(repo, 'staged.txt'), 'staged change, then edited again\n');
    await mkdir(join(repo, 'drafts'));
    await writeFile(join(repo, 'drafts/idea.md'), '# An untracked idea\n');
    await writeFile(join(repo, 'debug.log'), 'ignored\n');
    before = await fingerprint(repo);
    refsBefore = await git(repo, 'for-each-ref', '--format=%(refname) %(objectname)');
    // Workers get only the variables the config names (outside the repository, not part of its snapshot).
    await writeFile(join(dir, 'fleet.yaml'), 'orchestrator:\n  worker_env: [CLAUDE_DOUBLE_DIRECTIVES]\n');
    const args = ['--config', join(dir, 'fleet.yaml'), '--claude-command', CLAUDE_DOUBLE];
    run = await runBin(['run', 'Improve the project [[plan:1]]', ...args], {
      cwd: join(repo, 'src'),
      env: {
        ...process.env,
        XDG_CACHE_HOME: join(dir, 'cache'),
        CLAUDE_DOUBLE_DIRECTIVES: '[[append:tracked.txt:added by the fleet]] [[create:fleet.txt:new file]]',
      },
    });
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('says it uses the repository with its uncommitted changes, and completes', () => {
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(
      new RegExp(
        `using the repository ${repo}: HEAD ${head.slice(0, 12)} plus uncommitted changes in 3 files, as snapshot [0-9a-f]{12}`,
      ),
    );
  });

  it('adds the branch fleet/<job_id>, whose base holds HEAD plus the uncommitted changes', async () => {
    const branch = /branch: (fleet\/[0-9a-f]{20})/.exec(run.stdout)?.[1] as string;
    expect(branch).toBeDefined();
    const show = (path: string) => git(repo, 'show', `${branch}:${path}`);
    expect(await show('tracked.txt')).toBe('first\nsecond, edited but not committed\nadded by the fleet');
    expect(await show('staged.txt')).toBe('staged change, then edited again');
    expect(await show('drafts/idea.md')).toBe('# An untracked idea');
    expect(await show('fleet.txt')).toBe('new file');
    await expect(show('debug.log')).rejects.toThrow();
    // The branch starts from a snapshot commit whose parent is the user's HEAD.
    const commits = (await git(repo, 'log', '--format=%an|%P', `${head}..${branch}`)).split('\n');
    const snapshot = commits.at(-1) as string;
    expect(snapshot).toBe(`claude-fleet snapshot|${head}`);
    expect(commits.some((c) => c.startsWith('worker_1 (claude-fleet)|'))).toBe(true);
    // Printed: the diffstat of the workers' changes and how to review and merge them.
    expect(run.stdout).toMatch(/fleet\.txt\s+\| 1 \+/);
    expect(run.stdout).toMatch(/2 files changed, 2 insertions\(\+\)/);
    expect(run.stdout).toContain(`git merge ${branch}`);
  });

  it('leaves HEAD, the index, the working tree and every other ref byte-identical', async () => {
    expect(await fingerprint(repo)).toEqual(before);
    const refs = (await git(repo, 'for-each-ref', '--format=%(refname) %(objectname)')).split('\n');
    const added = refs.filter((r) => !refsBefore.split('\n').includes(r));
    expect(added).toHaveLength(1);
    expect(added[0]).toMatch(/^refs\/heads\/fleet\/[0-9a-f]{20} [0-9a-f]{40}$/);
    expect(existsSync(join(repo, '.git', 'FETCH_HEAD'))).toBe(false);
    // Reports went outside the repository.
    expect(run.stderr).toContain(join(dir, 'cache', 'claude-fleet', 'workspace'));
  });

  it('--no-repo starts in empty directories and adds no branch', async () => {
    const refs = await git(repo, 'for-each-ref', '--format=%(refname)');
    const plain = await runBin(
      [
        'run',
        'Just notes [[plan:1]]',
        '--no-repo',
        '--claude-command',
        CLAUDE_DOUBLE,
        '--workspace',
        join(dir, 'ws'),
      ],
      { cwd: repo, env: { ...process.env } },
    );
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stderr).not.toContain('using the repository');
    expect(await git(repo, 'for-each-ref', '--format=%(refname)')).toBe(refs);
  });
});
