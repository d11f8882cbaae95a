import { describe, expect, it } from 'vitest';
import { finalReportMarkdown } from '../../functions/core/final-report.ts';
import type {
  AttemptRecord,
  ChildResults,
  JobRecord,
  TaskRecord,
  TaskResultSummary,
} from '../../functions/core/model.ts';
import { renderTreeReports } from '../../functions/core/reports.ts';
import { buildTreeResult, type ResultContext, type TreeNode } from '../../functions/core/result-format.ts';

const T0 = '2025-03-01T10:00:00.000Z';
const ROOT = 'job-root';
const ctx: ResultContext = { bucket: 'artifacts', now: '2025-03-01T10:09:00.000Z' };

function makeJob(jobId: string, overrides: Partial<JobRecord> = {}): JobRecord {
  return {
    jobId,
    tenant: 'tenant-1',
    status: 'completed',
    request: `Request of ${jobId}`,
    config: {
      maxWorkers: 5,
      defaultTimeoutSec: 600,
      maxRetries: 2,
      enableRecursion: true,
      maxRecursionDepth: 3,
      maxBudgetUsd: 10,
    },
    depth: 0,
    rootJobId: ROOT,
    path: '',
    totalTasks: 3,
    finishedTasks: [1, 2, 3],
    createdAt: T0,
    updatedAt: '2025-03-01T10:08:00.000Z',
    finishedAt: '2025-03-01T10:08:00.000Z',
    requestHash: 'hash',
    ...overrides,
  };
}

/** A child job of `parent`'s task `taskNo`, with the lineage and depth the orchestrator gives it. */
function childJob(jobId: string, parent: JobRecord, taskNo: number, overrides: Partial<JobRecord> = {}) {
  return makeJob(jobId, {
    depth: parent.depth + 1,
    path: parent.path ? `${parent.path}_${taskNo}` : String(taskNo),
    parentJobId: parent.jobId,
    parentTaskNo: taskNo,
    parentAttempt: 1,
    childMode: 'handoff',
    createdAt: '2025-03-01T10:01:00.000Z',
    ...overrides,
  });
}

function attempt(n: number, overrides: Partial<AttemptRecord> = {}): AttemptRecord {
  return { attempt: n, state: 'succeeded', finishedAt: `2025-03-01T10:0${n}:00.000Z`, ...overrides };
}

function result(overrides: Partial<TaskResultSummary> = {}): TaskResultSummary {
  return {
    output: 'done',
    outputTruncated: false,
    filesCreated: [],
    costUsd: 0.01,
    numTurns: 2,
    durationMs: 10_000,
    ...overrides,
  };
}

function task(job: JobRecord, taskNo: number, overrides: Partial<TaskRecord> = {}): TaskRecord {
  return {
    jobId: job.jobId,
    taskNo,
    kind: taskNo === 0 ? 'plan' : 'work',
    title: taskNo === 0 ? 'Plan' : `Part ${job.path ? `${job.path}_` : ''}${taskNo}`,
    prompt: `Do part ${taskNo} of ${job.jobId}`,
    state: 'succeeded',
    attempt: 1,
    maxRetries: 2,
    timeoutSec: 600,
    depth: job.depth,
    rootJobId: job.rootJobId,
    jobPath: job.path,
    createdAt: T0,
    updatedAt: T0,
    attempts: [],
    ...overrides,
  };
}

function succeeded(job: JobRecord, taskNo: number, costUsd: number, files: string[] = []): TaskRecord {
  return task(job, taskNo, {
    result: result({ costUsd, filesCreated: files, output: `output of ${taskNo}` }),
    attempts: [attempt(1, { costUsd, durationMs: 10_000 })],
  });
}

/** A task that handed off to `child` (its own attempt cost `costUsd`) and completed with the child's results. */
function recursive(job: JobRecord, taskNo: number, child: string, costUsd: number, results: ChildResults) {
  return task(job, taskNo, {
    state: 'recursive_success',
    childJobId: child,
    childResults: results,
    attempts: [attempt(1, { state: 'waiting_on_child', costUsd, durationMs: 5_000 })],
  });
}

function planner(job: JobRecord, costUsd: number): TaskRecord {
  return task(job, 0, { result: result({ costUsd }), attempts: [attempt(1, { costUsd })] });
}

/**
 * Root (3 workers) → worker_2 hands off to job-c (depth 1, 3 workers, planned)
 * → its worker_2_1 hands off to job-g (depth 2, 2 workers given by the worker),
 * whose worker_2_1_1 fails after two attempts.
 */
function fixture() {
  const root = makeJob(ROOT);
  const child = childJob('job-c', root, 2);
  const grandchild = childJob('job-g', child, 1, {
    status: 'partial',
    totalTasks: 2,
    finishedTasks: [1, 2],
    createdAt: '2025-03-01T10:02:00.000Z',
  });
  const rootNode: TreeNode = {
    job: root,
    tasks: [
      succeeded(root, 3, 0.02),
      planner(root, 0.002),
      succeeded(root, 1, 0.01, ['notes.md']),
      recursive(root, 2, 'job-c', 0.001, {
        status: 'completed',
        total: 3,
        succeeded: 3,
        failed: 0,
        costUsd: 0.044,
      }),
    ],
  };
  const childNode: TreeNode = {
    job: child,
    tasks: [
      planner(child, 0.003),
      recursive(child, 1, 'job-g', 0.002, {
        status: 'partial',
        total: 2,
        succeeded: 1,
        failed: 1,
        costUsd: 0.022,
      }),
      succeeded(child, 2, 0.015, ['api/server.ts']),
      succeeded(child, 3, 0.005),
    ],
  };
  const grandchildNode: TreeNode = {
    job: grandchild,
    tasks: [
      succeeded(grandchild, 2, 0.012, ['tests/e2e.spec.ts']),
      task(grandchild, 1, {
        state: 'failed',
        attempt: 2,
        result: result({ output: '', error: 'rate limited', exitCode: 1, costUsd: 0.006 }),
        attempts: [
          attempt(1, { state: 'failed', error: 'container OOM-killed (exit 137)', costUsd: 0.004 }),
          attempt(2, { state: 'failed', error: 'rate limited', exitCode: 1, costUsd: 0.006 }),
        ],
      }),
    ],
  };
  // Descendants in any order.
  return { root, child, grandchild, tree: [rootNode, grandchildNode, childNode] };
}

/** A 'wait'-mode child job (job-w) of root worker_3, which itself completed normally. */
function withWaitChild(tree: TreeNode[], root: JobRecord): TreeNode[] {
  const wait = childJob('job-w', root, 3, { childMode: 'wait', totalTasks: 1, finishedTasks: [1] });
  return [...tree, { job: wait, tasks: [succeeded(wait, 1, 0.007, ['extra.md'])] }];
}

function tableRow(doc: string, worker: string): string[] {
  const line = doc.split('\n').find((l) => l.startsWith(`| ${worker} |`));
  expect(line, `table row for ${worker}`).toBeDefined();
  return (line ?? '')
    .split(/(?<!\\)\|/)
    .slice(1, -1)
    .map((c) => c.trim());
}

function tableWorkers(doc: string): string[] {
  return doc
    .split('\n')
    .filter((l) => /^\| worker_/.test(l))
    .map((l) => l.split('|')[1]?.trim() ?? '');
}

function section(doc: string, heading: string): string {
  const start = doc.indexOf(`\n${heading}\n`);
  expect(start, `section ${heading}`).toBeGreaterThanOrEqual(0);
  const level = heading.split(' ')[0];
  const rest = doc.slice(start + heading.length + 2);
  const end = rest.search(new RegExp(`^${level} `, 'm'));
  return end < 0 ? rest : rest.slice(0, end);
}

const DEPTH_FIRST = [
  'worker_1',
  'worker_2',
  'worker_2_1',
  'worker_2_1_1',
  'worker_2_1_2',
  'worker_2_2',
  'worker_2_3',
  'worker_3',
];

describe('buildTreeResult', () => {
  it('lists every work task of the tree depth-first with lineage ids, keys and parents', () => {
    // Prepare
    const { tree } = fixture();

    // Act
    const res = buildTreeResult(tree, ctx);

    // Assess
    const views = res.results.tasks;
    expect(views.map((t) => t.worker_id)).toEqual(DEPTH_FIRST);
    const byId = new Map(views.map((t) => [t.worker_id, t]));
    expect(byId.get('worker_1')).toMatchObject({ job_id: ROOT, depth: 0, recursive: false });
    expect(byId.get('worker_1')).not.toHaveProperty('parent_worker_id');
    expect(byId.get('worker_1')).not.toHaveProperty('child_job_id');
    expect(byId.get('worker_2')).toMatchObject({
      status: 'recursive_success',
      recursive: true,
      child_job_id: 'job-c',
      child_results: { status: 'completed', total: 3, succeeded: 3, failed: 0, cost_usd: 0.044 },
      cost_usd: 0.001,
      files_prefix: 'jobs/job-root/depth_0/worker_2/',
    });
    expect(byId.get('worker_2_1')).toMatchObject({
      job_id: 'job-c',
      task_no: 1,
      depth: 1,
      recursive: true,
      child_job_id: 'job-g',
      child_results: { status: 'partial', total: 2, succeeded: 1, failed: 1, cost_usd: 0.022 },
      parent_worker_id: 'worker_2',
      files_prefix: 'jobs/job-root/depth_1/worker_2_1/',
      log_key: 'jobs/job-root/logs/depth_1_worker_2_1.log',
    });
    expect(byId.get('worker_2_1_2')).toMatchObject({
      job_id: 'job-g',
      depth: 2,
      recursive: false,
      parent_worker_id: 'worker_2_1',
      files_created: ['tests/e2e.spec.ts'],
      files_prefix: 'jobs/job-root/depth_2/worker_2_1_2/',
      log_key: 'jobs/job-root/logs/depth_2_worker_2_1_2.log',
    });
    expect(byId.get('worker_2_1_1')).toMatchObject({ status: 'failed', attempts: 2, error: 'rate limited' });
  });

  it('counts every work task of every depth, and sums the cost of every attempt and planner', () => {
    // Prepare
    const { tree } = fixture();

    // Act
    const res = buildTreeResult(tree, ctx);

    // Assess
    expect(res.results.summary).toEqual({
      total: 8,
      succeeded: 7,
      failed: 1,
      timed_out: 0,
      cancelled: 0,
      running: 0,
      // 0.01 + 0.001 + 0.02 (root) + 0.002 + 0.015 + 0.005 (depth 1) + 0.004 + 0.006 + 0.012 (depth 2)
      total_cost_usd: 0.075,
      total_turns: 12,
      total_duration_ms: 5 * 10_000 + 2 * 5_000,
      depths: 3,
      jobs: 3,
    });
    expect(res.planning).toEqual({ status: 'succeeded', attempts: 2, cost_usd: 0.005 });
    expect(res.jobs.map((j) => [j.job_id, j.depth, j.path, j.parent_worker_id])).toEqual([
      [ROOT, 0, '', undefined],
      ['job-c', 1, '2', 'worker_2'],
      ['job-g', 2, '2_1', 'worker_2_1'],
    ]);
    expect(res.jobs[2]?.summary).toMatchObject({ total: 2, succeeded: 1, failed: 1, total_cost_usd: 0.022 });
    expect(res.jobs[1]?.planning).toEqual({ status: 'succeeded', attempts: 1, cost_usd: 0.003 });
    expect(res).toMatchObject({ job_id: ROOT, status: 'completed', depth: 0 });
  });

  it('keeps the result of a one-job tree to that job', () => {
    // Prepare
    const { child, tree } = fixture();
    const childTasks = tree[2]?.tasks ?? [];

    // Act
    const res = buildTreeResult([{ job: child, tasks: childTasks }], ctx);

    // Assess
    expect(res.results.tasks.map((t) => t.worker_id)).toEqual(['worker_2_1', 'worker_2_2', 'worker_2_3']);
    expect(res.results.tasks[0]).toMatchObject({ parent_worker_id: 'worker_2', child_job_id: 'job-g' });
    expect(res.results.summary).toMatchObject({ total: 3, depths: 1, jobs: 1 });
    expect(res.final_report).toBe('s3://artifacts/jobs/job-root/FINAL_RESULT.md');
  });

  it('shows a spawn-and-wait child under its parent, which stays a normal task', () => {
    // Prepare
    const { root, tree } = fixture();

    // Act
    const res = buildTreeResult(withWaitChild(tree, root), ctx);

    // Assess
    expect(res.results.tasks.map((t) => t.worker_id)).toEqual([...DEPTH_FIRST, 'worker_3_1']);
    const w3 = res.results.tasks.find((t) => t.worker_id === 'worker_3');
    expect(w3).toMatchObject({ status: 'succeeded', recursive: false, child_job_id: 'job-w' });
    expect(w3).not.toHaveProperty('child_results');
    expect(res.results.tasks.at(-1)).toMatchObject({
      job_id: 'job-w',
      parent_worker_id: 'worker_3',
      files_prefix: 'jobs/job-root/depth_1/worker_3_1/',
    });
    expect(res.results.summary).toMatchObject({ total: 9, depths: 3, jobs: 4 });
    expect(res.jobs.find((j) => j.job_id === 'job-w')?.child_mode).toBe('wait');
  });

  it('explains a parent task that failed because its child job failed', () => {
    // Prepare
    const root = makeJob(ROOT, { status: 'failed' });
    const child = childJob('job-c', root, 1, { status: 'failed', totalTasks: 1, finishedTasks: [1] });
    const parentTask = task(root, 1, {
      state: 'failed',
      childJobId: 'job-c',
      childResults: { status: 'failed', total: 1, succeeded: 0, failed: 1, costUsd: 0.001 },
      attempts: [attempt(1, { state: 'waiting_on_child', costUsd: 0.001 })],
    });
    const childTask = task(child, 1, {
      state: 'failed',
      attempts: [attempt(1, { state: 'failed', error: 'boom', costUsd: 0.001 })],
    });

    // Act
    const res = buildTreeResult(
      [
        { job: root, tasks: [parentTask] },
        { job: child, tasks: [childTask] },
      ],
      ctx,
    );

    // Assess
    expect(res.results.tasks[0]).toMatchObject({
      worker_id: 'worker_1',
      recursive: true,
      error: 'child job job-c ended failed: 0 of 1 workers succeeded',
    });
    expect(res.results.tasks[1]).toMatchObject({ worker_id: 'worker_1_1', error: 'boom' });
    expect(res.results.summary).toMatchObject({ total: 2, failed: 2 });
  });

  it('still lists a job whose parent is missing from the tree, after the reachable ones', () => {
    // Prepare
    const { child, tree } = fixture();
    const orphan = childJob('job-o', child, 3);
    const partial = [tree[0] as TreeNode, { job: orphan, tasks: [succeeded(orphan, 1, 0.001)] }];

    // Act
    const res = buildTreeResult(partial, ctx);

    // Assess
    expect(res.results.tasks.map((t) => t.worker_id)).toEqual([
      'worker_1',
      'worker_2',
      'worker_3',
      'worker_2_3_1',
    ]);
    expect(res.results.tasks[3]?.parent_worker_id).toBe('worker_2_3');
  });
});

describe('renderTreeReports', () => {
  it('writes one level report per depth, each with only its own workers', () => {
    // Prepare
    const { tree } = fixture();

    // Act
    const { levels } = renderTreeReports(tree, ctx);

    // Assess
    expect(levels.map((l) => [l.depth, l.key])).toEqual([
      [0, 'jobs/job-root/depth_0/LEVEL_0_REPORT.md'],
      [1, 'jobs/job-root/depth_1/LEVEL_1_REPORT.md'],
      [2, 'jobs/job-root/depth_2/LEVEL_2_REPORT.md'],
    ]);
    const [l0, l1, l2] = levels.map((l) => l.markdown);
    expect(tableWorkers(l0 ?? '')).toEqual(['worker_1', 'worker_2', 'worker_3']);
    expect(tableWorkers(l1 ?? '')).toEqual(['worker_2_1', 'worker_2_2', 'worker_2_3']);
    expect(tableWorkers(l2 ?? '')).toEqual(['worker_2_1_1', 'worker_2_1_2']);
    expect(l1).not.toContain('## worker_1:');
    expect(l2).not.toContain('## worker_2_1:');
  });

  it('names the child job of a recursive worker instead of its output, and who created each child job', () => {
    // Prepare
    const { tree } = fixture();

    // Act
    const { levels } = renderTreeReports(tree, ctx);

    // Assess
    const l0 = levels[0]?.markdown ?? '';
    const w2 = section(l0, '## worker_2: Part 2');
    expect(w2).toContain(
      '**Child job:** `job-c` (completed): 3 workers, 3 succeeded, 0 failed, $0.0440 (see [Level 1 report](../depth_1/LEVEL_1_REPORT.md))',
    );
    expect(w2).not.toContain('**Output**');
    expect(section(l0, '## worker_1: Part 1')).toContain('```text\noutput of 1\n```');

    const l1 = levels[1]?.markdown ?? '';
    expect(l1.split('\n')[0]).toBe('# Level 1 report: job `job-c`');
    expect(l1).toContain('Created by **worker_2** of job `job-root` in handoff mode (root `job-root`).');
    expect(l1).toContain('> Request of job-c');
    const w21 = section(l1, '## worker_2_1: Part 2_1');
    expect(w21).toContain('Job `job-c`, created by **worker_2**.');
    expect(w21).toContain('**Child job:** `job-g` (partial): 2 workers, 1 succeeded, 1 failed, $0.0220');
    expect(w21).toContain('(folder `worker_2_1/`)');

    const l2 = levels[2]?.markdown ?? '';
    const w211 = section(l2, '## worker_2_1_1: Part 2_1_1');
    expect(w211).toContain('Job `job-g`, created by **worker_2_1**.');
    expect(w211).toContain('**Failure reason**\n\n> rate limited');
    expect(w211).toContain('`../logs/depth_2_worker_2_1_1.log`');
    expect(section(l2, '## worker_2_1_2: Part 2_1_2')).toContain(
      '**Files created** (under `worker_2_1_2/`)\n\n- [tests/e2e.spec.ts](worker_2_1_2/tests/e2e.spec.ts)',
    );
  });

  it('shows the whole tree in the final report: totals, tree view, workers, files, failures and links', () => {
    // Prepare
    const { tree } = fixture();

    // Act
    const { finalReport: doc } = renderTreeReports(tree, ctx);

    // Assess
    expect(doc.split('\n')[0]).toBe('# Final result: job `job-root`');
    expect(doc).toContain('**Status:** completed · 7 of 8 workers succeeded in 3 jobs over 3 levels');
    const totals = section(doc, '## Totals');
    expect(totals).toContain('- Workers: 8 (7 succeeded, 1 failed, 0 timed out)');
    expect(totals).toContain('- Depths: 3');
    expect(totals).toContain('- Jobs: 3');
    expect(totals).toContain('- Total cost: $0.0800 (workers $0.0750, planning $0.0050)');
    const planning = section(doc, '## Planning');
    expect(planning).toContain('2 planners: $0.0050 over 2 attempts.');
    expect(planning).toContain('- Root job: succeeded after 1 attempt, $0.0020');
    expect(planning).toContain(
      '- Job `job-c` (depth 1, created by **worker_2** of job `job-root` in handoff mode): succeeded after 1 attempt, $0.0030',
    );
    expect(section(doc, '## Tree').trim()).toBe(
      [
        '- worker_1 (succeeded): Part 1',
        '- worker_2 (recursive_success) → child job `job-c` (completed): Part 2',
        '  - worker_2_1 (recursive_success) → child job `job-g` (partial): Part 2_1',
        '    - worker_2_1_1 (failed): Part 2_1_1',
        '    - worker_2_1_2 (succeeded): Part 2_1_2',
        '  - worker_2_2 (succeeded): Part 2_2',
        '  - worker_2_3 (succeeded): Part 2_3',
        '- worker_3 (succeeded): Part 3',
      ].join('\n'),
    );
    expect(tableWorkers(section(doc, '## Workers'))).toEqual(DEPTH_FIRST);
    expect(tableRow(doc, 'worker_2_1_2')).toEqual([
      'worker_2_1_2',
      'Part 2_1_2',
      '2',
      'succeeded',
      '1',
      '$0.0120',
      '1',
    ]);
    expect(tableRow(doc, 'worker_2_1_1').slice(2, 6)).toEqual(['2', 'failed', '2', '$0.0100']);
    const files = section(doc, '## Files');
    expect(files).toContain(
      '- **worker_1** at depth 0 (Part 1)\n  - [depth_0/worker_1/notes.md](depth_0/worker_1/notes.md)',
    );
    expect(files).toContain(
      '- **worker_2_2** at depth 1 (Part 2_2)\n  - [depth_1/worker_2_2/api/server.ts](depth_1/worker_2_2/api/server.ts)',
    );
    expect(files).toContain(
      '- **worker_2_1_2** at depth 2 (Part 2_1_2)\n  - [depth_2/worker_2_1_2/tests/e2e.spec.ts](depth_2/worker_2_1_2/tests/e2e.spec.ts)',
    );
    expect(files).not.toContain('worker_2_1_1');
    const failures = section(doc, '## Failures');
    expect(failures).toContain('- **worker_2_1_1** (Part 2_1_1): failed after 2 attempts: rate limited');
    expect(failures).toContain('  - depth 2, job `job-g` created by worker_2_1');
    expect(failures).toContain('  - attempt 1 (failed): container OOM-killed (exit 137)');
    expect(failures).not.toContain('worker_2_1_2');
    const reports = section(doc, '## Reports');
    expect(reports).toContain('- [Level 0 report](depth_0/LEVEL_0_REPORT.md)');
    expect(reports).toContain('- [Level 1 report](depth_1/LEVEL_1_REPORT.md)');
    expect(reports).toContain('- [Level 2 report](depth_2/LEVEL_2_REPORT.md)');
    expect(reports).toContain('- [result.json](result.json)');
  });

  it('renders result.json as the pretty tree result', () => {
    // Prepare
    const { tree } = fixture();

    // Act
    const { resultJson } = renderTreeReports(tree, ctx);

    // Assess
    expect(resultJson.endsWith('}\n')).toBe(true);
    expect(JSON.parse(resultJson)).toEqual(buildTreeResult(tree, ctx));
  });

  it('shows a wait-mode child under its parent in the tree and in the level reports', () => {
    // Prepare
    const { root, tree } = fixture();

    // Act
    const { levels, finalReport } = renderTreeReports(withWaitChild(tree, root), ctx);

    // Assess
    expect(section(finalReport, '## Tree')).toContain(
      [
        '- worker_3 (succeeded): Part 3',
        '  - child job `job-w` (completed, wait mode)',
        '    - worker_3_1 (succeeded): Part 3_1',
      ].join('\n'),
    );
    const l0 = levels[0]?.markdown ?? '';
    const w3 = section(l0, '## worker_3: Part 3');
    expect(w3).toContain(
      '**Child job:** `job-w` (wait mode, completed): 1 (1 succeeded, 0 failed, 0 timed out), $0.0070',
    );
    expect(w3).toContain('```text\noutput of 3\n```');
    const l1 = levels[1]?.markdown ?? '';
    expect(l1.split('\n')[0]).toBe('# Level 1 report: 2 jobs of root `job-root`');
    expect(l1).toContain('**Jobs:** 2 (2 completed)');
    expect(section(l1, '### Job `job-w`')).toContain(
      'Created by **worker_3** of job `job-root` in wait mode',
    );
    expect(tableWorkers(l1)).toEqual(['worker_2_1', 'worker_2_2', 'worker_2_3', 'worker_3_1']);
    expect(section(finalReport, '## Files')).toContain(
      '- **worker_3_1** at depth 1 (Part 3_1)\n  - [depth_1/worker_3_1/extra.md](depth_1/worker_3_1/extra.md)',
    );
  });

  it('shows a tree still running with the child job’s live counts', () => {
    // Prepare
    const root = makeJob(ROOT, { status: 'running', finishedAt: undefined });
    const child = childJob('job-c', root, 1, { status: 'running', finishedAt: undefined });
    const waiting = task(root, 1, {
      state: 'waiting_on_child',
      childJobId: 'job-c',
      attempts: [attempt(1, { state: 'waiting_on_child', costUsd: 0.001 })],
    });

    // Act
    const { levels, finalReport } = renderTreeReports(
      [
        { job: root, tasks: [waiting] },
        { job: child, tasks: [succeeded(child, 1, 0.002), task(child, 2, { state: 'running' })] },
      ],
      ctx,
    );

    // Assess
    expect(finalReport).toContain('**Status:** running · 1 of 3 workers finished, 2 still running in 2 jobs');
    expect(section(finalReport, '## Totals')).toContain('(so far)');
    expect(section(finalReport, '## Tree')).toContain(
      '- worker_1 (waiting_on_child) → child job `job-c` (running): Part 1',
    );
    expect(section(levels[0]?.markdown ?? '', '## worker_1: Part 1')).toContain(
      '**Child job:** `job-c` (running): 2 (1 succeeded, 0 failed, 0 timed out, 1 running), $0.0020',
    );
  });

  it('lists a child job that failed at planning under Failures and in the tree', () => {
    // Prepare
    const root = makeJob(ROOT, { status: 'partial' });
    const child = childJob('job-c', root, 2, {
      status: 'failed',
      totalTasks: 0,
      finishedTasks: [],
      error: 'planning failed: invalid JSON',
    });
    const parent = task(root, 2, {
      state: 'failed',
      childJobId: 'job-c',
      childResults: { status: 'failed', total: 0, succeeded: 0, failed: 0, costUsd: 0 },
      attempts: [attempt(1, { state: 'waiting_on_child', costUsd: 0.001 })],
    });
    const childPlanner = task(child, 0, {
      state: 'failed',
      attempts: [attempt(1, { state: 'failed', error: 'invalid JSON', costUsd: 0.001 })],
    });

    // Act
    const { finalReport, levels } = renderTreeReports(
      [
        { job: root, tasks: [succeeded(root, 1, 0.01), parent] },
        { job: child, tasks: [childPlanner] },
      ],
      ctx,
    );

    // Assess
    expect(section(finalReport, '## Tree')).toContain(
      '- worker_2 (failed) → child job `job-c` (failed): Part 2\n  - _no workers (failed: planning failed: invalid JSON)_',
    );
    const failures = section(finalReport, '## Failures');
    expect(failures).toContain(
      '- **worker_2** (Part 2): failed after 1 attempt: child job job-c ended failed',
    );
    expect(failures).toContain(
      '- Job `job-c` (depth 1, created by **worker_2** of job `job-root` in handoff mode): failed: planning failed: invalid JSON',
    );
    expect(section(finalReport, '## Planning')).toContain(
      '- Root job: the caller gave the tasks; no planning step.',
    );
    expect(levels.map((l) => l.depth)).toEqual([0, 1]);
    expect(levels[1]?.markdown).toContain('_No workers ran at this level._');
  });

  it('renders the final report of a single job', () => {
    // Prepare
    const { root, tree } = fixture();

    // Act
    const doc = finalReportMarkdown(buildTreeResult([{ job: root, tasks: tree[0]?.tasks ?? [] }], ctx));

    // Assess
    expect(doc).toContain('- Jobs: 1');
    expect(section(doc, '## Tree')).toContain('- worker_2 (recursive_success) → child job `job-c`: Part 2');
    expect(section(doc, '## Planning')).toContain('Planner: succeeded after 1 attempt, $0.0020.');
  });
});
