/**
 * Recursion end to end (issue 4, first two acceptance bullets): a worker that
 * decomposes hands its subtask to a child job and its container exits; one
 * child decomposes again at depth 2; completion cascades to the root, and S3
 * holds the reports of every depth. A worker that runs `orchestrator spawn
 * --wait` reads its child's results mid-session.
 */
import { access, readdir, readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  childLinkKey,
  finalReportKey,
  levelReportKey,
  resultJsonKey,
  workerId,
} from '../../functions/core/layout.ts';
import type { JobRecord } from '../../functions/core/model.ts';
import { isTerminalTaskState } from '../../functions/core/task-states.ts';
import { mirrorJob } from '../../functions/local/mirror.ts';
import { type DoubleInvocation, startTestStack, type TestStack } from '../support/harness.ts';

/** What the test double charges (see its header): a decide run, and a work run without [[cost:X]]. */
const DECIDE_COST = 0.001;
const WORK_COST = 0.0125;

interface TaskView {
  worker_id: string;
  job_id: string;
  task_no: number;
  status: string;
  depth: number;
  attempts: number;
  recursive: boolean;
  output: string;
  files_created: string[];
  files_prefix: string;
  cost_usd: number;
  child_job_id?: string;
  child_results?: { status: string; total: number; succeeded: number; failed: number; cost_usd: number };
  parent_worker_id?: string;
}

interface Sample {
  at: number;
  parentState: string;
  otherRootTasksDone: boolean;
  /** Tasks of the tree in launching or running: the only ones that should have a process. */
  leaves: number;
  /** Worker processes alive (read before and after the store reads; the larger). */
  active: number;
  /** Processes (worker, claude, spawn) carrying the parent task's TASK_ID; null without /proc. */
  parentProcesses: number | null;
}

const TREE_WORKERS = [
  'worker_1',
  'worker_2',
  'worker_2_1',
  'worker_2_2',
  'worker_2_2_1',
  'worker_2_2_2',
  'worker_2_3',
  'worker_3',
];

describe('recursion through the API, end to end', () => {
  let stack: TestStack;
  let rootId: string;
  let result: {
    status: string;
    results: { tasks: TaskView[]; summary: { total_cost_usd: number } };
  } & Record<
    string,
    // biome-ignore lint/suspicious/noExplicitAny: the public result is read field by field
    any
  >;
  let byWorker: Map<string, TaskView>;
  let keys: string[];
  let tree: JobRecord[];
  const samples: Sample[] = [];

  const rel = (key: string) => key.slice(`jobs/${rootId}/`.length);
  const text = async (key: string) => (await stack.deps.artifacts.getText(key)) as string;

  beforeAll(async () => {
    // A per-attempt budget well inside the tree's limit, so the spend reservations of 8 workers never compete.
    stack = await startTestStack('recursion: {enable: true, max_depth: 2}\nlimits: {max_task_budget_usd: 1}');
    const res = await stack.api('POST', '/api/v1/orchestrate', {
      body: {
        request: 'root',
        config: { enable_recursion: true, max_recursion_depth: 2 },
        tasks: [
          { prompt: 'one' },
          // Children sleep in their decide and work runs, so the parent's wait is long enough to watch.
          { prompt: 'two [[split:3]] [[split_child:2:split:2]] [[split_all:sleep:800]]' },
          { prompt: 'three' },
        ],
      },
    });
    expect(res.status).toBe(202);
    rootId = res.json.job_id;

    // Watch the tree while it runs: the parent task's state, the live worker processes and the running leaves.
    const deadline = Date.now() + 45_000;
    const started = Date.now();
    for (;;) {
      const activeBefore = stack.launcher.active;
      const root = await stack.deps.jobs.getJob(rootId);
      if (!root || Date.now() > deadline) throw new Error(`job ${rootId} did not finish`);
      if (['completed', 'partial', 'failed', 'cancelled'].includes(root.status)) break;
      const jobs = [root, ...(await stack.deps.jobs.listDescendants(rootId))];
      const tasks = (await Promise.all(jobs.map((j) => stack.deps.tasks.listTasks(j.jobId)))).flat();
      const parentProcesses = await processesWithTaskId(`${rootId}/2/1`);
      const active = Math.max(activeBefore, stack.launcher.active);
      const rootTasks = tasks.filter((t) => t.jobId === rootId);
      samples.push({
        at: Date.now() - started,
        parentState: rootTasks.find((t) => t.taskNo === 2)?.state ?? 'missing',
        otherRootTasksDone: rootTasks
          .filter((t) => t.taskNo !== 2)
          .every((t) => isTerminalTaskState(t.state)),
        leaves: tasks.filter((t) => t.state === 'launching' || t.state === 'running').length,
        active,
        parentProcesses,
      });
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(await stack.waitForJob(rootId)).toBe('completed');
    result = (await stack.api('GET', `/api/v1/jobs/${rootId}`)).json;
    byWorker = new Map(result.results.tasks.map((t) => [t.worker_id, t]));
    keys = (await stack.deps.artifacts.list(`jobs/${rootId}/`)).map((o) => o.key);
    tree = [
      (await stack.deps.jobs.getJob(rootId)) as JobRecord,
      ...(await stack.deps.jobs.listDescendants(rootId)),
    ];
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('completes with every worker of every depth, the parents recursive_success with their child results', () => {
    expect(result.status).toBe('completed');
    expect(result.results.tasks.map((t) => [t.worker_id, t.depth, t.status])).toEqual([
      ['worker_1', 0, 'succeeded'],
      ['worker_2', 0, 'recursive_success'],
      ['worker_2_1', 1, 'succeeded'],
      ['worker_2_2', 1, 'recursive_success'],
      ['worker_2_2_1', 2, 'succeeded'],
      ['worker_2_2_2', 2, 'succeeded'],
      ['worker_2_3', 1, 'succeeded'],
      ['worker_3', 0, 'succeeded'],
    ]);
    const child = tree.find((j) => j.depth === 1 && j.path === '2') as JobRecord;
    const grandchild = tree.find((j) => j.depth === 2 && j.path === '2_2') as JobRecord;
    expect(tree).toHaveLength(3);
    expect(child).toMatchObject({
      parentJobId: rootId,
      parentTaskNo: 2,
      childMode: 'handoff',
      status: 'completed',
    });
    expect(grandchild).toMatchObject({
      parentJobId: child.jobId,
      parentTaskNo: 2,
      rootJobId: rootId,
      childMode: 'handoff',
      status: 'completed',
    });

    const parent = byWorker.get('worker_2') as TaskView;
    expect(parent).toMatchObject({ recursive: true, child_job_id: child.jobId });
    expect(parent.child_results).toMatchObject({ status: 'completed', total: 3, succeeded: 3, failed: 0 });
    expect(parent.files_created).toEqual([]);
    const middle = byWorker.get('worker_2_2') as TaskView;
    expect(middle).toMatchObject({
      recursive: true,
      child_job_id: grandchild.jobId,
      parent_worker_id: 'worker_2',
    });
    expect(middle.child_results).toMatchObject({ status: 'completed', total: 2, succeeded: 2, failed: 0 });
    for (const w of ['worker_2_2_1', 'worker_2_2_2'])
      expect(byWorker.get(w)).toMatchObject({ job_id: grandchild.jobId, parent_worker_id: 'worker_2_2' });
    for (const w of ['worker_1', 'worker_2_1', 'worker_2_3', 'worker_3', 'worker_2_2_1', 'worker_2_2_2']) {
      expect(byWorker.get(w)?.recursive).toBe(false);
      expect(byWorker.get(w)?.child_job_id).toBeUndefined();
    }
  });

  it('stores CHILD.json links, the files of each worker under its depth, and no folder for a recursive worker', async () => {
    const child = tree.find((j) => j.path === '2') as JobRecord;
    const grandchild = tree.find((j) => j.path === '2_2') as JobRecord;
    const link0 = JSON.parse(await text(childLinkKey(rootId, 0, 2)));
    expect(rel(childLinkKey(rootId, 0, 2))).toBe('depth_0/worker_2_recursive/CHILD.json');
    expect(link0).toMatchObject({
      child_job_id: child.jobId,
      mode: 'handoff',
      depth: 1,
      parent_job_id: rootId,
      parent_task_no: 2,
    });
    expect(link0.tasks.map((t: { task_no: number }) => t.task_no)).toEqual([1, 2, 3]);
    const link1 = JSON.parse(await text(childLinkKey(rootId, 1, 2, '2')));
    expect(rel(childLinkKey(rootId, 1, 2, '2'))).toBe('depth_1/worker_2_2_recursive/CHILD.json');
    expect(link1).toMatchObject({
      child_job_id: grandchild.jobId,
      mode: 'handoff',
      depth: 2,
      parent_job_id: child.jobId,
      parent_task_no: 2,
    });
    expect(link1.tasks).toHaveLength(2);
    expect(
      keys
        .filter((k) => k.endsWith('/CHILD.json'))
        .map(rel)
        .sort(),
    ).toEqual(['depth_0/worker_2_recursive/CHILD.json', 'depth_1/worker_2_2_recursive/CHILD.json']);

    for (const view of result.results.tasks) {
      expect(view.files_prefix).toBe(`jobs/${rootId}/depth_${view.depth}/${view.worker_id}/`);
      const stored = keys
        .filter((k) => k.startsWith(view.files_prefix))
        .map((k) => k.slice(view.files_prefix.length));
      expect(stored.sort()).toEqual([...view.files_created].sort());
      if (view.recursive) expect(stored).toEqual([]);
      else expect(stored.length).toBeGreaterThan(0);
    }
    // Every worker folder in the bucket is at the depth of its worker.
    for (const key of keys) {
      const m = /^depth_(\d+)\/(worker_[\d_]+?)(_recursive)?\//.exec(rel(key));
      if (!m) continue;
      expect(byWorker.get(m[2] as string)?.depth).toBe(Number(m[1]));
    }
    expect(keys.map(rel)).toEqual(
      expect.arrayContaining([
        'logs/depth_0_worker_2.log',
        'logs/depth_1_worker_2_2.log',
        'logs/depth_2_worker_2_2_1.log',
      ]),
    );
  });

  it('writes LEVEL_0/1/2 reports, each listing exactly the workers of its depth', async () => {
    expect(
      keys
        .map(rel)
        .filter((k) => /LEVEL_\d+_REPORT\.md$/.test(k))
        .sort(),
    ).toEqual(['depth_0/LEVEL_0_REPORT.md', 'depth_1/LEVEL_1_REPORT.md', 'depth_2/LEVEL_2_REPORT.md']);
    const expected: Record<number, string[]> = {
      0: ['worker_1', 'worker_2', 'worker_3'],
      1: ['worker_2_1', 'worker_2_2', 'worker_2_3'],
      2: ['worker_2_2_1', 'worker_2_2_2'],
    };
    for (const depth of [0, 1, 2]) {
      const report = await text(levelReportKey(rootId, depth));
      expect(tableWorkers(report)).toEqual(expected[depth]);
      for (const w of TREE_WORKERS.filter((x) => !expected[depth]?.includes(x)))
        expect(report).not.toMatch(new RegExp(`\\b${w}:`));
    }
    expect(await text(levelReportKey(rootId, 0))).toMatch(/\| worker_2 \| [^|]+ \| recursive_success \|/);
    expect(await text(levelReportKey(rootId, 1))).toMatch(/\| worker_2_2 \| [^|]+ \| recursive_success \|/);
  });

  it('FINAL_RESULT.md lists every worker of every depth and the files each created; result.json matches', async () => {
    const report = await text(finalReportKey(rootId));
    expect(report).toContain('**Status:** completed');
    expect(tableWorkers(report)).toEqual(TREE_WORKERS);
    for (const view of result.results.tasks) {
      expect(report).toMatch(
        new RegExp(`\\| ${view.worker_id} \\| [^|]+ \\| ${view.depth} \\| ${view.status} \\|`),
      );
      if (view.files_created.length === 0) continue;
      expect(report).toContain(`- **${view.worker_id}** at depth ${view.depth}`);
      const section = report.slice(report.indexOf(`- **${view.worker_id}** at depth`));
      // Linked relative to FINAL_RESULT.md, at the root of the job's folder.
      for (const file of view.files_created)
        expect(section).toContain(`](${rel(`${view.files_prefix}${file}`)})`);
    }
    for (const depth of [0, 1, 2]) expect(report).toContain(`(depth_${depth}/LEVEL_${depth}_REPORT.md)`);

    const stored = JSON.parse(await text(resultJsonKey(rootId)));
    expect(stored).toEqual(result);
  });

  it('result.json has a performance section: one timeline entry per attempt, the critical path through the hand-offs, token usage', () => {
    const perf = result.performance;
    const attempts = (w: string) => byWorker.get(w)?.attempts ?? 0;
    expect(perf.timeline.filter((t: { kind: string }) => t.kind === 'work')).toHaveLength(
      TREE_WORKERS.reduce((n, w) => n + attempts(w), 0),
    );
    for (const entry of perf.timeline) {
      expect(entry.queued_ms).toBeLessThanOrEqual(entry.launched_ms);
      expect(entry.launched_ms).toBeLessThanOrEqual(entry.running_ms);
      expect(entry.running_ms).toBeLessThanOrEqual(entry.finished_ms);
      expect(entry.finished_ms).toBeLessThanOrEqual(perf.wall_time_ms);
    }
    expect(perf.timeline.find((t: { worker_id: string }) => t.worker_id === 'worker_2')).toMatchObject({
      status: 'waiting_on_child',
      child_job_id: byWorker.get('worker_2')?.child_job_id,
    });
    // The sleeping grandchildren ended last: the path runs root -> worker_2 -> worker_2_2 -> one of them.
    const path = perf.critical_path.steps.map((s: { worker_id: string }) => s.worker_id);
    expect(path).toEqual(expect.arrayContaining(['worker_2', 'worker_2_2']));
    expect(path.at(-1)).toMatch(/^worker_2_2_[12]$/);
    const { running_ms, queueing_ms, budget_wait_ms, launch_ms, retries_ms, other_ms } = perf.critical_path;
    expect(running_ms + queueing_ms + budget_wait_ms + launch_ms + retries_ms + other_ms).toBe(
      perf.wall_time_ms,
    );
    expect(perf.bottleneck.worker_id).toMatch(/^worker_/);
    expect(perf.efficiency.parallel_efficiency).toBeGreaterThan(0);
    // The test double prints a usage block like the CLI's; the worker sums it over the attempt's sessions.
    const leaf = perf.resources.find((r: { worker_id: string }) => r.worker_id === 'worker_1');
    expect(leaf.input_tokens).toBeGreaterThan(0);
    expect(leaf.output_tokens).toBeGreaterThan(0);
    expect(leaf.cache_tokens).toBe(leaf.cache_read_tokens + leaf.cache_creation_tokens);
    // Read from /proc while the session runs; elsewhere it is left out, never made up.
    if (process.platform === 'linux') expect(leaf.peak_memory_mb).toBeGreaterThan(0);
    else expect(leaf.peak_memory_mb).toBeUndefined();
    expect(perf.cost_by_depth.map((d: { depth: number }) => d.depth)).toEqual([0, 1, 2]);
    const byDepth = perf.cost_by_depth.reduce((sum: number, d: { cost_usd: number }) => sum + d.cost_usd, 0);
    expect(byDepth).toBeCloseTo(result.cost.total_usd, 6);
  });

  it('FINAL_RESULT.md has the mermaid gantt and every output, and every relative link resolves in the local copy', async () => {
    const report = await text(finalReportKey(rootId));
    expect(report).toContain('## Performance');
    expect(report).toMatch(/```mermaid\ngantt\n/);
    const bars = report.split('\n').filter((l) => / try \d+ \w+ :/.test(l));
    expect(bars).toHaveLength(result.performance.timeline.length);
    const outputs = report.slice(report.indexOf('## Outputs'));
    for (const view of result.results.tasks) {
      expect(outputs).toContain(`### ${view.worker_id}: `);
      if (!view.recursive) expect(outputs).toContain(view.output.split('\n')[0]);
    }
    expect(outputs).toContain('[attempt 1](logs/depth_2_worker_2_2_1.log)');

    const nodes = await Promise.all(
      tree.map(async (job) => ({ job, tasks: await stack.deps.tasks.listTasks(job.jobId) })),
    );
    const { dir } = await mirrorJob(stack.deps.artifacts, rootId, stack.workspace, nodes);
    const reports = ['FINAL_RESULT.md', ...[0, 1, 2].map((d) => rel(levelReportKey(rootId, d)))];
    let checked = 0;
    for (const name of reports) {
      const markdown = await readFile(join(dir, name), 'utf8');
      for (const [, href] of markdown.matchAll(/\]\(([^)\s]+)\)/g)) {
        expect(href).not.toMatch(/^[a-z][a-z0-9+.-]*:|^\//i);
        await access(join(dir, dirname(name), decodeURIComponent(href as string)));
        checked += 1;
      }
    }
    // Level reports, result.json, every worker file and every reported attempt's log.
    expect(checked).toBeGreaterThan(20);
  });

  it('recursive workers only decided; leaves decided only where recursion was offered; depth 2 never decides', async () => {
    const runs = await runsByWorker(stack, tree);
    const expected: Record<string, { decide: number; work: number }> = {
      worker_1: { decide: 1, work: 1 },
      worker_2: { decide: 1, work: 0 },
      worker_3: { decide: 1, work: 1 },
      worker_2_1: { decide: 1, work: 1 },
      worker_2_2: { decide: 1, work: 0 },
      worker_2_3: { decide: 1, work: 1 },
      // depth 2 is the limit: a child of theirs would be at depth 3, so recursion is not offered.
      worker_2_2_1: { decide: 0, work: 1 },
      worker_2_2_2: { decide: 0, work: 1 },
    };
    expect(
      Object.fromEntries([...runs].map(([w, r]) => [w, { decide: r.decide.length, work: r.work.length }])),
    ).toEqual(expected);
    // The decide prompt carries the limit the server computed.
    const decide = runs.get('worker_2_1')?.decide[0] as DoubleInvocation;
    expect(decide.prompt).toContain('at depth 1 of at most 2');
  });

  it('no container waits: while the children run, the parent task is waiting_on_child and its process is gone', () => {
    const waiting = samples.filter((s) => s.parentState === 'waiting_on_child');
    expect(waiting.length).toBeGreaterThan(5);
    const firstWait = (waiting[0] as Sample).at;
    // Once the root's other workers are done, the only live processes are the running leaves of the child jobs.
    const quiet = waiting.filter((s) => s.otherRootTasksDone && s.leaves > 0);
    expect(quiet.length).toBeGreaterThan(0);
    expect(quiet.some((s) => s.active === s.leaves)).toBe(true);
    // The hand-off worker only uploads its log after the hand-off; a second later it must be gone for good.
    const settled = waiting.filter((s) => s.at > firstWait + 1_000);
    expect(settled.length).toBeGreaterThan(0);
    for (const s of settled) {
      if (s.parentProcesses !== null) expect(s.parentProcesses).toBe(0);
    }
  });

  it('settles every spend reservation when the tree ends, counting the decide runs of the recursive workers', async () => {
    const root = (await stack.deps.jobs.getJob(rootId)) as JobRecord;
    const runs = await runsByWorker(stack, tree);
    const decides = [...runs.values()].reduce((n, r) => n + r.decide.length, 0);
    const works = [...runs.values()].reduce((n, r) => n + r.work.length, 0);
    const reported = decides * DECIDE_COST + works * WORK_COST;
    // 3 root tasks + 3 children + 2 grandchildren.
    expect(root.budget?.reservedTasks).toBe(8);
    // Every dollar Claude reported is counted once, the hand-off workers' decide runs included...
    expect(root.budget?.spentUsd).toBeCloseTo(reported, 6);
    expect(byWorker.get('worker_2')?.cost_usd).toBeCloseTo(DECIDE_COST, 6);
    expect(byWorker.get('worker_2_2')?.cost_usd).toBeCloseTo(DECIDE_COST, 6);
    // ...and nothing stays reserved once every attempt has ended (README: given back when an attempt costs less).
    expect(root.budget?.committedUsd).toBeCloseTo(root.budget?.spentUsd as number, 6);
  });

  describe('spawn and wait', () => {
    let spawnRoot: string;
    // biome-ignore lint/suspicious/noExplicitAny: the public result is read field by field
    let spawned: any;
    let childId: string;

    beforeAll(async () => {
      const res = await stack.api('POST', '/api/v1/orchestrate', {
        body: {
          request: 'a worker that asks for help',
          config: { enable_recursion: true, max_recursion_depth: 2 },
          tasks: [{ prompt: 'use a helper [[spawn:child work;plan:2]]' }],
        },
      });
      expect(res.status).toBe(202);
      spawnRoot = res.json.job_id;
      expect(await stack.waitForJob(spawnRoot)).toBe('completed');
      spawned = (await stack.api('GET', `/api/v1/jobs/${spawnRoot}`)).json;
      childId = spawned.results.tasks[0].child_job_id;
    });

    it("returns the child's results to the waiting worker, which succeeds itself", async () => {
      const [parent, ...children] = spawned.results.tasks as TaskView[];
      expect(parent).toMatchObject({ worker_id: 'worker_1', status: 'succeeded', recursive: false });
      expect(typeof childId).toBe('string');
      expect(children.map((t) => [t.worker_id, t.depth, t.status, t.job_id, t.parent_worker_id])).toEqual([
        ['worker_1_1', 1, 'succeeded', childId, 'worker_1'],
        ['worker_1_2', 1, 'succeeded', childId, 'worker_1'],
      ]);
      const output = (parent as TaskView).output;
      expect(output).toContain('spawn exit 0');
      expect(output).toContain(childId);
      for (const child of children) {
        expect(output).toContain(`"worker_id": "${child.worker_id}"`);
        expect(output).toContain(child.output.split('\n')[0]);
      }

      expect(parent?.files_created).toContain('spawn_result.json');
      const raw = await text(`${parent?.files_prefix}spawn_result.json`);
      const spawnRun = JSON.parse(raw);
      expect(spawnRun.exit_code).toBe(0);
      const printed = JSON.parse(spawnRun.stdout);
      expect(printed).toMatchObject({ job_id: childId, status: 'completed' });
      expect(
        printed.tasks.map((t: { worker_id: string; status: string }) => [t.worker_id, t.status]),
      ).toEqual([
        ['worker_1_1', 'succeeded'],
        ['worker_1_2', 'succeeded'],
      ]);

      // The worker's session was still running while the child's workers ran: it waited for them.
      const runs = await runsByWorker(stack, [
        (await stack.deps.jobs.getJob(spawnRoot)) as JobRecord,
        ...(await stack.deps.jobs.listDescendants(spawnRoot)),
      ]);
      const work = runs.get('worker_1')?.work[0] as DoubleInvocation;
      for (const w of ['worker_1_1', 'worker_1_2']) {
        const run = runs.get(w)?.work[0] as DoubleInvocation;
        expect(run.start).toBeGreaterThan(work.start);
        expect(run.end as number).toBeLessThan(work.end as number);
      }
    });

    it("shows the child in the root's result, reports and CHILD.json as a wait-mode child", async () => {
      expect(
        spawned.jobs.map((j: Record<string, unknown>) => [
          j.job_id,
          j.depth,
          j.child_mode,
          j.parent_worker_id,
          j.status,
        ]),
      ).toEqual([
        [spawnRoot, 0, undefined, undefined, 'completed'],
        [childId, 1, 'wait', 'worker_1', 'completed'],
      ]);
      expect(JSON.parse(await text(childLinkKey(spawnRoot, 0, 1)))).toMatchObject({
        child_job_id: childId,
        mode: 'wait',
        depth: 1,
        parent_task_no: 1,
      });
      expect(tableWorkers(await text(levelReportKey(spawnRoot, 1)))).toEqual(['worker_1_1', 'worker_1_2']);
      expect(await text(finalReportKey(spawnRoot))).toMatch(
        new RegExp(`child job \`${childId}\` \\(completed, wait mode\\)`),
      );
    });

    it("lets the parent's tenant read each child job, with its own subtree only; another tenant gets 404", async () => {
      const child = await stack.api('GET', `/api/v1/jobs/${childId}`);
      expect(child.status).toBe(200);
      expect(child.json).toMatchObject({
        job_id: childId,
        status: 'completed',
        depth: 1,
        root_job_id: spawnRoot,
        parent_job_id: spawnRoot,
      });
      expect(child.json.results.tasks.map((t: TaskView) => t.worker_id)).toEqual([
        'worker_1_1',
        'worker_1_2',
      ]);

      const handoffChild = tree.find((j) => j.path === '2') as JobRecord;
      const sub = await stack.api('GET', `/api/v1/jobs/${handoffChild.jobId}`);
      expect(sub.status).toBe(200);
      expect(sub.json).toMatchObject({
        job_id: handoffChild.jobId,
        depth: 1,
        root_job_id: rootId,
        status: 'completed',
      });
      expect(sub.json.results.tasks.map((t: TaskView) => t.worker_id)).toEqual([
        'worker_2_1',
        'worker_2_2',
        'worker_2_2_1',
        'worker_2_2_2',
        'worker_2_3',
      ]);
      expect(sub.json.jobs.map((j: { depth: number }) => j.depth)).toEqual([1, 2]);

      const otherKey = await stack.createApiKey('tenant-b');
      for (const id of [childId, handoffChild.jobId]) {
        const other = await stack.api('GET', `/api/v1/jobs/${id}`, { headers: { 'x-api-key': otherKey } });
        expect(other.status).toBe(404);
      }
    });
  });
});

/** Worker ids in the rows of a report's markdown tables, in order, without repeats. */
function tableWorkers(markdown: string): string[] {
  const seen: string[] = [];
  for (const m of markdown.matchAll(/^\| (worker_[\d_]+) \|/gm))
    if (!seen.includes(m[1] as string)) seen.push(m[1] as string);
  return seen;
}

/**
 * The test double's runs of each worker of `jobs`, split into decide runs and
 * work runs. A worker's scratch directory is `task-<jobId>-<taskNo>-a<attempt>-…`.
 */
async function runsByWorker(
  stack: TestStack,
  jobs: JobRecord[],
): Promise<Map<string, { decide: DoubleInvocation[]; work: DoubleInvocation[] }>> {
  const paths = new Map(jobs.map((j) => [j.jobId, j.path]));
  const out = new Map<string, { decide: DoubleInvocation[]; work: DoubleInvocation[] }>();
  for (const run of await stack.invocations()) {
    if (run.end === null) continue;
    const m = /^task-([A-Za-z0-9_-]+)-(\d+)-a\d+-/.exec(basename(run.cwd));
    const path = m ? paths.get(m[1] as string) : undefined;
    if (!m || path === undefined) continue;
    const id = workerId(Number(m[2]), path);
    const entry = out.get(id) ?? { decide: [], work: [] };
    if (/^[ \t]*ORCHESTRATOR-DECIDE[ \t]*$/m.test(run.prompt ?? '')) entry.decide.push(run);
    else entry.work.push(run);
    out.set(id, entry);
  }
  return out;
}

/** Processes whose environment names this task attempt (`TASK_ID=job/task/attempt`); null where /proc is missing. */
async function processesWithTaskId(taskId: string): Promise<number | null> {
  const pids = await readdir('/proc').catch(() => undefined);
  if (!pids) return null;
  const wanted = `TASK_ID=${taskId}`;
  let count = 0;
  await Promise.all(
    pids
      .filter((p) => /^\d+$/.test(p) && Number(p) !== process.pid)
      .map(async (pid) => {
        const env = await readFile(`/proc/${pid}/environ`).catch(() => undefined);
        if (env?.toString('latin1').split('\0').includes(wanted)) count += 1;
      }),
  );
  return count;
}
