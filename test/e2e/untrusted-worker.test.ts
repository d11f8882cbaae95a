import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobPrefix, workerFilesPrefix } from '../../functions/core/layout.ts';
import { startTestStack, type TestStack } from '../support/harness.ts';

/** What the test double's `[[attack:JOB]]` writes to attack_results.json. */
interface AttackCall {
  name: string;
  method: string;
  path: string;
  status: number | null;
  error?: string;
}

/**
 * What each escape answers, read from the code: a token is a worker principal,
 * so caller-only routes (list, cancel) are 403 (access.ts tenantOf); a
 * job that is not its child is a 404 (visibleJob); another task's routes are
 * 403 (worker-routes.ts ownTask); a path leaving the prefix is 403
 * (worker-access.ts uploadLinks); a forged token fails the hash check in the
 * authorizer, 401.
 */
const EXPECTED_STATUS: Record<string, number> = {
  read_other_job: 404,
  list_jobs: 403,
  other_task_result: 403,
  other_task_assignment: 403,
  upload_escape: 403,
  child_of_other_task: 401,
  other_job_cancel: 403,
};

describe('a prompt-injected worker, end to end', () => {
  let stack: TestStack;
  let tenantB: string;
  beforeAll(async () => {
    stack = await startTestStack('recursion: {enable: true, max_depth: 2}\nworkers: {max_workers: 8}');
    tenantB = await stack.createApiKey('tenant-b');
  });
  afterAll(async () => {
    await stack?.stop();
  });

  const warns = (message: string) => stack.logs.filter((l) => l.level === 'WARN' && l.message === message);

  async function submit(body: unknown, apiKey?: string): Promise<string> {
    const res = await stack.api('POST', '/api/v1/orchestrate', {
      body,
      ...(apiKey ? { headers: { 'x-api-key': apiKey } } : {}),
    });
    expect(res.status).toBe(202);
    return res.json.job_id as string;
  }

  /** A call with the worker's token only (no API key). */
  function withToken(token: string, method: string, path: string, body?: unknown, extra = {}) {
    return stack.api(method, path, {
      ...(body !== undefined ? { body } : {}),
      headers: { 'x-api-key': '', 'x-task-token': token, ...extra },
    });
  }

  let mainId: string;
  let sameTenantJob: string;
  let otherTenantJob: string;

  it('cannot reach other jobs, other tasks or outside its prefix while it runs, and each try is logged', async () => {
    // Two jobs to attack, still running while the attack happens.
    sameTenantJob = await submit({
      request: 'same tenant, other job',
      config: { enable_recursion: false },
      tasks: [{ prompt: 'other job [[sleep:10000]]' }],
    });
    otherTenantJob = await submit(
      {
        request: 'another tenant',
        config: { enable_recursion: false },
        tasks: [{ prompt: 'tenant b job [[sleep:10000]]' }],
      },
      tenantB,
    );
    mainId = await submit({
      request: 'a job with an injected worker',
      config: { enable_recursion: true, max_recursion_depth: 2, max_retries: 0 },
      tasks: [
        { prompt: 'honest' },
        { prompt: `evil [[attack:${sameTenantJob}]]` },
        // Slow, so that the attack on its result and assignment happens while it runs.
        { prompt: 'victim [[sleep:4000]]' },
        { prompt: `evil two [[attack:${otherTenantJob}]]` },
      ],
    });

    expect(await stack.waitForJob(mainId)).toBe('completed');
    const attackers = [
      { taskNo: 2, target: sameTenantJob, victimTask: 3 },
      { taskNo: 4, target: otherTenantJob, victimTask: 5 },
    ];
    for (const { taskNo, target } of attackers) {
      const text = await stack.deps.artifacts.getText(
        `${workerFilesPrefix(mainId, 0, taskNo)}attack_results.json`,
      );
      expect(text, `attack_results.json of worker ${taskNo}`).toBeDefined();
      const calls = JSON.parse(text as string) as AttackCall[];
      expect(calls.map((c) => c.name).sort()).toEqual(Object.keys(EXPECTED_STATUS).sort());
      for (const call of calls) {
        expect([401, 403, 404], `${call.name} ${call.method} ${call.path}`).toContain(call.status);
        expect(call.status, `${call.name} ${call.method} ${call.path}`).toBe(EXPECTED_STATUS[call.name]);
      }
      expect(calls.find((c) => c.name === 'read_other_job')?.path).toBe(`/api/v1/jobs/${target}`);
    }

    // The victim ran during the attack, and its result is its own.
    const runs = await stack.invocations();
    const attackEnd = Math.max(
      ...runs
        .filter((r) => r.end !== null && /evil \[\[attack/.test(r.prompt ?? ''))
        .map((r) => r.end as number),
    );
    const victimEnd = Math.max(
      ...runs
        .filter((r) => r.end !== null && (r.prompt ?? '').includes('victim'))
        .map((r) => r.end as number),
    );
    expect(victimEnd).toBeGreaterThan(attackEnd);
    const victim = await stack.deps.tasks.getTask(mainId, 3);
    expect(victim?.state).toBe('succeeded');
    expect(victim?.attempts).toHaveLength(1);
    expect(victim?.result?.output).toMatch(/^Completed: /);
    expect(victim?.result?.output).not.toMatch(/pwned/);
    const view = (await stack.api('GET', `/api/v1/jobs/${mainId}`)).json;
    for (const task of view.results.tasks) {
      expect(task.status).toBe('succeeded');
      expect(task.output).not.toMatch(/pwned/);
    }
    // The attackers' own tasks succeed: the double finishes normally after its attempts.
    expect(view.results.tasks.find((t: { task_no: number }) => t.task_no === 2).output).toMatch(
      /attack: read_other_job 404/,
    );

    // Nothing outside the attackers' own prefixes: every object is where the layout puts it.
    expect(await stack.waitForJob(sameTenantJob)).toBe('completed');
    expect(await stack.waitForJob(otherTenantJob)).toBe('completed');
    const later = await stack.invocations();
    // ... and so did the attacked jobs (a cancel of a running job is the one that would matter).
    for (const marker of ['other job', 'tenant b job']) {
      const end = Math.max(
        ...later
          .filter((r) => r.end !== null && (r.prompt ?? '').includes(marker))
          .map((r) => r.end as number),
      );
      expect(end, marker).toBeGreaterThan(attackEnd);
    }
    const keys = (await stack.deps.artifacts.list('')).map((o) => o.key);
    const allowed = new RegExp(
      `^jobs/(${[mainId, sameTenantJob, otherTenantJob].join('|')})/(depth_0/worker_\\d+/[^/]+|depth_0/LEVEL_0_REPORT\\.md|logs/depth_0_worker_\\d+(\\.attempt-\\d+)?\\.log|FINAL_RESULT\\.md|REPORT\\.html|result\\.json)$`,
    );
    expect(keys.filter((k) => !allowed.test(k))).toEqual([]);
    expect(keys.filter((k) => /escape/.test(k))).toEqual([]);
    for (const { taskNo } of attackers) {
      const own = keys.filter((k) => k.startsWith(workerFilesPrefix(mainId, 0, taskNo)));
      expect(own, `files of worker ${taskNo}`).toContain(
        `${workerFilesPrefix(mainId, 0, taskNo)}attack_results.json`,
      );
      expect(own, `files of worker ${taskNo}`).toContain(
        `${workerFilesPrefix(mainId, 0, taskNo)}stolen_token.txt`,
      );
    }

    // No child job anywhere, and the attacked jobs ran to their normal end.
    for (const id of [mainId, sameTenantJob, otherTenantJob]) {
      expect(await stack.deps.jobs.listDescendants(id), `children of ${id}`).toEqual([]);
    }
    expect(keys.filter((k) => k.includes('_recursive/'))).toEqual([]);
    expect((await stack.deps.jobs.getJob(sameTenantJob))?.status).toBe('completed');
    expect((await stack.deps.jobs.getJob(otherTenantJob))?.status).toBe('completed');
    expect(warns('job cancel requested')).toEqual([]);

    // Every refusal the API handlers see is logged as a warning, naming the attacker.
    for (const { taskNo, target, victimTask } of attackers) {
      const byAttacker = (message: string) =>
        warns(message).filter((l) => (l.extra?.principal as { taskNo?: number })?.taskNo === taskNo);
      expect(
        byAttacker('worker tried to read a job that is not its child').map((l) => l.extra?.jobId),
      ).toEqual([target]);
      expect(
        byAttacker('worker token refused on a caller-only route')
          .map((l) => l.extra?.path)
          .sort(),
      ).toEqual(['/api/v1/jobs', `/api/v1/jobs/${target}/cancel`].sort());
      expect(byAttacker('worker token used outside its task').map((l) => l.extra?.taskNo)).toEqual([
        victimTask,
        victimTask,
      ]);
      expect(
        warns('uploads refused: path outside the worker prefix').filter(
          (l) => l.extra?.jobId === mainId && l.extra?.taskNo === taskNo,
        ),
      ).toHaveLength(1);
    }
    // The forged token never reaches a handler: the authorizer refuses it and logs that.
    expect(
      warns('request refused by authorizer').filter(
        (l) => l.extra?.path === '/api/v1/orchestrate' && l.extra?.presented === true,
      ),
    ).toHaveLength(2);
  });

  it('cannot use its token after its task ended', async () => {
    expect(mainId).toBeDefined();
    const token = await stack.deps.artifacts.getText(`${workerFilesPrefix(mainId, 0, 2)}stolen_token.txt`);
    expect(token).toMatch(new RegExp(`^tt1\\.${mainId}\\.2\\.1\\.`));
    const stolen = token as string;
    const own = `/api/v1/jobs/${mainId}/tasks/2`;
    const before = await stack.deps.tasks.getTask(mainId, 2);
    const body = (attempt: number) => ({ attempt, status: 'succeeded', output: 'pwned' });
    const child = { request: 'x', tasks: [{ prompt: 'y' }] };
    // name -> the call, the status the code gives it (the token still authenticates, auth.ts
    // authorizeTaskToken, and every route refuses the ended attempt) and the WARN it should log
    // ('' for any WARN).
    const tries: [string, () => ReturnType<typeof withToken>, number, string][] = [
      [
        'assignment',
        () => withToken(stolen, 'GET', `${own}/assignment`),
        403,
        'assignment refused: attempt no longer active',
      ],
      [
        'uploads',
        () => withToken(stolen, 'POST', `${own}/uploads`, { attempt: 1, files: ['late.txt'] }),
        403,
        'uploads refused: attempt no longer active',
      ],
      [
        'result for the next attempt',
        () => withToken(stolen, 'POST', `${own}/result`, body(2)),
        403,
        // worker-routes.ts refuses it ('this token belongs to another attempt'); any WARN will do.
        '',
      ],
      [
        'result for another task',
        () => withToken(stolen, 'POST', `/api/v1/jobs/${mainId}/tasks/3/result`, body(1)),
        403,
        'worker token used outside its task',
      ],
      [
        'wait-mode child',
        () => withToken(stolen, 'POST', '/api/v1/orchestrate', child, { 'x-child-mode': 'wait' }),
        403,
        'child job refused: token no longer valid',
      ],
      [
        'hand-off child',
        () => withToken(stolen, 'POST', '/api/v1/orchestrate', child, { 'x-child-mode': 'handoff' }),
        403,
        'child job refused: token no longer valid',
      ],
    ];
    for (const [name, call, status, warning] of tries) {
      const logsBefore = stack.logs.length;
      const res = await call();
      expect(res.status, `${name}: ${res.text}`).toBe(status);
      const logged = stack.logs.slice(logsBefore).filter((l) => l.level === 'WARN');
      // The issue: "each attempt gets 403/404 and is logged".
      if (warning)
        expect
          .soft(
            logged.map((l) => l.message),
            `${name} is logged`,
          )
          .toContain(warning);
      else expect.soft(logged.length, `${name} is logged`).toBeGreaterThan(0);
    }

    // Nothing changed: no child job, the task and the job are as they were.
    expect(await stack.deps.jobs.listDescendants(mainId)).toEqual([]);
    const after = await stack.deps.tasks.getTask(mainId, 2);
    expect(after?.state).toBe('succeeded');
    expect(after?.attempt).toBe(1);
    expect(after?.result).toEqual(before?.result);
    expect((await stack.deps.tasks.getTask(mainId, 3))?.result?.output).not.toMatch(/pwned/);
    expect((await stack.deps.jobs.getJob(mainId))?.status).toBe('completed');
  });

  it("another result for the worker's own ended attempt is refused and changes nothing", async () => {
    expect(mainId).toBeDefined();
    const stolen = (await stack.deps.artifacts.getText(
      `${workerFilesPrefix(mainId, 0, 2)}stolen_token.txt`,
    )) as string;
    const before = await stack.deps.tasks.getTask(mainId, 2);
    // Only the very result the attempt ended with may be posted again (record-result.ts: 'replayed').
    const replay = await withToken(stolen, 'POST', `/api/v1/jobs/${mainId}/tasks/2/result`, {
      attempt: 1,
      status: 'failed',
      output: 'pwned',
      error: 'pwned',
    });
    expect(replay.status, replay.text).toBe(409);
    expect(replay.json.code).toBe('conflict');
    const after = await stack.deps.tasks.getTask(mainId, 2);
    expect(after?.state).toBe('succeeded');
    expect(after?.result).toEqual(before?.result);
    expect(after?.attempts).toEqual(before?.attempts);
    expect((await stack.deps.jobs.getJob(mainId))?.status).toBe('completed');
    expect(await stack.deps.artifacts.getText(`${jobPrefix(mainId)}FINAL_RESULT.md`)).not.toMatch(/pwned/);
  });
});
