/**
 * Job results for the REPORT.html tests and bench, built from store records
 * through `buildTreeResult` so they have exactly the shape result.json has.
 */
import { STEP_TASK_NO } from '../../functions/core/layout.ts';
import type { AttemptRecord, JobRecord, TaskRecord, TaskResultSummary } from '../../functions/core/model.ts';
import { buildTreeResult, type JobResult, type TreeNode } from '../../functions/core/result-format.ts';
import { makeJob, makeResult, makeTask } from '../support/records.ts';

export const ROOT = 'job-root';
export const CHILD = 'job-child';
export const XSS_OUTPUT =
  'Done. <script>alert(1)</script> and </script><img src=x onerror=alert(2)> <!-- end';

const T0 = Date.parse('2025-03-01T10:00:00.000Z');
/** ISO time `s` seconds after the root job was created. */
export const at = (s: number): string => new Date(T0 + s * 1000).toISOString();

/** Root job, repository source: worker_1 retried once, worker_2 handed off to a child job of two, worker_3's output is hostile and its commit conflicted with worker_1's. */
export function fixtureResult(): JobResult {
  const root = makeJob({
    jobId: ROOT,
    rootJobId: ROOT,
    request: 'Build a small website <b>now</b>',
    createdAt: at(0),
    finishedAt: at(200),
    updatedAt: at(200),
    hasChildren: true,
    source: { kind: 'bundle', baseCommit: 'b'.repeat(40), bundles: [] },
  });
  const child = makeJob({
    jobId: CHILD,
    rootJobId: ROOT,
    depth: 1,
    path: '2',
    parentJobId: ROOT,
    parentTaskNo: 2,
    parentAttempt: 1,
    childMode: 'handoff',
    request: 'Write the two blog posts',
    totalTasks: 2,
    finishedTasks: [1, 2],
    createdAt: at(40),
    finishedAt: at(150),
    updatedAt: at(150),
  });
  const rootTasks: TaskRecord[] = [
    work(ROOT, 1, '', 0, {
      title: 'Landing page',
      attempt: 2,
      startedAt: at(50),
      finishedAt: at(100),
      attempts: [
        attempt(1, 'failed', 10, 30, { error: 'exited with code 1', exitCode: 1 }),
        attempt(2, 'succeeded', 50, 100),
      ],
      result: makeResult({
        output: 'Wrote the landing page.',
        filesCreated: ['index.html', 'css/site.css'],
        git: gitWork('1'.repeat(40), ['index.html'], ['README.md']),
      }),
    }),
    work(ROOT, 2, '', 0, {
      title: 'Blog',
      state: 'recursive_success',
      startedAt: at(20),
      finishedAt: at(150),
      childJobId: CHILD,
      childResults: { status: 'completed', total: 2, succeeded: 2, failed: 0, costUsd: 0.04 },
      attempts: [attempt(1, 'waiting_on_child', 20, 40)],
      result: makeResult({ output: 'Handed the blog to a child job.' }),
    }),
    work(ROOT, 3, '', 0, {
      title: 'Footer <script>alert("title")</script>',
      startedAt: at(15),
      finishedAt: at(70),
      attempts: [attempt(1, 'succeeded', 15, 70)],
      result: makeResult({
        output: XSS_OUTPUT,
        filesCreated: ['footer.html'],
        git: gitWork('3'.repeat(40), [], ['index.html']),
      }),
    }),
    mergeStep(),
  ];
  const childTasks = [1, 2].map((n) =>
    work(CHILD, n, '2', 1, {
      title: `Post ${n}`,
      startedAt: at(45 + n * 5),
      finishedAt: at(100 + n * 20),
      attempts: [attempt(1, 'succeeded', 45 + n * 5, 100 + n * 20)],
      result: makeResult({ output: `Post ${n} written.`, filesCreated: [`post-${n}.md`] }),
    }),
  );
  return buildTreeResult(
    [
      { job: root, tasks: rootTasks },
      { job: child, tasks: childTasks },
    ],
    { bucket: 'artifacts', now: at(200), workspace: `s3://artifacts/jobs/${ROOT}/` },
  );
}

function work(jobId: string, taskNo: number, jobPath: string, depth: number, o: Partial<TaskRecord>) {
  return makeTask(taskNo, { jobId, rootJobId: ROOT, jobPath, depth, createdAt: at(0), ...o });
}

function attempt(
  n: number,
  state: AttemptRecord['state'],
  start: number,
  end: number,
  o: Partial<AttemptRecord> = {},
): AttemptRecord {
  return { attempt: n, state, finishedAt: at(end), durationMs: (end - start) * 1000, costUsd: 0.02, ...o };
}

function gitWork(commit: string, added: string[], modified: string[]): TaskResultSummary['git'] {
  return {
    kind: 'work',
    commit,
    files: { added, modified, deleted: [] },
    insertions: 12,
    deletions: 3,
    excluded: [],
  };
}

function mergeStep(): TaskRecord {
  return makeTask(STEP_TASK_NO.merge, {
    jobId: ROOT,
    rootJobId: ROOT,
    kind: 'merge',
    title: 'merge',
    prompt: '',
    result: makeResult({
      output: '',
      git: {
        kind: 'merge',
        branch: `fleet/${ROOT}`,
        baseCommit: 'b'.repeat(40),
        headCommit: 'h'.repeat(40),
        merged: [
          mergedWorker('worker_1', 1, '1'.repeat(40), 'merged'),
          mergedWorker('worker_3', 3, '3'.repeat(40), 'left_out'),
        ],
        conflicts: [
          {
            workers: ['worker_1', 'worker_3'],
            files: ['index.html'],
            hunks: ['<<<<<<< worker_1\n<footer>a</footer>\n=======\n<footer>b</footer>\n>>>>>>> worker_3'],
            resolution: 'left_out',
            reason: 'the conflict session left markers in index.html',
          },
        ],
        insertions: 12,
        deletions: 3,
        filesChanged: 2,
      },
    }),
  });
}

function mergedWorker(workerId: string, taskNo: number, commit: string, outcome: 'merged' | 'left_out') {
  return { workerId, taskNo, commit, outcome, insertions: 12, deletions: 3, filesChanged: 1 };
}

/**
 * The shape of `npm run test:load`'s tree (10 x 10 x 10 = 1,110 tasks): every
 * root and depth-1 task hands off to a child job of `fanout` tasks. Leaves
 * write `outputChars` of output (cut by the page) and three files; every
 * tenth leaf needed a second attempt.
 */
export function syntheticTreeResult(fanout = 10, outputChars = 3_000): JobResult {
  const root = makeJob({
    jobId: 'job-big',
    rootJobId: 'job-big',
    request: 'A 10x10x10 tree',
    totalTasks: fanout,
    createdAt: at(0),
    finishedAt: at(600),
    updatedAt: at(600),
    hasChildren: true,
  });
  const nodes: TreeNode[] = [];
  const visit = (job: JobRecord, remaining: number) => {
    const tasks: TaskRecord[] = [];
    nodes.push({ job, tasks });
    for (let n = 1; n <= fanout; n += 1) {
      const start = job.depth * 40 + n * 3;
      if (remaining === 0) {
        tasks.push(leaf(job, n, start, outputChars));
        continue;
      }
      const childId = `${job.jobId}-${n}`;
      tasks.push(handoff(job, n, start, childId));
      const path = job.path ? `${job.path}_${n}` : String(n);
      visit(
        makeJob({
          jobId: childId,
          rootJobId: 'job-big',
          depth: job.depth + 1,
          path,
          parentJobId: job.jobId,
          parentTaskNo: n,
          childMode: 'handoff',
          request: `Part ${path}`,
          totalTasks: fanout,
          createdAt: at(start + 5),
          finishedAt: at(590 - job.depth * 20),
        }),
        remaining - 1,
      );
    }
  };
  visit(root, 2);
  return buildTreeResult(nodes, { bucket: 'artifacts', now: at(600) });
}

function leaf(job: JobRecord, n: number, start: number, outputChars: number): TaskRecord {
  const retried = n % 10 === 0;
  const end = start + 60 + n * 7;
  return makeTask(n, {
    jobId: job.jobId,
    rootJobId: job.rootJobId,
    jobPath: job.path,
    depth: job.depth,
    title: `Leaf ${job.path}_${n}`,
    prompt: `Write part ${job.path}_${n} of the guide. `.repeat(20),
    attempt: retried ? 2 : 1,
    startedAt: at(retried ? start + 30 : start),
    finishedAt: at(end),
    attempts: retried
      ? [
          attempt(1, 'failed', start, start + 20, { error: 'exited with code 1' }),
          attempt(2, 'succeeded', start + 30, end),
        ]
      : [attempt(1, 'succeeded', start, end)],
    result: makeResult({
      output:
        `Section ${job.path}_${n}: ${'lorem ipsum dolor sit amet '.repeat(Math.ceil(outputChars / 27))}`.slice(
          0,
          outputChars,
        ),
      filesCreated: ['part.md', 'notes/outline.md', 'notes/sources.md'],
    }),
  });
}

function handoff(job: JobRecord, n: number, start: number, childId: string): TaskRecord {
  return makeTask(n, {
    jobId: job.jobId,
    rootJobId: job.rootJobId,
    jobPath: job.path,
    depth: job.depth,
    title: `Split ${job.path}_${n}`,
    state: 'recursive_success',
    startedAt: at(start),
    finishedAt: at(590 - job.depth * 20),
    childJobId: childId,
    attempts: [attempt(1, 'waiting_on_child', start, start + 5)],
    result: makeResult({ output: 'Handed off.' }),
  });
}

/** The result as result.json files written before issue 10 have it: no `performance`. */
export function withoutPerformance(result: JobResult): JobResult {
  const copy: Record<string, unknown> = { ...result };
  delete copy.performance;
  return copy as unknown as JobResult;
}

/** Analytics in the shape of functions/core/performance.ts's PerformanceView, for the fixture's tree. */
export function samplePerformance(): Record<string, unknown> {
  const entry = (attempt: number, o: Record<string, unknown>) => ({
    worker_id: 'worker_1',
    job_id: ROOT,
    task_no: 1,
    kind: 'work',
    depth: 0,
    attempt,
    reported: true,
    ...o,
  });
  return {
    origin: at(0),
    wall_time_ms: 200_000,
    timeline: [
      {
        ...entry(1, {}),
        worker_id: 'planner',
        task_no: 0,
        kind: 'plan',
        status: 'succeeded',
        log_key: `jobs/${ROOT}/logs/depth_0_planner.log`,
        queued_ms: 0,
        finished_ms: 5_000,
        on_critical_path: true,
      },
      entry(1, {
        status: 'failed',
        queued_at: at(0),
        queued_ms: 0,
        launched_ms: 5_000,
        running_ms: 10_000,
        finished_ms: 30_000,
        log_key: `jobs/${ROOT}/logs/depth_0_worker_1.log`,
        on_critical_path: false,
      }),
      entry(2, {
        status: 'succeeded',
        queued_ms: 30_000,
        launched_ms: 45_000,
        running_ms: 50_000,
        finished_ms: 100_000,
        budget_wait_ms: 10_000,
        log_key: `jobs/${ROOT}/logs/depth_0_worker_1.attempt-2.log`,
        on_critical_path: true,
      }),
    ],
    efficiency: {
      busy_ms: 300_000,
      wall_time_ms: 200_000,
      max_workers: 5,
      parallel_efficiency: 0.3,
      peak_concurrency: 3,
    },
    critical_path: {
      total_ms: 200_000,
      running_ms: 120_000,
      queueing_ms: 30_000,
      budget_wait_ms: 10_000,
      launch_ms: 10_000,
      retries_ms: 20_000,
      other_ms: 10_000,
      steps: [
        {
          worker_id: 'worker_1',
          job_id: ROOT,
          depth: 0,
          kind: 'work',
          attempt: 2,
          status: 'succeeded',
          start_ms: 30_000,
          end_ms: 100_000,
          queue_ms: 5_000,
          budget_wait_ms: 10_000,
          launch_ms: 5_000,
          run_ms: 50_000,
          retry: false,
        },
      ],
    },
    bottleneck: {
      worker_id: 'worker_1',
      job_id: ROOT,
      attempt: 2,
      run_ms: 50_000,
      share: 0.25,
      cause: 'running',
      lost: { queueing_ms: 30_000, launch_ms: 10_000, retries_ms: 20_000, budget_wait_ms: 10_000 },
    },
    resources: [
      {
        worker_id: 'worker_1',
        job_id: ROOT,
        kind: 'work',
        depth: 0,
        attempts: 2,
        input_tokens: 1_200,
        output_tokens: 300,
        cost_usd: 0.04,
        turns: 8,
        duration_ms: 60_000,
        peak_memory_mb: 180,
      },
      {
        worker_id: 'worker_3',
        job_id: ROOT,
        kind: 'work',
        depth: 0,
        attempts: 1,
        cost_usd: 0.02,
        turns: 4,
        duration_ms: 55_000,
      },
    ],
    cost_by_depth: [
      { depth: 0, jobs: 1, tasks: 4, attempts: 5, cost_usd: 0.09 },
      { depth: 1, jobs: 1, tasks: 2, attempts: 2, cost_usd: 0.04 },
    ],
  };
}
