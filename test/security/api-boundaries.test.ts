/**
 * Attacks on the API's boundaries by a worker that holds a live task token:
 * forged and swapped tokens, other tasks, caller-only routes, other tenants,
 * `../` upload paths, hostile JSON and stale attempt numbers. Each must be
 * refused with nothing written (no object, no task or job change, no key),
 * nothing lost (every job still completes with its own results) and nothing
 * leaked (no other task's prompt, job id or token in the answer).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobPrefix, workerFilesPrefix } from '../../functions/core/layout.ts';
import type { TaskRecord } from '../../functions/core/model.ts';
import { type HeldWorker, type HostileStack, startHostileStack } from '../support/hostile-worker.ts';

/** Words only the victims' prompts carry: finding one in an answer is a leak. */
const SAME_TENANT_SECRET = 'zebra-same-tenant-secret';
const OTHER_TENANT_SECRET = 'okapi-tenant-b-secret';
const SIBLING_SECRET = 'lynx-sibling-secret';

/** What a task looks like for "nothing written": its state and everything it recorded. */
function taskFacts(t: TaskRecord) {
  return {
    taskNo: t.taskNo,
    state: t.state,
    attempt: t.attempt,
    tokenHash: t.tokenHash,
    result: t.result,
    attempts: t.attempts,
    childJobId: t.childJobId,
    lateResult: t.lateResult,
    prompt: t.prompt,
  };
}

describe('API boundaries against a worker holding a live token', () => {
  let hostile: HostileStack;
  let tenantB: string;
  let attacker: HeldWorker;
  let sibling: HeldWorker;
  let deepWorker: HeldWorker;
  let protoWorker: HeldWorker;
  let victimSame: HeldWorker;
  let victimOther: HeldWorker;

  beforeAll(async () => {
    hostile = await startHostileStack('workers: {max_workers: 8}');
    tenantB = await hostile.createApiKey('tenant-b');
    victimOther = await hostile.capture(
      { request: 'tenant b job', tasks: [{ prompt: `${OTHER_TENANT_SECRET} [[hold:victim-b]]` }] },
      undefined,
      tenantB,
    );
    victimSame = await hostile.capture({
      request: 'same tenant job',
      tasks: [{ prompt: `${SAME_TENANT_SECRET} [[hold:victim-same]]` }],
    });
    attacker = await hostile.capture({
      request: 'a job with a hostile worker',
      config: { max_retries: 0 },
      tasks: [
        { prompt: 'attacker [[hold:attacker]]' },
        { prompt: `${SIBLING_SECRET} [[hold:sibling]]` },
        { prompt: 'deep json [[hold:deep]]' },
        { prompt: 'prototype keys [[hold:proto]]' },
      ],
    });
    sibling = await hostile.held('sibling', attacker.jobId);
    deepWorker = await hostile.held('deep', attacker.jobId);
    protoWorker = await hostile.held('proto', attacker.jobId);
  });
  afterAll(async () => {
    await hostile?.stop();
  });

  const jobIds = () => [attacker.jobId, victimSame.jobId, victimOther.jobId];
  const own = (w: HeldWorker) => `/api/v1/jobs/${w.jobId}/tasks/${w.taskNo}`;

  /** Everything an attack could change: objects, tasks, jobs, child jobs and API keys. */
  async function world() {
    const { deps } = hostile;
    const objects = (await deps.artifacts.list('')).map((o) => `${o.key} ${o.size} ${o.etag ?? ''}`).sort();
    const jobs = [];
    for (const id of jobIds()) {
      const job = await deps.jobs.getJob(id);
      jobs.push({
        id,
        status: job?.status,
        tasks: (await deps.tasks.listTasks(id)).map(taskFacts),
        children: (await deps.jobs.listDescendants(id)).map((j) => j.jobId),
      });
    }
    const apiKeys = (await deps.keys.listApiKeys()).length;
    return { objects, jobs, apiKeys };
  }

  /** An answer that names nothing the attacker may not see. */
  function expectNoLeak(res: { text: string }, except: string[] = []) {
    const secrets = [
      SAME_TENANT_SECRET,
      OTHER_TENANT_SECRET,
      SIBLING_SECRET,
      victimSame.jobId,
      victimOther.jobId,
      victimSame.token,
      victimOther.token,
      sibling.token,
      tenantB,
      hostile.apiKey,
    ].filter((s) => !except.includes(s));
    for (const s of secrets) expect(res.text, 'the answer leaks a secret').not.toContain(s);
  }

  it('attack: a forged token (its secret tampered) reads its own assignment', async () => {
    const before = await world();
    const parts = attacker.token.split('.');
    const secret = parts[4] as string;
    const flipped = `${secret.slice(0, -1)}${secret.endsWith('A') ? 'B' : 'A'}`;
    const forged = [...parts.slice(0, 4), flipped].join('.');
    const res = await hostile.withToken(forged, 'GET', `${own(attacker)}/assignment`);
    expect(res.status).toBe(401);
    expect(res.text).not.toContain('attacker');
    expect(await world()).toEqual(before);
  });

  it('attack: a token re-scoped to the sibling task (ids edited, secret kept) reads its assignment', async () => {
    const before = await world();
    const parts = attacker.token.split('.');
    const rescoped = [parts[0], parts[1], String(sibling.taskNo), ...parts.slice(3)].join('.');
    const res = await hostile.withToken(rescoped, 'GET', `${own(sibling)}/assignment`);
    expect(res.status).toBe(401);
    expectNoLeak(res);
    // The same swap towards another job of the tenant.
    const otherJob = [parts[0], victimSame.jobId, '1', ...parts.slice(3)].join('.');
    const res2 = await hostile.withToken(otherJob, 'GET', `${own(victimSame)}/assignment`);
    expect(res2.status).toBe(401);
    expectNoLeak(res2, [victimSame.jobId]);
    expect(await world()).toEqual(before);
  });

  it("attack: task A's token reads task B's assignment", async () => {
    const before = await world();
    const res = await hostile.withToken(attacker.token, 'GET', `${own(sibling)}/assignment`);
    expect(res.status).toBe(403);
    expectNoLeak(res);
    const far = await hostile.withToken(attacker.token, 'GET', `${own(victimOther)}/assignment`);
    expect(far.status).toBe(403);
    expectNoLeak(far, [victimOther.jobId]);
    expect(await world()).toEqual(before);
  });

  it("attack: task A's token posts a result for running task B", async () => {
    const before = await world();
    const forgedResult = { attempt: 1, status: 'succeeded', output: 'pwned', cost_usd: 0 };
    const res = await hostile.withToken(attacker.token, 'POST', `${own(sibling)}/result`, forgedResult);
    expect(res.status).toBe(403);
    const failIt = { attempt: 1, status: 'failed', output: 'pwned', error: 'pwned', retryable: false };
    const far = await hostile.withToken(attacker.token, 'POST', `${own(victimOther)}/result`, failIt);
    expect(far.status).toBe(403);
    expect(await world()).toEqual(before);
    expect((await hostile.deps.tasks.getTask(sibling.jobId, sibling.taskNo))?.state).toBe('running');
  });

  it("attack: task A's token asks for upload links in task B's prefix", async () => {
    const before = await world();
    const files = [{ path: 'planted.txt', size_bytes: 10 }];
    const res = await hostile.withToken(attacker.token, 'POST', `${own(sibling)}/uploads`, {
      attempt: 1,
      files,
    });
    expect(res.status).toBe(403);
    expect(res.text).not.toMatch(/https?:\/\//);
    expect(await world()).toEqual(before);
  });

  it('attack: the token lists the jobs of its tenant', async () => {
    const before = await world();
    const res = await hostile.withToken(attacker.token, 'GET', '/api/v1/jobs');
    expect(res.status).toBe(403);
    expectNoLeak(res);
    expect(res.text).not.toContain(attacker.jobId);
    expect(await world()).toEqual(before);
  });

  it('attack: the token mints an API key (key routes, the token as an API key)', async () => {
    const before = await world();
    for (const path of ['/api/v1/keys', '/api/v1/api-keys', '/api/v1/tenants/tenant-a/keys']) {
      const res = await hostile.withToken(attacker.token, 'POST', path, { tenant: 'tenant-a', name: 'mine' });
      expect([403, 404], path).toContain(res.status);
      expect(res.text).not.toMatch(/cok_/);
    }
    // The token presented where an API key goes is no API key.
    const asKey = await hostile.api('GET', '/api/v1/jobs', { headers: { 'x-api-key': attacker.token } });
    expect(asKey.status).toBe(401);
    const submit = await hostile.api('POST', '/api/v1/orchestrate', {
      body: { request: 'spawned with a stolen key', tasks: [{ prompt: 'x' }] },
      headers: { 'x-api-key': attacker.token },
    });
    expect(submit.status).toBe(401);
    expect(await world()).toEqual(before);
  });

  it('attack: the token cancels another job of its tenant, and its own job', async () => {
    const before = await world();
    for (const id of [victimSame.jobId, attacker.jobId]) {
      const res = await hostile.withToken(attacker.token, 'POST', `/api/v1/jobs/${id}/cancel`);
      expect(res.status, id).toBe(403);
    }
    expect(hostile.logs.filter((l) => l.message === 'job cancel requested')).toEqual([]);
    expect(await world()).toEqual(before);
    expect((await hostile.deps.jobs.getJob(victimSame.jobId))?.status).toBe('running');
  });

  it('attack: the token reads a job of another tenant (view, status, report)', async () => {
    const before = await world();
    for (const suffix of ['', '/status', '/report']) {
      const res = await hostile.withToken(
        attacker.token,
        'GET',
        `/api/v1/jobs/${victimOther.jobId}${suffix}`,
      );
      expect(res.status, suffix).toBe(404);
      expectNoLeak(res, [victimOther.jobId]);
    }
    expect(await world()).toEqual(before);
  });

  it("attack: the token reads its own job's results and another job of its tenant", async () => {
    const before = await world();
    for (const id of [attacker.jobId, victimSame.jobId]) {
      for (const suffix of ['', '/report']) {
        const res = await hostile.withToken(attacker.token, 'GET', `/api/v1/jobs/${id}${suffix}`);
        expect(res.status, `${id}${suffix}`).toBe(404);
        expectNoLeak(res, [victimSame.jobId]);
      }
    }
    expect(await world()).toEqual(before);
  });

  it('attack: upload paths escape the worker prefix with ../, absolute paths and backslashes', async () => {
    const before = await world();
    const escapes = [
      '../escape.txt',
      '../../escape.txt',
      `../worker_${sibling.taskNo}/planted.txt`,
      `../../../${victimSame.jobId}/FINAL_RESULT.md`,
      'a/../../escape.txt',
      '/etc/escape.txt',
      '..\\..\\escape.txt',
    ];
    const res = await hostile.withToken(attacker.token, 'POST', `${own(attacker)}/uploads`, {
      attempt: attacker.attempt,
      files: escapes.map((path) => ({ path, size_bytes: 10 })),
    });
    // Refused whole (4xx), or name by name: either way no link for any of them.
    if (res.status === 200) {
      expect(res.json.files).toEqual([]);
      expect(res.json.refused.map((r: { path: string }) => r.path).sort()).toEqual([...escapes].sort());
    } else {
      expect([400, 403]).toContain(res.status);
      expect(res.text).not.toMatch(/https?:\/\//);
    }
    const after = await world();
    expect(after.objects).toEqual(before.objects);
    // The refusals may be noted on the attacker's own task; nothing else moves.
    expect(after.jobs.map((j) => j.status)).toEqual(before.jobs.map((j) => j.status));
    expect(after.jobs[1]).toEqual(before.jobs[1]);
    expect(after.jobs[2]).toEqual(before.jobs[2]);
    const keys = (await hostile.deps.artifacts.list('')).map((o) => o.key);
    const mine = workerFilesPrefix(attacker.jobId, 0, attacker.taskNo);
    expect(keys.filter((k) => /escape|planted/.test(k) && !k.startsWith(mine))).toEqual([]);
  });

  it('attack: a result for an attempt number that is not the current one', async () => {
    const before = await world();
    const body = (attempt: number) => ({ attempt, status: 'succeeded', output: 'pwned' });
    for (const [attempt, status] of [
      [2, 403],
      [9999, 403],
      [0, 400],
      [-1, 400],
    ] as const) {
      const res = await hostile.withToken(attacker.token, 'POST', `${own(attacker)}/result`, body(attempt));
      expect(res.status, `attempt ${attempt}`).toBe(status);
    }
    const links = await hostile.withToken(attacker.token, 'POST', `${own(attacker)}/uploads`, {
      attempt: 2,
      files: [{ path: 'next.txt', size_bytes: 1 }],
    });
    expect(links.status).toBe(403);
    expect(await world()).toEqual(before);
    expect((await hostile.deps.tasks.getTask(attacker.jobId, attacker.taskNo))?.attempt).toBe(1);
  });

  it('attack: a result body over 1 MiB', async () => {
    const before = await world();
    const res = await hostile.withToken(deepWorker.token, 'POST', `${own(deepWorker)}/result`, {
      attempt: 1,
      status: 'succeeded',
      output: 'x'.repeat(1536 * 1024),
    });
    expect(res.status).toBe(413);
    expect(res.json.code).toBe('too_large');
    expect(await world()).toEqual(before);
  });

  it('attack: a result with JSON nested 100,000 deep', async () => {
    const before = await world();
    const deepArray = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    const deepObject = `${'{"a":'.repeat(50_000)}1${'}'.repeat(50_000)}`;
    const post = (rawBody: string) =>
      hostile.api('POST', `${own(deepWorker)}/result`, {
        rawBody,
        headers: { 'x-api-key': '', 'x-task-token': deepWorker.token, 'content-type': 'application/json' },
      });
    const head = '"attempt":1,"status":"succeeded","output":"deep"';
    const tries: [string, string][] = [
      [
        'git.files.added',
        `{${head},"git":{"commit":null,"files":{"added":${deepArray},"modified":[],"deleted":[]},"insertions":0,"deletions":0}}`,
      ],
      ['git', `{${head},"git":${deepObject}}`],
      ['structured_output', `{${head},"structured_output":${deepArray}}`],
      ['structured_output', `{${head},"structured_output":${deepObject}}`],
    ];
    for (const [field, body] of tries) {
      const res = await post(body);
      // A clear 400 naming the field, not a stack overflow (500), and no echo of the value.
      expect(res.status, `${field}: ${res.text.slice(0, 300)}`).toBe(400);
      expect(res.text.length).toBeLessThan(2000);
      expect(res.json.issues.map((i: { path: string }) => i.path).join(' ')).toContain(field.split('.')[0]);
    }
    expect(await world()).toEqual(before);
    const view = await hostile.api('GET', `/api/v1/jobs/${attacker.jobId}`);
    expect(view.status).toBe(200);
  });

  it('attack: __proto__ and constructor keys in a result', async () => {
    const before = await world();
    const send = (rawBody: string) =>
      hostile.api('POST', `${own(protoWorker)}/result`, {
        rawBody,
        headers: { 'x-api-key': '', 'x-task-token': protoWorker.token, 'content-type': 'application/json' },
      });
    const top = await send(
      '{"attempt":1,"status":"succeeded","output":"x","__proto__":{"polluted":"yes","status":"failed"}}',
    );
    expect(top.status).toBe(400);
    const ctor = await send(
      '{"attempt":1,"status":"succeeded","output":"x","constructor":{"prototype":{"polluted":"yes"}}}',
    );
    expect(ctor.status).toBe(400);
    const git = await send(
      '{"attempt":1,"status":"succeeded","output":"x","git":{"__proto__":{"polluted":"yes"},"commit":null}}',
    );
    expect(git.status).toBe(400);
    expect(await world()).toEqual(before);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty('polluted');
  });

  it('after every attack, each job completes with its own results', async () => {
    for (const w of [attacker, sibling, deepWorker, protoWorker, victimSame, victimOther]) await w.release();
    for (const id of jobIds()) expect(await hostile.waitForJob(id), id).toBe('completed');
    for (const id of jobIds()) {
      for (const task of await hostile.deps.tasks.listTasks(id)) {
        expect(task.state, `${id} task ${task.taskNo}`).toBe('succeeded');
        expect(task.attempts, `${id} task ${task.taskNo}`).toHaveLength(1);
        expect(task.result?.output).toMatch(/hold: released/);
        expect(task.result?.output).not.toMatch(/pwned/);
      }
      expect(await hostile.deps.jobs.listDescendants(id)).toEqual([]);
      const report = await hostile.deps.artifacts.getText(`${jobPrefix(id)}FINAL_RESULT.md`);
      expect(report).toBeDefined();
      expect(report).not.toMatch(/pwned/);
    }
    expect((await hostile.deps.keys.listApiKeys()).length).toBe(2);
  });
});
