/**
 * The repository steps after a job's workers, decided from records alone:
 * which commits are merged, which step is still owed, how the merge and push
 * outcome shapes the job's status, and what a hand-off child gives its parent.
 */
import { describe, expect, it } from 'vitest';
import { mergeBundleKey, STEP_TASK_NO, workerBundleKey } from '../../functions/core/layout.ts';
import {
  childCommit,
  commitsToMerge,
  owedStep,
  repositoryOutcome,
  sourceFailure,
} from '../../functions/core/merge-plan.ts';
import type {
  JobRecord,
  JobSource,
  MergeConflict,
  MergeGitResult,
  TaskRecord,
  TaskResultSummary,
} from '../../functions/core/model.ts';
import type { TaskState } from '../../functions/core/task-states.ts';
import { makeAttempt, makeJob, makeResult, makeTask } from '../support/records.ts';

const BASE = 'b'.repeat(40);
const HEAD = 'e'.repeat(40);
const C1 = '1'.repeat(40);
const C2 = '2'.repeat(40);
const C3 = '3'.repeat(40);
const BRANCH = 'fleet/job-a';

const bundleSource = (overrides: Partial<JobSource> = {}): JobSource => ({
  kind: 'bundle',
  ref: 'refs/heads/main',
  baseCommit: BASE,
  bundles: ['jobs/job-a/git/base.bundle'],
  ...overrides,
});

const gitSource = (overrides: Partial<JobSource> = {}): JobSource => ({
  kind: 'git',
  url: 'https://example.com/repo.git',
  baseCommit: BASE,
  bundles: ['jobs/job-a/git/base.bundle'],
  push: true,
  ...overrides,
});

/** Job `job-a` on a repository; `null`: a job without one. */
const repoJob = (source: JobSource | null = bundleSource(), overrides: Partial<JobRecord> = {}) =>
  makeJob({ ...(source ? { source } : {}), ...overrides });

/** A work task whose worker reported `commit` (none: it changed nothing). */
function worker(taskNo: number, commit: string | undefined, overrides: Partial<TaskRecord> = {}): TaskRecord {
  return makeTask(taskNo, {
    result: makeResult({
      git: {
        kind: 'work',
        ...(commit ? { commit } : {}),
        files: { added: [], modified: ['a.txt'], deleted: [] },
        insertions: 1,
        deletions: 1,
        excluded: [],
      },
    }),
    ...overrides,
  });
}

/** A step task (merge, push, source) of job-a in `state`. */
function step(
  kind: 'source' | 'merge' | 'push',
  state: TaskState,
  result?: Partial<TaskResultSummary>,
  overrides: Partial<TaskRecord> = {},
): TaskRecord {
  return makeTask(STEP_TASK_NO[kind], {
    kind,
    title: kind,
    prompt: '',
    state,
    ...(result ? { result: makeResult(result) } : {}),
    ...overrides,
  });
}

function merged(overrides: Partial<MergeGitResult> = {}): MergeGitResult {
  return {
    branch: BRANCH,
    baseCommit: BASE,
    headCommit: HEAD,
    merged: [],
    conflicts: [],
    insertions: 3,
    deletions: 1,
    filesChanged: 2,
    ...overrides,
  };
}

const mergeStep = (state: TaskState = 'succeeded', result: Partial<MergeGitResult> = {}) =>
  step('merge', state, state === 'succeeded' ? { git: { kind: 'merge', ...merged(result) } } : undefined);

const conflict = (overrides: Partial<MergeConflict> = {}): MergeConflict => ({
  workers: ['worker_1', 'worker_2'],
  files: ['a.txt'],
  hunks: ['<<<<<<< ours'],
  resolution: 'left_out',
  ...overrides,
});

describe('commitsToMerge', () => {
  it("takes succeeded workers' commits in worker order, each with its own bundle", () => {
    const tasks = [worker(3, C3), worker(1, C1), worker(2, C2)];
    expect(commitsToMerge(tasks)).toEqual([
      {
        taskNo: 1,
        workerId: 'worker_1',
        title: 'Task 1',
        prompt: 'Do part 1',
        commit: C1,
        bundles: [workerBundleKey('job-a', 0, 1)],
      },
      {
        taskNo: 2,
        workerId: 'worker_2',
        title: 'Task 2',
        prompt: 'Do part 2',
        commit: C2,
        bundles: [workerBundleKey('job-a', 0, 2)],
      },
      {
        taskNo: 3,
        workerId: 'worker_3',
        title: 'Task 3',
        prompt: 'Do part 3',
        commit: C3,
        bundles: [workerBundleKey('job-a', 0, 3)],
      },
    ]);
    expect(workerBundleKey('job-a', 0, 1)).toBe('jobs/job-a/git/depth_0/worker_1.bundle');
  });

  it('does not reorder the caller’s array', () => {
    const tasks = [worker(2, C2), worker(1, C1)];
    commitsToMerge(tasks);
    expect(tasks.map((t) => t.taskNo)).toEqual([2, 1]);
  });

  it('names workers of a child job by lineage and finds their bundles under the root', () => {
    const child = { jobId: 'child', rootJobId: 'root', depth: 1, jobPath: '2' };
    const [c] = commitsToMerge([worker(1, C1, child)]);
    expect(c?.workerId).toBe('worker_2_1');
    expect(c?.bundles).toEqual(['jobs/root/git/depth_1/worker_2_1.bundle']);
  });

  it("takes a hand-off worker's commit and bundles from its child job's result", () => {
    const childGit = { commit: C2, bundles: ['jobs/job-a/git/depth_0/worker_2_snapshot.bundle', 'x.bundle'] };
    const handedOff = makeTask(2, {
      state: 'recursive_success',
      childJobId: 'child',
      childResults: { status: 'completed', total: 2, succeeded: 2, failed: 0, costUsd: 0.1, git: childGit },
    });
    expect(commitsToMerge([handedOff, worker(1, C1)])).toEqual([
      expect.objectContaining({ taskNo: 1, commit: C1 }),
      expect.objectContaining({ taskNo: 2, workerId: 'worker_2', commit: C2, bundles: childGit.bundles }),
    ]);
  });

  it.each<[string, TaskRecord]>([
    ['a failed worker with a commit', worker(1, C1, { state: 'failed' })],
    ['a timed-out worker with a commit', worker(1, C1, { state: 'timed_out' })],
    ['a cancelled worker with a commit', worker(1, C1, { state: 'cancelled' })],
    ['a running worker', worker(1, C1, { state: 'running' })],
    ['a succeeded worker that changed nothing', worker(1, undefined)],
    ['a succeeded worker without a git result', makeTask(1, { result: makeResult() })],
    ['a succeeded worker without a result', makeTask(1)],
    [
      'a hand-off whose child changed nothing',
      makeTask(1, {
        state: 'recursive_success',
        childResults: { status: 'completed', total: 1, succeeded: 1, failed: 0, costUsd: 0 },
      }),
    ],
    [
      'a worker still waiting on its child',
      makeTask(1, {
        state: 'waiting_on_child',
        childResults: {
          status: 'running',
          total: 1,
          succeeded: 0,
          failed: 0,
          costUsd: 0,
          git: { commit: C1, bundles: [] },
        },
      }),
    ],
    ['the planner', makeTask(0, { result: makeResult() })],
    ['the merge step', mergeStep()],
  ])('skips %s', (_what, task) => {
    expect(commitsToMerge([task])).toEqual([]);
    expect(commitsToMerge([task, worker(5, C3)]).map((c) => c.taskNo)).toEqual([5]);
  });

  it('is empty for no tasks', () => {
    expect(commitsToMerge([])).toEqual([]);
  });
});

describe('owedStep', () => {
  const workers = [worker(1, C1), worker(2, C2)];

  it('owes nothing for a job without a repository', () => {
    expect(owedStep(repoJob(null), workers)).toBeUndefined();
  });

  it('owes nothing while a git URL has not been fetched (no base commit)', () => {
    expect(owedStep(repoJob(gitSource({ baseCommit: undefined })), workers)).toBeUndefined();
  });

  it('owes nothing when no worker has a commit', () => {
    expect(owedStep(repoJob(), [worker(1, undefined), worker(2, C2, { state: 'failed' })])).toBeUndefined();
    expect(owedStep(repoJob(), [])).toBeUndefined();
  });

  it('owes the merge when its step does not exist yet', () => {
    expect(owedStep(repoJob(), workers)).toEqual({ kind: 'merge', task: undefined });
  });

  it.each<TaskState>(['pending', 'queued', 'launching', 'running'])(
    'owes the merge while its step is %s, handing the step back',
    (state) => {
      const merge = mergeStep(state);
      expect(owedStep(repoJob(), [...workers, merge])).toEqual({ kind: 'merge', task: merge });
    },
  );

  it('owes nothing once a bundle job merged (nothing to push to)', () => {
    expect(owedStep(repoJob(), [...workers, mergeStep()])).toBeUndefined();
  });

  it('owes the push once the merge is done, when pushing is wanted and the push step is missing', () => {
    expect(owedStep(repoJob(gitSource()), [...workers, mergeStep()])).toEqual({
      kind: 'push',
      task: undefined,
    });
  });

  it('owes the push while its step is not final', () => {
    const push = step('push', 'running');
    expect(owedStep(repoJob(gitSource()), [...workers, mergeStep(), push])).toEqual({
      kind: 'push',
      task: push,
    });
  });

  it.each<TaskState>(['succeeded', 'failed', 'timed_out', 'cancelled'])(
    'owes nothing once the push is %s',
    (state) => {
      const push = step(
        'push',
        state,
        state === 'succeeded' ? { git: { kind: 'push', remoteRef: BRANCH } } : {},
      );
      expect(owedStep(repoJob(gitSource()), [...workers, mergeStep(), push])).toBeUndefined();
    },
  );

  it('owes no push when the deployment does not push, or the merge changed nothing', () => {
    expect(owedStep(repoJob(gitSource({ push: false })), [...workers, mergeStep()])).toBeUndefined();
    expect(owedStep(repoJob(gitSource()), [...workers, mergeStep('succeeded', { headCommit: BASE })])).toBe(
      undefined,
    );
  });

  it.each<TaskState>(['failed', 'timed_out', 'cancelled'])(
    'owes no push after a merge that is %s',
    (state) => {
      expect(owedStep(repoJob(gitSource()), [...workers, mergeStep(state)])).toBeUndefined();
    },
  );
});

describe('repositoryOutcome', () => {
  const workers = [worker(1, C1), worker(2, C2)];

  it('keeps completed when the merge succeeded without anything left out', () => {
    const tasks = [...workers, mergeStep('succeeded', { conflicts: [conflict({ resolution: 'resolved' })] })];
    expect(repositoryOutcome(repoJob(), tasks, 'completed')).toEqual({ status: 'completed' });
  });

  it('keeps completed for a git job whose push succeeded', () => {
    const push = step('push', 'succeeded', { git: { kind: 'push', remoteRef: BRANCH } });
    expect(repositoryOutcome(repoJob(gitSource()), [...workers, mergeStep(), push], 'completed')).toEqual({
      status: 'completed',
    });
  });

  it('keeps completed when no worker had a commit (no merge at all)', () => {
    expect(repositoryOutcome(repoJob(), [worker(1, undefined)], 'completed')).toEqual({
      status: 'completed',
    });
  });

  it('changes nothing for a job without a repository', () => {
    expect(repositoryOutcome(repoJob(null), [...workers, mergeStep('failed')], 'completed')).toEqual({
      status: 'completed',
    });
  });

  it('turns completed into partial when a change was left out, naming the worker, the others and the files', () => {
    const tasks = [
      ...workers,
      mergeStep('succeeded', {
        conflicts: [conflict({ files: ['a.txt', 'src/b.ts'], reason: 'markers remained' })],
      }),
    ];
    expect(repositoryOutcome(repoJob(), tasks, 'completed')).toEqual({
      status: 'partial',
      error:
        "worker_2's change was left out of fleet/job-a: conflict with worker_1 in a.txt, src/b.ts (markers remained)",
    });
  });

  it('a left-out conflict with only one worker named is a conflict with the branch', () => {
    const tasks = [...workers, mergeStep('succeeded', { conflicts: [conflict({ workers: ['worker_2'] })] })];
    expect(repositoryOutcome(repoJob(), tasks, 'completed').error).toBe(
      "worker_2's change was left out of fleet/job-a: conflict with the branch in a.txt",
    );
  });

  it('turns completed into partial when the merge failed, with its error', () => {
    const merge = step('merge', 'failed', { error: 'git merge crashed' });
    expect(repositoryOutcome(repoJob(), [...workers, merge], 'completed')).toEqual({
      status: 'partial',
      error: "merging the workers' commits failed: git merge crashed",
    });
  });

  it("falls back to the last attempt's error, then the step's state", () => {
    const fromAttempt = step('merge', 'timed_out', undefined, {
      attempts: [makeAttempt(1, { state: 'failed', error: 'first' }), makeAttempt(2, { error: 'second' })],
    });
    expect(repositoryOutcome(repoJob(), [...workers, fromAttempt], 'completed').error).toBe(
      "merging the workers' commits failed: second",
    );
    expect(repositoryOutcome(repoJob(), [...workers, step('merge', 'cancelled')], 'completed').error).toBe(
      "merging the workers' commits failed: cancelled",
    );
  });

  it('turns completed into partial when the push failed, naming the branch', () => {
    const push = step('push', 'failed', { error: 'rejected (non-fast-forward)' });
    expect(repositoryOutcome(repoJob(gitSource()), [...workers, mergeStep(), push], 'completed')).toEqual({
      status: 'partial',
      error: 'pushing fleet/job-a failed: rejected (non-fast-forward)',
    });
  });

  it('joins several problems with "; "', () => {
    const tasks = [
      ...workers,
      mergeStep('succeeded', { conflicts: [conflict()] }),
      step('push', 'failed', { error: 'denied' }),
    ];
    expect(repositoryOutcome(repoJob(gitSource()), tasks, 'completed').error).toBe(
      "worker_2's change was left out of fleet/job-a: conflict with worker_1 in a.txt; pushing fleet/job-a failed: denied",
    );
  });

  it('keeps partial as partial, with the reason', () => {
    expect(repositoryOutcome(repoJob(), [...workers, mergeStep('failed')], 'partial')).toEqual({
      status: 'partial',
      error: "merging the workers' commits failed: failed",
    });
    expect(repositoryOutcome(repoJob(), [...workers, mergeStep()], 'partial')).toEqual({ status: 'partial' });
  });

  it('keeps failed as failed, without a repository reason', () => {
    expect(repositoryOutcome(repoJob(), [...workers, mergeStep('failed')], 'failed')).toEqual({
      status: 'failed',
    });
  });
});

describe('sourceFailure', () => {
  it('is undefined for jobs that do not fetch a URL', () => {
    expect(sourceFailure(repoJob(null), [step('source', 'failed')])).toBeUndefined();
    expect(sourceFailure(repoJob(bundleSource()), [step('source', 'failed')])).toBeUndefined();
  });

  it.each<TaskState>(['pending', 'queued', 'running', 'succeeded'])(
    'is undefined while the source step is %s',
    (state) => {
      expect(sourceFailure(repoJob(gitSource({ baseCommit: undefined })), [step('source', state)])).toBe(
        undefined,
      );
    },
  );

  it('is undefined before the source step exists', () => {
    expect(sourceFailure(repoJob(gitSource({ baseCommit: undefined })), [worker(1, undefined)])).toBe(
      undefined,
    );
  });

  it('names why fetching failed: the result error, else the last attempt, else the state', () => {
    const job = repoJob(gitSource({ baseCommit: undefined }));
    expect(sourceFailure(job, [step('source', 'failed', { error: 'repository not found' })])).toBe(
      'fetching the repository failed: repository not found',
    );
    expect(
      sourceFailure(job, [
        step('source', 'timed_out', undefined, { attempts: [makeAttempt(1, { error: 'slow' })] }),
      ]),
    ).toBe('fetching the repository failed: slow');
    expect(sourceFailure(job, [step('source', 'cancelled')])).toBe(
      'fetching the repository failed: cancelled',
    );
  });
});

describe('childCommit', () => {
  const SNAPSHOT = 'jobs/root/git/depth_0/worker_2_snapshot.bundle';
  const child = (source: Partial<JobSource> = {}) =>
    makeJob({
      jobId: 'child',
      rootJobId: 'root',
      path: '2',
      depth: 1,
      parentJobId: 'root',
      parentTaskNo: 2,
      source: { kind: 'parent', baseCommit: BASE, bundles: ['jobs/root/git/base.bundle'], ...source },
    });
  const mergedChild = (headCommit = HEAD) => [
    worker(1, C1, { jobId: 'child' }),
    mergeStep('succeeded', { headCommit }),
  ];

  it("gives the child's merged head, on top of the parent's own snapshot", () => {
    expect(childCommit(child({ ownBundle: SNAPSHOT }), mergedChild(), 'completed')).toEqual({
      commit: HEAD,
      bundles: [SNAPSHOT, mergeBundleKey('root', '2')],
    });
    expect(mergeBundleKey('root', '2')).toBe('jobs/root/git/job_2/result.bundle');
  });

  it("gives the child's merged head alone when the parent had no changes of its own", () => {
    expect(childCommit(child(), mergedChild(), 'partial')).toEqual({
      commit: HEAD,
      bundles: ['jobs/root/git/job_2/result.bundle'],
    });
  });

  it("gives the parent's snapshot when the child changed nothing", () => {
    expect(childCommit(child({ ownBundle: SNAPSHOT }), mergedChild(BASE), 'completed')).toEqual({
      commit: BASE,
      bundles: [SNAPSHOT],
    });
    expect(childCommit(child({ ownBundle: SNAPSHOT }), [worker(1, undefined)], 'completed')).toEqual({
      commit: BASE,
      bundles: [SNAPSHOT],
    });
    // A failed merge step is the same as no merge: the snapshot is what there is.
    expect(childCommit(child({ ownBundle: SNAPSHOT }), [mergeStep('failed')], 'partial')).toEqual({
      commit: BASE,
      bundles: [SNAPSHOT],
    });
  });

  it('gives nothing when neither the parent nor the child changed anything', () => {
    expect(childCommit(child(), mergedChild(BASE), 'completed')).toBeUndefined();
    expect(childCommit(child(), [], 'completed')).toBeUndefined();
  });

  it.each(['failed', 'cancelled'] as const)('gives nothing for a %s child', (status) => {
    expect(childCommit(child({ ownBundle: SNAPSHOT }), mergedChild(), status)).toBeUndefined();
  });

  it('gives nothing for a child without a repository or a base', () => {
    expect(childCommit(makeJob({ jobId: 'child', path: '2' }), mergedChild(), 'completed')).toBeUndefined();
    expect(
      childCommit(child({ baseCommit: undefined, ownBundle: SNAPSHOT }), mergedChild(), 'completed'),
    ).toBe(undefined);
  });
});
