import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { finalReportKey } from '../../functions/core/layout.ts';
import type { JobRecord, TaskRecord } from '../../functions/core/model.ts';
import { isTerminalTaskState } from '../../functions/core/task-states.ts';
import { type DoubleInvocation, startTestStack, type TestStack } from '../support/harness.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` until it returns a value, or fails with `what` at the deadline. */
async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined) return value;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Ends a run of the test double by its pid (one this test's workers started). */
function killRun(run: DoubleInvocation): void {
  try {
    process.kill(run.pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

describe('cancel, end to end', () => {
  let stack: TestStack;
  beforeAll(async () => {
    // Each attempt reserves $1 of the tree's spend, so six live attempts fit in the tree's budget.
    // No sandbox: runs are told apart, and leftovers ended, by the double's pid, which inside a
    // sandbox is its pid in the worker's own namespace (test/integration/sandbox.test.ts cancels there).
    stack = await startTestStack(
      'orchestrator: {sandbox: none}\nrecursion: {enable: true, max_depth: 2}\nworkers: {max_workers: 8}\nlimits: {max_task_budget_usd: 1}',
    );
  });
  afterAll(async () => {
    // A worker the cancel failed to stop would outlive the stack: end the double's runs it left behind.
    for (const run of await unfinishedRuns()) killRun(run);
    await stack?.stop();
  });

  /** Double runs that logged a start and no end. */
  async function unfinishedRuns(): Promise<DoubleInvocation[]> {
    if (!stack) return [];
    const runs = await stack.invocations();
    const ended = new Set(runs.filter((r) => r.end !== null).map((r) => r.pid));
    return runs.filter((r) => r.end === null && !ended.has(r.pid));
  }

  async function tree(rootId: string): Promise<{ jobs: JobRecord[]; tasks: TaskRecord[] }> {
    const root = (await stack.deps.jobs.getJob(rootId)) as JobRecord;
    const jobs = [root, ...(await stack.deps.jobs.listDescendants(rootId))];
    const tasks = (await Promise.all(jobs.map((j) => stack.deps.tasks.listTasks(j.jobId)))).flat();
    return { jobs, tasks };
  }

  async function submit(body: unknown): Promise<string> {
    const res = await stack.api('POST', '/api/v1/orchestrate', { body });
    expect(res.status).toBe(202);
    return res.json.job_id as string;
  }

  it('cancelling a depth-2 run stops every worker within 5 s and cancels the whole tree', async () => {
    // Task 1 hangs at depth 0. Task 2 splits into a child job at depth 1 whose task 1 splits again
    // into two hanging tasks at depth 2, and whose task 2 hangs at depth 1.
    const rootId = await submit({
      request: 'a tree to cancel',
      config: { enable_recursion: true, max_recursion_depth: 2, max_retries: 0 },
      tasks: [
        { prompt: 'a [[hang]]' },
        { prompt: 'b [[split:2]] [[split_child:1:split:2;split_all:hang]] [[split_child:2:hang]]' },
      ],
    });

    // Six launches and two decide runs before the tree hangs: allow for a busy machine.
    const before = await until(
      'hanging workers at depths 0, 1 and 2',
      async () => {
        const t = await tree(rootId);
        const running = new Set(t.tasks.filter((x) => x.state === 'running').map((x) => x.depth));
        const hanging = await unfinishedRuns();
        // The workers that handed off (depths 0 and 1) exit after uploading their log; wait for that too.
        const ready = running.has(0) && running.has(1) && running.has(2) && hanging.length >= 4;
        return ready && stack.launcher.active === 4 ? t : undefined;
      },
      60_000,
    );
    expect(before.jobs.map((j) => j.depth).sort()).toEqual([0, 1, 2]);
    expect(
      before.tasks
        .filter((t) => t.state === 'running')
        .map((t) => t.depth)
        .sort(),
    ).toEqual([0, 1, 2, 2]);
    expect(
      before.tasks
        .filter((t) => t.state === 'waiting_on_child')
        .map((t) => t.depth)
        .sort(),
    ).toEqual([0, 1]);
    expect(stack.launcher.active).toBe(4);

    const cancelledAt = Date.now();
    const res = await stack.api('POST', `/api/v1/jobs/${rootId}/cancel`);
    expect(res.status).toBe(202);
    expect(res.json).toMatchObject({ job_id: rootId, status: 'cancelled' });

    // Within 5 s: no worker process left, and every double run that hung has logged its end.
    const stopped = await until(
      'every worker to stop',
      async () => (stack.launcher.active === 0 && (await unfinishedRuns()).length === 0 ? true : undefined),
      5_000,
    ).catch(() => false);
    const left = await unfinishedRuns();
    expect
      .soft(
        {
          stopped,
          active: stack.launcher.active,
          unfinishedClaudeRuns: left.map((r) => r.prompt?.slice(0, 60)),
        },
        'every worker stopped within 5 s of the cancel',
      )
      .toEqual({ stopped: true, active: 0, unfinishedClaudeRuns: [] });
    // A worker stopped in its decide run must not go on to start its work run.
    const startedAfter = (await stack.invocations()).filter((r) => r.start > cancelledAt);
    expect
      .soft(
        startedAfter.map((r) => r.prompt?.slice(0, 60)),
        'claude runs started after the cancel',
      )
      .toEqual([]);
    // So that the rest can be checked even when some were not stopped: end them the hard way.
    for (const run of left) killRun(run);
    await until('the remaining workers to exit', async () =>
      stack.launcher.active === 0 ? true : undefined,
    );

    const after = await tree(rootId);
    expect(after.jobs).toHaveLength(3);
    for (const job of after.jobs)
      expect(job.status, `job ${job.jobId} at depth ${job.depth}`).toBe('cancelled');
    for (const task of after.tasks) {
      expect(isTerminalTaskState(task.state), `task ${task.jobId}/${task.taskNo} is ${task.state}`).toBe(
        true,
      );
    }
    // The tasks that were running or waiting when the cancel came are cancelled, not failed.
    expect(after.tasks.map((t) => t.state)).toEqual(after.tasks.map(() => 'cancelled'));

    const report = await until('the final report', () =>
      stack.deps.artifacts.getText(finalReportKey(rootId)),
    );
    expect(report).toMatch(/\*\*Status:\*\* cancelled/);
    expect(report).toMatch(/Workers: 6 \(0 succeeded, 0 failed, 0 timed out, 6 cancelled\)/);

    // The stopped workers still post their result; it is kept as late and changes nothing.
    const hadWorker = before.tasks.filter((t) => t.state === 'running').map((t) => `${t.jobId}/${t.taskNo}`);
    const late = await until('late results from the stopped workers', async () => {
      const t = await tree(rootId);
      return t.tasks.filter((x) => x.lateResult !== undefined).length >= hadWorker.length ? t : undefined;
    });
    expect(
      late.tasks
        .filter((t) => t.lateResult !== undefined)
        .map((t) => `${t.jobId}/${t.taskNo}`)
        .sort(),
    ).toEqual([...hadWorker].sort());
    for (const task of late.tasks) {
      expect(task.state).toBe('cancelled');
      expect(task.result, `task ${task.jobId}/${task.taskNo} has no result`).toBeUndefined();
    }
    for (const task of late.tasks.filter((t) => t.depth === 2)) {
      expect(task.lateResult?.error).toMatch(/interrupted \(SIGTERM\)/);
    }
    expect(
      stack.logs.filter((l) => l.message === 'late result after cancel recorded').map((l) => l.extra?.jobId),
    ).toHaveLength(hadWorker.length);
    const view = await stack.api('GET', `/api/v1/jobs/${rootId}/status`);
    expect(view.json.status).toBe('cancelled');
    expect((await stack.deps.jobs.getJob(rootId))?.status).toBe('cancelled');
  }, 150_000);

  it('cancelling a finished job is a 409; a second cancel answers 200 with the cancelled state and changes nothing', async () => {
    // Whatever an earlier failed test left running would hold the launcher busy here.
    for (const run of await unfinishedRuns()) killRun(run);
    await until('earlier workers to exit', async () => (stack.launcher.active === 0 ? true : undefined));
    const done = await submit({ request: 'quick', tasks: [{ prompt: 'quick one' }] });
    expect(await stack.waitForJob(done)).toBe('completed');
    const finished = await stack.api('POST', `/api/v1/jobs/${done}/cancel`);
    expect(finished.status).toBe(409);
    expect(finished.json.code).toBe('conflict');
    expect((await stack.deps.jobs.getJob(done))?.status).toBe('completed');

    // No decide run (recursion off): the hang is in the work run itself.
    const running = await submit({
      request: 'slow',
      config: { max_retries: 0, enable_recursion: false },
      tasks: [{ prompt: 'slow [[hang]]' }],
    });
    await until('the slow task to run', async () =>
      (await stack.deps.tasks.getTask(running, 1))?.state === 'running' ? true : undefined,
    );
    const first = await stack.api('POST', `/api/v1/jobs/${running}/cancel`);
    expect(first.status).toBe(202);
    const second = await stack.api('POST', `/api/v1/jobs/${running}/cancel`);
    expect(second.status).toBe(200);
    expect(second.json).toMatchObject({ job_id: running, status: 'cancelled' });
    await until(
      'the slow worker to stop',
      async () => (stack.launcher.active === 0 ? true : undefined),
      5_000,
    );
    expect((await stack.deps.jobs.getJob(running))?.status).toBe('cancelled');
    const task = await until('the late result of the stopped worker', async () => {
      const t = await stack.deps.tasks.getTask(running, 1);
      return t?.lateResult ? t : undefined;
    });
    expect(task.state).toBe('cancelled');
    expect(task.result).toBeUndefined();
    expect(task.lateResult?.error).toMatch(/interrupted \(SIGTERM\)/);
    const status = await stack.api('GET', `/api/v1/jobs/${running}/status`);
    expect(status.status).toBe(200);
    expect(status.json.status).toBe('cancelled');
  });
});
