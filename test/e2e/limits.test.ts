/**
 * Limits the server enforces on a job tree (issue 4, third acceptance bullet
 * and the last): depth, tasks per root, spend per root. Each refusal is a 4xx
 * that names the limit, and the job still ends `completed` or `partial`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { finalReportKey, workerLogKey } from '../../functions/core/layout.ts';
import type { JobRecord, RootBudget } from '../../functions/core/model.ts';
import { isTerminalJobStatus } from '../../functions/core/task-states.ts';
import { startTestStack, type TestStack } from '../support/harness.ts';

interface TaskView {
  worker_id: string;
  task_no: number;
  status: string;
  recursive: boolean;
  attempts: number;
  output: string;
  error?: string;
  files_created: string[];
  files_prefix: string;
  attempt_history: { attempt: number; status: string; error?: string }[];
}

interface SpawnRun {
  exit_code: number | null;
  stdout: string;
}

async function submit(stack: TestStack, body: unknown): Promise<string> {
  const res = await stack.api('POST', '/api/v1/orchestrate', { body });
  expect(res.status).toBe(202);
  return res.json.job_id as string;
}

async function tasksOf(stack: TestStack, jobId: string): Promise<TaskView[]> {
  const res = await stack.api('GET', `/api/v1/jobs/${jobId}`);
  expect(res.status).toBe(200);
  return res.json.results.tasks as TaskView[];
}

/** Waits for the root job while recording its budget after every poll. */
async function watchBudget(stack: TestStack, jobId: string, timeoutMs = 45_000): Promise<RootBudget[]> {
  const seen: RootBudget[] = [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = await stack.deps.jobs.getJob(jobId);
    if (job?.budget) seen.push({ ...job.budget });
    if (job && isTerminalJobStatus(job.status)) return seen;
    if (Date.now() > deadline) throw new Error(`job ${jobId} did not finish within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** spawn_result.json of a worker, and the 4xx answer the refused `orchestrator spawn` printed. */
async function spawnRefusal(
  stack: TestStack,
  task: TaskView,
): Promise<{ run: SpawnRun; status: number; body: Record<string, unknown> }> {
  expect(task.files_created).toContain('spawn_result.json');
  const run = JSON.parse(
    (await stack.deps.artifacts.getText(`${task.files_prefix}spawn_result.json`)) as string,
  ) as SpawnRun;
  const printed = JSON.parse(run.stdout) as { error: string; detail: string };
  expect(printed.error).toBe('the child job was refused');
  const m = /-> (\d{3}): (\{.*\})\s*$/s.exec(printed.detail);
  expect(m).not.toBeNull();
  return { run, status: Number(m?.[1]), body: JSON.parse(m?.[2] as string) };
}

describe('depth limit', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack('recursion: {enable: true, max_depth: 2}\nlimits: {max_task_budget_usd: 1}');
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('a depth-1 worker that spawns beyond max_recursion_depth 1 is refused with 403 max_depth; the job completes', async () => {
    const jobId = await submit(stack, {
      request: 'one level only',
      config: { enable_recursion: true, max_recursion_depth: 1 },
      // worker_1 splits (depth 1 is allowed); its first child then tries to start a job at depth 2.
      tasks: [{ prompt: 'go deep [[split:2]] [[split_child:1:spawn:deeper work]]' }],
    });
    expect(await stack.waitForJob(jobId)).toBe('completed');

    const tasks = await tasksOf(stack, jobId);
    expect(tasks.map((t) => [t.worker_id, t.status])).toEqual([
      ['worker_1', 'recursive_success'],
      ['worker_1_1', 'succeeded'],
      ['worker_1_2', 'succeeded'],
    ]);
    const asker = tasks[1] as TaskView;
    expect(asker.output).toContain('spawn exit 1');
    const { run, status, body } = await spawnRefusal(stack, asker);
    expect(run.exit_code).toBe(1);
    expect(status).toBe(403);
    expect(body).toMatchObject({ code: 'limit_exceeded', limit: 'max_depth', allowed: 1, requested: 2 });
    expect(String(body.error)).toMatch(/depth 2.*limit of 1/);

    // Nothing was created below depth 1, and the refusal was logged.
    const descendants = await stack.deps.jobs.listDescendants(jobId);
    expect(descendants.map((j) => j.depth)).toEqual([1]);
    expect(
      stack.logs.some(
        (l) =>
          l.message === 'child job refused by a limit' &&
          l.extra?.limit === 'max_depth' &&
          l.extra?.jobId === descendants[0]?.jobId,
      ),
    ).toBe(true);
    // Recursion was not even offered at depth 1: the only decide run was worker_1's.
    const decides = (await stack.invocations()).filter(
      (r) => /^ORCHESTRATOR-DECIDE$/m.test(r.prompt ?? '') && (r.prompt ?? '').includes('go deep'),
    );
    expect(decides).toHaveLength(1);
  });

  it('a caller asking for max_recursion_depth above the deployment cap gets 400 naming the field', async () => {
    const res = await stack.api('POST', '/api/v1/orchestrate', {
      body: { request: 'too deep', config: { enable_recursion: true, max_recursion_depth: 3 } },
    });
    expect(res.status).toBe(400);
    expect(res.json.code).toBe('bad_request');
    expect(res.json.issues).toEqual([expect.objectContaining({ path: 'config.max_recursion_depth' })]);
  });

  it('a body cannot set its own depth or raise a limit: current_depth and over-cap values are 400s naming the field', async () => {
    const cases: [unknown, string, RegExp][] = [
      [{ request: 'r', current_depth: 0 }, '(root)', /current_depth/],
      [{ request: 'r', config: { current_depth: 0 } }, 'config', /current_depth/],
      [{ request: 'r', config: { max_budget_usd: 26 } }, 'config.max_budget_usd', /./],
      [{ request: 'r', config: { max_workers: 21 } }, 'config.max_workers', /./],
    ];
    for (const [body, path, message] of cases) {
      const res = await stack.api('POST', '/api/v1/orchestrate', { body });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.json.issues).toEqual([
        expect.objectContaining({ path, message: expect.stringMatching(message) }),
      ]);
    }
    const { json } = await stack.api('GET', '/api/v1/jobs?limit=100');
    expect(json.jobs.map((j: { request: string }) => j.request)).not.toContain('r');
  });
});

describe('tasks per root limit', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack(
      'recursion: {enable: true, max_depth: 2}\nlimits: {max_tasks_per_root: 4, max_task_budget_usd: 1}',
    );
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('a worker is offered only the subtasks the root has left: a split of 3 with 2 left becomes 2', async () => {
    const jobId = await submit(stack, {
      request: 'two left',
      config: { enable_recursion: true },
      tasks: [{ prompt: 'a [[split:3]]' }, { prompt: 'b' }],
    });
    const budgets = await watchBudget(stack, jobId);
    expect(await stack.waitForJob(jobId)).toBe('completed');
    expect(Math.max(...budgets.map((b) => b.reservedTasks))).toBeLessThanOrEqual(4);
    expect((await stack.deps.jobs.getJob(jobId))?.budget?.reservedTasks).toBe(4);
    const tasks = await tasksOf(stack, jobId);
    expect(tasks.map((t) => [t.worker_id, t.status])).toEqual([
      ['worker_1', 'recursive_success'],
      ['worker_1_1', 'succeeded'],
      ['worker_1_2', 'succeeded'],
      ['worker_2', 'succeeded'],
    ]);
    // The decide schema the worker got allowed at most the 2 tasks left.
    const decide = (await stack.invocations()).find(
      (r) => /^ORCHESTRATOR-DECIDE$/m.test(r.prompt ?? '') && (r.prompt ?? '').includes('a [[split:3]]'),
    ) as { argv?: string[] } | undefined;
    const argv = decide?.argv ?? [];
    const schema = JSON.parse(argv[argv.indexOf('--json-schema') + 1] ?? '{}');
    expect(schema.properties.subtasks.maxItems).toBe(2);
  });

  it('two workers splitting at once: one child fits, the other is refused (max_tasks_per_root) and does the work itself', async () => {
    // Both workers get their offer (2 of 2 left) before either decides: the decide runs sleep.
    const jobId = await submit(stack, {
      request: 'a race for the last tasks',
      config: { enable_recursion: true },
      tasks: [{ prompt: 'left [[split:2]] [[sleep:1000]]' }, { prompt: 'right [[split:2]] [[sleep:1000]]' }],
    });
    const budgets = await watchBudget(stack, jobId);
    expect(await stack.waitForJob(jobId)).toBe('completed');
    expect(Math.max(...budgets.map((b) => b.reservedTasks))).toBeLessThanOrEqual(4);
    expect((await stack.deps.jobs.getJob(jobId))?.budget?.reservedTasks).toBe(4);

    const tasks = await tasksOf(stack, jobId);
    const roots = tasks.filter((t) => /^worker_\d+$/.test(t.worker_id));
    const split = roots.filter((t) => t.status === 'recursive_success');
    const refused = roots.filter((t) => t.status === 'succeeded');
    expect(split).toHaveLength(1);
    expect(refused).toHaveLength(1);
    expect(refused[0]?.recursive).toBe(false);
    expect(tasks).toHaveLength(4);
    expect(tasks.every((t) => t.status === 'succeeded' || t.status === 'recursive_success')).toBe(true);

    const log = (await stack.deps.artifacts.getText(
      workerLogKey(jobId, 0, (refused[0] as TaskView).task_no),
    )) as string;
    expect(log).toMatch(/split refused, doing it here: .*403/);
    expect(log).toContain('"limit":"max_tasks_per_root"');
    expect(log).toContain('"code":"limit_exceeded"');
    expect(
      stack.logs.some(
        (l) =>
          l.message === 'child job refused by a limit' &&
          l.extra?.limit === 'max_tasks_per_root' &&
          l.extra?.jobId === jobId,
      ),
    ).toBe(true);
  });

  it('a spawn that would pass the tree task limit is refused with 403 max_tasks_per_root; the job completes', async () => {
    // A planned child reserves max_workers (5) tasks; 3 are left.
    const jobId = await submit(stack, {
      request: 'spawn too much',
      config: { enable_recursion: true },
      tasks: [{ prompt: 'helper wanted [[spawn:more work;plan:2]]' }],
    });
    const budgets = await watchBudget(stack, jobId);
    expect(await stack.waitForJob(jobId)).toBe('completed');
    expect(Math.max(...budgets.map((b) => b.reservedTasks))).toBe(1);
    const [task] = await tasksOf(stack, jobId);
    expect(task).toMatchObject({ status: 'succeeded', recursive: false });
    expect(task?.output).toContain('spawn exit 1');
    const { status, body } = await spawnRefusal(stack, task as TaskView);
    expect(status).toBe(403);
    expect(body).toMatchObject({
      code: 'limit_exceeded',
      limit: 'max_tasks_per_root',
      allowed: 4,
      reserved: 1,
      requested: 5,
    });
    expect(await stack.deps.jobs.listDescendants(jobId)).toEqual([]);
  });
});

describe('spend per root limit', () => {
  let stack: TestStack;
  let jobId: string;
  let root: JobRecord;
  let tasks: TaskView[];
  beforeAll(async () => {
    // One worker at a time, so the three attempts reserve their budgets one after the other.
    stack = await startTestStack('workers: {max_workers: 1}\nlimits: {max_task_budget_usd: 0.02}');
    jobId = await submit(stack, {
      request: 'three paid parts',
      config: { max_budget_usd: 0.03, max_retries: 2 },
      tasks: [1, 2, 3].map((n) => ({ prompt: `paid part ${n} [[cost:0.015]]` })),
    });
    await stack.waitForJob(jobId);
    root = (await stack.deps.jobs.getJob(jobId)) as JobRecord;
    tasks = await tasksOf(stack, jobId);
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('spends at most the budget and ends partial, never stuck', () => {
    expect(['partial', 'failed']).toContain(root.status);
    expect(root.budget?.maxSpendUsd).toBe(0.03);
    expect(root.budget?.committedUsd).toBeLessThanOrEqual(0.03 + 1e-9);
    expect(root.budget?.spentUsd).toBeLessThanOrEqual(0.03 + 1e-9);
    // Every reservation is settled once the job is over.
    expect(root.budget?.committedUsd).toBeCloseTo(root.budget?.spentUsd as number, 9);
    expect(tasks.filter((t) => t.status === 'succeeded').length).toBeGreaterThanOrEqual(1);
  });

  it('refuses the attempt that finds the budget used up, naming max_budget_usd, and does not retry it', async () => {
    const refused = tasks.filter((t) => t.attempt_history.some((a) => /spend limit/.test(a.error ?? '')));
    expect(refused.length).toBeGreaterThanOrEqual(1);
    for (const task of refused) {
      expect(task.status).toBe('failed');
      const last = task.attempt_history.at(-1);
      // The refusal is the task's last attempt, although max_retries (2) would have allowed more.
      expect(last?.error).toMatch(/spend limit/);
      expect(task.attempts).toBe(last?.attempt);
      expect(task.attempts).toBeLessThan(3);
      // The caller only sees the task's error: it must name the limit, as the 403 the worker got does.
      expect(task.error).toMatch(/max_budget_usd/);
    }
    expect(
      stack.logs.some(
        (l) => l.message === 'attempt refused: spend limit reached' && l.extra?.jobId === jobId,
      ),
    ).toBe(true);
    expect(await stack.deps.artifacts.getText(finalReportKey(jobId))).toMatch(/spend limit/);
  });

  it('gives every worker --max-budget-usd within the per-attempt cap and what the tree had left', async () => {
    const runs = (await stack.invocations()).filter((r) => (r.prompt ?? '').includes('paid part')) as {
      argv?: string[];
      prompt: string | null;
    }[];
    expect(runs.length).toBeGreaterThanOrEqual(2);
    const budgets = runs.map((r) => {
      const argv = r.argv ?? [];
      const at = argv.indexOf('--max-budget-usd');
      expect(at, JSON.stringify(argv)).toBeGreaterThanOrEqual(0);
      return Number(argv[at + 1]);
    });
    expect(budgets[0]).toBe(0.02);
    for (const usd of budgets) {
      expect(usd).toBeGreaterThan(0);
      expect(usd).toBeLessThanOrEqual(0.02);
    }
  });
});
