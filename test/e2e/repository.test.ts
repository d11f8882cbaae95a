/**
 * Jobs on a repository, end to end in local mode with the `claude` test
 * double and real git: a bundle in, one commit per worker, one merged branch
 * out; conflicts resolved by a merge session or left out and reported;
 * recursion whose child branch becomes the parent worker's commit.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack, type TestStack } from '../support/harness.ts';
import { bundleOf, fetchJobBranch, git, sampleRepo, uploadSource } from '../support/repos.ts';

const FILES = {
  'README.md': '# Sample\n\nA small project.\n',
  'src/parser.ts': 'export function parse(s: string) {\n  return s.split(",");\n}\n',
  'src/old.ts': 'export const old = 1;\n',
  'notes.txt': 'line one\nline two\nline three\n',
};

describe('a job on a repository', () => {
  let stack: TestStack;
  let dir: string;
  let origin: string;
  let base: string;
  let bundle: Buffer;

  /** Submits `tasks` against the sample repository and waits for the job. */
  async function run(tasks: { title: string; prompt: string }[], config: Record<string, unknown> = {}) {
    const bundleId = await uploadSource(stack, bundle);
    const submitted = await stack.api('POST', '/api/v1/orchestrate', {
      body: { request: 'Change the sample project', source: { bundle_id: bundleId }, tasks, config },
    });
    expect(submitted.status, submitted.text).toBe(202);
    const jobId = submitted.json.job_id as string;
    const status = await stack.waitForJob(jobId, 60_000);
    const result = (await stack.api('GET', `/api/v1/jobs/${jobId}`)).json;
    return { jobId, status, result };
  }

  /** A fresh clone of the sample repository with the job's branch fetched into it. */
  async function branchOf(jobId: string): Promise<{ clone: string; branch: string }> {
    const clone = await mkdtemp(join(dir, 'clone-'));
    await git(dir, 'clone', '--quiet', origin, clone);
    const branch = await fetchJobBranch(stack, jobId, clone, dir);
    return { clone, branch };
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'orch-repo-'));
    origin = join(dir, 'origin');
    base = await sampleRepo(origin, FILES);
    bundle = await readFile(await bundleOf(origin, join(dir, 'sample.bundle')));
    stack = await startTestStack('workers: {max_workers: 5}\nrecursion: {enable: true, max_depth: 2}', {
      KEEP_WORKSPACE: '1',
    });
  });
  afterAll(async () => {
    await stack?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('gives 3 workers editing different files one branch: a commit each, merged in worker order', async () => {
    const { jobId, status, result } = await run([
      {
        title: 'Fix the parser',
        prompt: 'Trim fields [[edit_line:src/parser.ts:2:  return s.split(",").map((x) => x.trim());]]',
      },
      { title: 'Drop old code', prompt: 'Remove it [[delete:src/old.ts]] [[append:notes.txt:line four]]' },
      { title: 'Add docs', prompt: 'Document it [[create:docs/usage.md:# Usage]]' },
    ]);
    expect(status).toBe('completed');
    expect(result.git).toMatchObject({
      base_commit: base,
      state: 'merged',
      branch: `fleet/${jobId}`,
      conflicts: [],
    });
    const byWorker = Object.fromEntries(
      result.results.tasks.map((t: { worker_id: string; files_changed: unknown }) => [
        t.worker_id,
        t.files_changed,
      ]),
    );
    expect(byWorker).toEqual({
      worker_1: { added: [], modified: ['src/parser.ts'], deleted: [] },
      worker_2: { added: [], modified: ['notes.txt'], deleted: ['src/old.ts'] },
      worker_3: { added: ['docs/usage.md'], modified: [], deleted: [] },
    });

    const { clone, branch } = await branchOf(jobId);
    expect(await git(clone, 'rev-parse', branch)).toBe(result.git.head_commit);
    // First parents: one merge per worker, in worker order, on top of the untouched base.
    const merges = (await git(clone, 'log', '--first-parent', '--format=%an|%s', `${base}..${branch}`)).split(
      '\n',
    );
    expect(merges).toEqual([
      `merge (claude-fleet)|Merge worker_3 into ${branch}: Add docs`,
      `merge (claude-fleet)|Merge worker_2 into ${branch}: Drop old code`,
      `merge (claude-fleet)|Merge worker_1 into ${branch}: Fix the parser`,
    ]);
    const authors = (
      await git(clone, 'log', '--no-merges', '--format=%an|%cn|%s', `${base}..${branch}`)
    ).split('\n');
    expect(authors.sort()).toEqual([
      'worker_1 (claude-fleet)|worker_1 (claude-fleet)|Fix the parser',
      'worker_2 (claude-fleet)|worker_2 (claude-fleet)|Drop old code',
      'worker_3 (claude-fleet)|worker_3 (claude-fleet)|Add docs',
    ]);
    const w2 = result.results.tasks[1].commit as string;
    expect(await git(clone, 'rev-parse', `${w2}^`)).toBe(base);
    const trailers = await git(clone, 'log', '-1', '--format=%(trailers:unfold)', w2);
    expect(trailers).toContain(`Fleet-Job: ${jobId}`);
    expect(trailers).toContain('Fleet-Worker: worker_2');
    expect(trailers).toContain('Fleet-Depth: 0');
    expect(trailers).toContain('Fleet-Attempt: 1');
    // The body between the title and the trailers is Claude's summary.
    expect(await git(clone, 'log', '-1', '--format=%b', w2)).toMatch(/^Completed: /);

    await git(clone, 'checkout', '--quiet', branch);
    expect(await readFile(join(clone, 'src/parser.ts'), 'utf8')).toContain('x.trim()');
    expect(await readFile(join(clone, 'notes.txt'), 'utf8')).toBe(
      'line one\nline two\nline three\nline four\n',
    );
    expect(await readFile(join(clone, 'docs/usage.md'), 'utf8')).toBe('# Usage\n');
    await expect(readFile(join(clone, 'src/old.ts'))).rejects.toThrow();
    // The base is untouched: main still points at it.
    expect(await git(origin, 'rev-parse', 'main')).toBe(base);

    const patch = await stack.api('GET', `/api/v1/jobs/${jobId}/patch`);
    expect(patch.status).toBe(200);
    expect(patch.text).toContain('diff --git a/src/parser.ts b/src/parser.ts');
    expect(patch.text).toContain('deleted file mode');
    const report = (await stack.deps.artifacts.getText(`jobs/${jobId}/FINAL_RESULT.md`)) as string;
    expect(report).toContain('## Changes');
    expect(report).toContain(`\`fleet/${jobId}\``);
    expect(report).toMatch(/\| `src\/old.ts` \| deleted \| worker_2 \| 0 \|/);
  });

  it('runs every worker and the planner in its own checkout of the base, outside the workspace', async () => {
    const submitted = await stack.api('POST', '/api/v1/orchestrate', {
      body: {
        request: 'Plan against the real layout [[plan:2]] [[no_files]]',
        source: { bundle_id: await uploadSource(stack, bundle) },
      },
    });
    const jobId = submitted.json.job_id;
    expect(await stack.waitForJob(jobId, 60_000)).toBe('completed');
    const runs = (await stack.invocations()).filter((r) =>
      (r.prompt ?? '').includes('Plan against the real layout'),
    );
    const planner = runs.find((r) => (r.prompt ?? '').startsWith('You are the planner'));
    expect(planner?.prompt).toContain("checkout of the\ncaller's git repository");
    const workers = runs.filter((r) => (r.prompt ?? '').startsWith('You are worker'));
    expect(workers).toHaveLength(2);
    for (const r of [planner, ...workers]) {
      const cwd = r?.cwd as string;
      expect(cwd.startsWith(stack.workspace)).toBe(false);
      expect(await git(cwd, 'rev-parse', '--show-toplevel')).toBe(cwd);
      // Every checkout starts from the base (the kept directories still hold the session's state).
      expect(await git(cwd, 'merge-base', '--is-ancestor', base, 'HEAD').then(() => true)).toBe(true);
      expect(await readFile(join(cwd, 'src/parser.ts'), 'utf8')).toBe(FILES['src/parser.ts']);
    }
    expect(new Set([planner?.cwd, ...workers.map((w) => w.cwd)]).size).toBe(3);
    expect(workers[0]?.prompt).toContain('collected as one commit');
    const result = (await stack.api('GET', `/api/v1/jobs/${jobId}`)).json;
    // [[no_files]]: the workers changed nothing, so there is nothing to merge and no branch.
    expect(result.git).toMatchObject({ state: 'unchanged', branch: null, head_commit: base });
    expect(result.git.note).toMatch(/no worker changed anything/);
    expect((await stack.api('GET', `/api/v1/jobs/${jobId}/bundle`)).status).toBe(404);
  });

  it("spawn --wait: the child job starts from the base, and its branch is merged into the worker's commit", async () => {
    const { jobId, status, result } = await run([
      {
        title: 'Parent with a helper',
        prompt: 'x [[spawn:helper work;plan:1;create:helper.txt:from the child]] [[create:parent.txt:p]]',
      },
    ]);
    expect(status).toBe('completed');
    const parent = result.results.tasks.find((t: { worker_id: string }) => t.worker_id === 'worker_1');
    expect(parent.files_changed.added).toEqual(expect.arrayContaining(['helper.txt', 'parent.txt']));
    const { clone, branch } = await branchOf(jobId);
    expect(await git(clone, 'show', `${branch}:helper.txt`)).toBe('from the child');
    expect(await git(clone, 'show', `${branch}:parent.txt`)).toBe('p');
    // The worker's commit has the child job's branch as a second parent: its commits are in the lineage.
    const parents = (await git(clone, 'log', '-1', '--format=%P', parent.commit)).split(' ');
    expect(parents).toHaveLength(2);
    expect(parents[0]).toBe(base);
    const authors = await git(clone, 'log', '--format=%an', `${base}..${branch}`);
    expect(authors).toContain('worker_1_1 (claude-fleet)');
  });

  it('leaves a file over limits.max_commit_file_mb out of the commit, with the reason', async () => {
    const { jobId, status, result } = await run([
      {
        title: 'Big and small',
        prompt: `x [[create_bytes:big.bin:${11 * 1024 * 1024}]] [[create:small.txt:ok]]`,
      },
    ]);
    expect(status).toBe('completed');
    const task = result.results.tasks[0];
    expect(task.files_changed).toEqual({ added: ['small.txt'], modified: [], deleted: [] });
    expect(task.excluded_files).toEqual([
      {
        path: 'big.bin',
        reason: expect.stringMatching(/^11534336 bytes, over the 10485760-byte limit .*max_commit_file_mb/),
      },
    ]);
    const { clone, branch } = await branchOf(jobId);
    expect(await git(clone, 'show', `${branch}:small.txt`)).toBe('ok');
    await expect(git(clone, 'show', `${branch}:big.bin`)).rejects.toThrow();
    const level = (await stack.deps.artifacts.getText(`jobs/${jobId}/depth_0/LEVEL_0_REPORT.md`)) as string;
    expect(level).toContain('Left out: `big.bin`');
  });

  it('resolves two workers changing the same line with a merge session, and the job completes', async () => {
    const { jobId, status, result } = await run([
      { title: 'Say hello', prompt: 'x [[edit_line:notes.txt:2:line two, hello]]' },
      { title: 'Say goodbye', prompt: 'y [[edit_line:notes.txt:2:line two, goodbye]]' },
    ]);
    expect(status).toBe('completed');
    expect(result.git.conflicts).toEqual([
      expect.objectContaining({
        workers: ['worker_1', 'worker_2'],
        files: ['notes.txt'],
        resolution: 'resolved',
      }),
    ]);
    expect(result.git.merged.map((m: { outcome: string }) => m.outcome)).toEqual(['merged', 'resolved']);
    const { clone, branch } = await branchOf(jobId);
    expect(await git(clone, 'show', `${branch}:notes.txt`)).toBe(
      'line one\nline two, hello\nline two, goodbye\nline three',
    );
    const merge = await git(clone, 'log', '-1', '--format=%s%n%b', branch);
    expect(merge).toContain('Merge worker_2');
    expect(merge).toContain('Fleet-Merge: worker_1, worker_2');
    const session = (await stack.invocations()).find(
      (r) => (r.prompt ?? '').startsWith('ORCHESTRATOR-MERGE') && (r.prompt ?? '').includes('Say goodbye'),
    );
    expect(session?.prompt).toContain('- notes.txt');
    expect(result.steps).toEqual([expect.objectContaining({ kind: 'merge', status: 'succeeded' })]);
    expect(result.steps[0].cost_usd).toBeGreaterThan(0);
  });

  it('leaves out a change whose conflict cannot be resolved, ends partial and reports both workers and the file', async () => {
    const { jobId, status, result } = await run([
      { title: 'First', prompt: 'x [[edit_line:README.md:1:# First title]]' },
      { title: 'Second', prompt: 'y [[edit_line:README.md:1:# Second title]] [[resolve:none]]' },
      { title: 'Third', prompt: 'z [[create:third.txt:3]]' },
    ]);
    expect(status).toBe('partial');
    expect(result.error).toMatch(/worker_2's change was left out .*conflict with worker_1 in README.md/);
    expect(result.git.conflicts).toEqual([
      expect.objectContaining({
        workers: ['worker_1', 'worker_2'],
        files: ['README.md'],
        resolution: 'left_out',
        reason: 'conflict markers remain in README.md',
      }),
    ]);
    expect(result.git.conflicts[0].hunks[0]).toMatch(
      /README.md:1\n<<<<<<< [^\n]*\n# First title\n=======\n# Second title\n>>>>>>> /,
    );
    expect(result.git.merged.map((m: { outcome: string }) => m.outcome)).toEqual([
      'merged',
      'left_out',
      'merged',
    ]);
    const { clone, branch } = await branchOf(jobId);
    expect((await git(clone, 'show', `${branch}:README.md`)).split('\n')[0]).toBe('# First title');
    expect(await git(clone, 'show', `${branch}:third.txt`)).toBe('3');
    const report = (await stack.deps.artifacts.getText(`jobs/${jobId}/FINAL_RESULT.md`)) as string;
    expect(report).toContain("worker_1 and worker_2 in `README.md`: **worker_2's change was left out**");
  });

  it('leaves a conflicting change out without a session when the job budget is spent', async () => {
    const { status, result } = await run(
      [
        { title: 'Spend half', prompt: 'x [[edit_line:README.md:3:Half.]] [[cost:0.025]]' },
        { title: 'Spend the rest', prompt: 'y [[edit_line:README.md:3:The rest.]] [[cost:0.025]]' },
      ],
      // No decide runs: each worker spends exactly its [[cost]].
      { max_budget_usd: 0.05, enable_recursion: false },
    );
    expect(status).toBe('partial');
    expect(result.git.conflicts).toEqual([
      expect.objectContaining({
        workers: ['worker_1', 'worker_2'],
        resolution: 'left_out',
        reason: "the job's budget is used up, so no Claude session could resolve it",
      }),
    ]);
    expect(result.steps[0]).toMatchObject({ kind: 'merge', status: 'succeeded', cost_usd: 0 });
  });

  it("recursion: a worker that hands off gets its child job's merged branch as its commit", async () => {
    const { jobId, status, result } = await run([
      {
        title: 'Big change',
        prompt:
          'Split it [[split:2]] [[split_child:1:create:child/one.txt:1]] [[split_child:2:create:child/two.txt:2]]',
      },
      { title: 'Small change', prompt: 'x [[append:notes.txt:small]]' },
    ]);
    expect(status).toBe('completed');
    const ids = result.results.tasks.map(
      (t: { worker_id: string; status: string }) => `${t.worker_id}:${t.status}`,
    );
    expect(ids).toEqual([
      'worker_1:recursive_success',
      'worker_1_1:succeeded',
      'worker_1_2:succeeded',
      'worker_2:succeeded',
    ]);
    const { clone, branch } = await branchOf(jobId);
    const authors = (await git(clone, 'log', '--format=%an', `${base}..${branch}`)).split('\n');
    expect(authors).toEqual(
      expect.arrayContaining([
        'worker_1_1 (claude-fleet)',
        'worker_1_2 (claude-fleet)',
        'worker_2 (claude-fleet)',
      ]),
    );
    expect(await git(clone, 'show', `${branch}:child/one.txt`)).toBe('1');
    expect(await git(clone, 'show', `${branch}:child/two.txt`)).toBe('2');
    // The child job's own branch is the parent worker's commit, merged into the root's branch.
    const child = result.jobs[1];
    expect(result.results.tasks[0].commit).toBeDefined();
    const childMergeTrailer = await git(
      clone,
      'log',
      '-1',
      '--format=%(trailers:key=Fleet-Job,valueonly)',
      result.results.tasks[0].commit,
    );
    expect(childMergeTrailer).toBe(child.job_id);
    const report = (await stack.deps.artifacts.getText(`jobs/${jobId}/FINAL_RESULT.md`)) as string;
    expect(report).toMatch(/\| `child\/one.txt` \| added \| worker_1_1 \| 1 \|/);
  });
});

describe('a repository job with the model gateway on', () => {
  let stack: TestStack;
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'orch-repo-gw-'));
    await sampleRepo(join(dir, 'origin'), FILES);
    // The double never calls the model: the upstream only has to be configured for the gateway to be on.
    stack = await startTestStack(
      'workers: {max_workers: 2}',
      {},
      {
        modelEnv: {
          ANTHROPIC_API_KEY: 'sk-ant-upstream-never-called',
          ANTHROPIC_BASE_URL: 'http://127.0.0.1:9',
        },
      },
    );
  });
  afterAll(async () => {
    await stack?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  // The gateway bounds the spend, so assignments carry max_budget_usd 0: the merge step must not read that
  // as "the budget is used up" and leave every conflict out.
  it('still resolves a conflict with a merge session', async () => {
    expect(stack.deps.settings.gateway?.enabled).toBe(true);
    const bundleId = await uploadSource(
      stack,
      await readFile(await bundleOf(join(dir, 'origin'), join(dir, 's.bundle'))),
    );
    const submitted = await stack.api('POST', '/api/v1/orchestrate', {
      body: {
        request: 'Change the sample project',
        source: { bundle_id: bundleId },
        tasks: [
          { title: 'Say hello', prompt: 'x [[edit_line:notes.txt:2:line two, hello]]' },
          { title: 'Say goodbye', prompt: 'y [[edit_line:notes.txt:2:line two, goodbye]]' },
        ],
      },
    });
    expect(submitted.status, submitted.text).toBe(202);
    const jobId = submitted.json.job_id as string;
    expect(await stack.waitForJob(jobId, 60_000)).toBe('completed');
    const result = (await stack.api('GET', `/api/v1/jobs/${jobId}`)).json;
    expect(result.git.conflicts).toEqual([expect.objectContaining({ resolution: 'resolved' })]);
  });
});
