/**
 * How far a task token reaches. A token reads only the child jobs its own
 * live attempt created (and, through them, their subtrees): never its own
 * job, its parent, the root, a sibling's child or anything of a sibling in a
 * report's links. Once its attempt has ended every route refuses it, except a
 * replay of the very result the attempt ended with.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobPrefix, workerFilesPrefix } from '../../functions/core/layout.ts';
import type { HeldWorker, HostileStack } from '../support/hostile-worker.ts';
import { startHostileStack } from '../support/hostile-worker.ts';

const CHILD = { 'x-child-mode': 'wait' };

/** The artifact links of a GET /report body: key (relative to the root's prefix) and URL. */
function reportLinks(markdown: string): { key: string; url: string }[] {
  const section = markdown.slice(markdown.lastIndexOf('## Artifact links'));
  return [...section.matchAll(/^- \[(.+?)\]\((\S+)\) \(\d+ bytes\)$/gm)].map((m) => ({
    key: (m[1] as string).replace(/\\(.)/g, '$1'),
    url: m[2] as string,
  }));
}

describe('token scope', () => {
  let hostile: HostileStack;
  const jobs: string[] = [];

  beforeAll(async () => {
    hostile = await startHostileStack('recursion: {enable: true, max_depth: 2}\nworkers: {max_workers: 8}');
  });
  afterAll(async () => {
    if (!hostile) return;
    await Promise.all(jobs.map((id) => hostile.waitForJob(id, 90_000).catch(() => undefined)));
    await hostile.stop();
  });

  const capture = async (body: unknown, label?: string): Promise<HeldWorker> => {
    const w = await hostile.capture(body, label);
    jobs.push(w.jobId);
    return w;
  };

  /** A wait-mode child job created with the worker's token, with one task. */
  async function childOf(w: HeldWorker, prompt: string): Promise<string> {
    const res = await hostile.withToken(
      w.token,
      'POST',
      '/api/v1/orchestrate',
      { request: `child of ${w.label}`, tasks: [{ prompt }] },
      CHILD,
    );
    expect(res.status, res.text).toBe(202);
    return res.json.job_id as string;
  }

  it("attack: read a sibling's report links and its child job", async () => {
    const a = await capture(
      {
        request: 'two siblings',
        config: { enable_recursion: true, max_recursion_depth: 2 },
        tasks: [{ prompt: 'sibling a [[hold:sib-a]]' }, { prompt: 'sibling b [[hold:sib-b]]' }],
      },
      'sib-a',
    );
    const b = await hostile.held('sib-b', a.jobId);
    const childA = await childOf(a, 'a child [[create:a-child.txt:mine]]');
    const childB = await childOf(b, 'b child [[create:b-secret.txt:the secret of b]]');
    expect(await hostile.waitForJob(childA)).toBe('completed');
    expect(await hostile.waitForJob(childB)).toBe('completed');
    const secretKey = `${workerFilesPrefix(a.jobId, 1, 1, '2')}b-secret.txt`;
    expect(await hostile.deps.artifacts.getText(secretKey)).toBe('the secret of b\n');

    // A reads its own child's report: only that child's subtree is linked.
    const report = await hostile.withToken(a.token, 'GET', `/api/v1/jobs/${childA}/report`);
    expect(report.status, report.text).toBe(200);
    const keys = reportLinks(report.text).map((l) => l.key);
    expect(keys).toContain('depth_1/worker_1_1/a-child.txt');
    expect(keys.length).toBeGreaterThan(0);
    for (const key of keys)
      expect(key, 'every link is of the child job of worker_1').toMatch(/(^|\/|_)(worker|planner)_1_/);
    expect(report.text).not.toMatch(/b-secret|worker_2/);
    expect(keys.filter((k) => /FINAL_RESULT|LEVEL_|result\.json|^depth_0\/|^logs\/depth_0_/.test(k))).toEqual(
      [],
    );

    // B's child job, through every route A's token can name: as if it did not exist.
    for (const suffix of ['', '/status', '/report', '/patch', '/bundle']) {
      const res = await hostile.withToken(a.token, 'GET', `/api/v1/jobs/${childB}${suffix}`);
      expect(res.status, `GET ${suffix}`).toBe(404);
      expect(res.text).not.toContain('secret');
    }

    // Nothing changed: B's file is as B wrote it, and the tree completes.
    expect(await hostile.deps.artifacts.getText(secretKey)).toBe('the secret of b\n');
    await a.release();
    await b.release();
    expect(await hostile.waitForJob(a.jobId)).toBe('completed');
  });

  it('attack: read the parent and root job from a child job, and its own job from the root', async () => {
    const a = await capture(
      {
        request: 'a parent with a held child',
        config: { enable_recursion: true, max_recursion_depth: 2 },
        tasks: [{ prompt: 'parent [[hold:parent]]' }],
      },
      'parent',
    );
    const childId = await childOf(a, 'held child [[hold:grandchild]]');
    const c = await hostile.held('grandchild', childId);
    expect(c.jobId).toBe(childId);
    const root = a.jobId;

    const tries: [string, HeldWorker, string][] = [
      ['the root from its child', c, `/api/v1/jobs/${root}`],
      ['the root report from its child', c, `/api/v1/jobs/${root}/report`],
      ['the root status from its child', c, `/api/v1/jobs/${root}/status`],
      ['its own job from the child', c, `/api/v1/jobs/${childId}`],
      ['its own report from the child', c, `/api/v1/jobs/${childId}/report`],
      ['its own job from the root', a, `/api/v1/jobs/${root}`],
      ['its own report from the root', a, `/api/v1/jobs/${root}/report`],
    ];
    for (const [what, w, path] of tries) {
      const res = await hostile.withToken(w.token, 'GET', path);
      expect(res.status, what).toBe(404);
      expect(res.json, what).toEqual({ error: expect.stringMatching(/not found/), code: 'not_found' });
    }
    // The parent does read the child it created.
    expect((await hostile.withToken(a.token, 'GET', `/api/v1/jobs/${childId}/status`)).status).toBe(200);

    await c.release();
    await a.release();
    expect(await hostile.waitForJob(root)).toBe('completed');
    expect(await hostile.waitForJob(childId)).toBe('completed');
  });

  it('attack: use the token after the job completed', async () => {
    const w = await capture({
      request: 'a worker whose token outlives its job',
      config: { enable_recursion: true, max_recursion_depth: 2 },
      tasks: [{ prompt: 'finishes [[hold:after-end]]' }],
    });
    const childId = await childOf(w, 'a child to read later');
    expect(await hostile.waitForJob(childId)).toBe('completed');
    expect((await hostile.withToken(w.token, 'GET', `/api/v1/jobs/${childId}`)).status).toBe(200);
    await w.release();
    expect(await hostile.waitForJob(w.jobId)).toBe('completed');

    const own = `/api/v1/jobs/${w.jobId}/tasks/${w.taskNo}`;
    const before = await hostile.deps.tasks.getTask(w.jobId, w.taskNo);
    const finalBefore = await hostile.deps.artifacts.getText(`${jobPrefix(w.jobId)}FINAL_RESULT.md`);
    const descendants = (await hostile.deps.jobs.listDescendants(w.jobId)).map((j) => j.jobId);
    const calls: [string, () => ReturnType<HostileStack['withToken']>, number][] = [
      ['read its child', () => hostile.withToken(w.token, 'GET', `/api/v1/jobs/${childId}`), 403],
      [
        'read its child report',
        () => hostile.withToken(w.token, 'GET', `/api/v1/jobs/${childId}/report`),
        403,
      ],
      [
        'read its child status',
        () => hostile.withToken(w.token, 'GET', `/api/v1/jobs/${childId}/status`),
        403,
      ],
      ['assignment', () => hostile.withToken(w.token, 'GET', `${own}/assignment`), 403],
      [
        'upload links',
        () =>
          hostile.withToken(w.token, 'POST', `${own}/uploads`, {
            attempt: w.attempt,
            files: [{ path: 'late.txt', size_bytes: 4 }],
          }),
        403,
      ],
      [
        'a new child job',
        () =>
          hostile.withToken(
            w.token,
            'POST',
            '/api/v1/orchestrate',
            { request: 'x', tasks: [{ prompt: 'y' }] },
            CHILD,
          ),
        403,
      ],
      [
        'another result',
        () =>
          hostile.withToken(w.token, 'POST', `${own}/result`, {
            attempt: w.attempt,
            status: 'failed',
            output: 'rewritten after the end',
          }),
        409,
      ],
    ];
    for (const [what, call, status] of calls) {
      const res = await call();
      expect(res.status, `${what}: ${res.text}`).toBe(status);
      expect(res.text).not.toContain('a child to read later');
    }

    const after = await hostile.deps.tasks.getTask(w.jobId, w.taskNo);
    expect(after?.result).toEqual(before?.result);
    expect(after?.attempts).toEqual(before?.attempts);
    expect((await hostile.deps.jobs.getJob(w.jobId))?.status).toBe('completed');
    expect((await hostile.deps.jobs.listDescendants(w.jobId)).map((j) => j.jobId)).toEqual(descendants);
    expect(await hostile.deps.artifacts.getText(`${jobPrefix(w.jobId)}FINAL_RESULT.md`)).toBe(finalBefore);
    expect(
      await hostile.deps.artifacts.getText(`${workerFilesPrefix(w.jobId, 0, w.taskNo)}late.txt`),
    ).toBeUndefined();
  });

  it('attack: replay a different result for its ended attempt', async () => {
    const w = await capture({
      request: 'a worker that posts twice',
      tasks: [{ prompt: 'posts its own result [[hold:replay]]' }],
    });
    const path = `/api/v1/jobs/${w.jobId}/tasks/${w.taskNo}/result`;
    const first = { attempt: w.attempt, status: 'succeeded', output: 'the first answer', num_turns: 2 };
    const recorded = await hostile.withToken(w.token, 'POST', path, first);
    expect(recorded.status, recorded.text).toBe(200);
    expect(recorded.json.outcome).toBe('recorded');
    const before = await hostile.deps.tasks.getTask(w.jobId, w.taskNo);

    // The same result again (a retry after a lost response), fields in another order: acknowledged.
    const { output, ...rest } = first;
    const same = await hostile.withToken(w.token, 'POST', path, { output, ...rest });
    expect(same.status, same.text).toBe(200);
    expect(same.json.outcome).toBe('replayed');

    for (const other of [
      { ...first, output: 'a better answer' },
      { ...first, status: 'failed', error: 'pretend it failed' },
      { ...first, files_created: ['../../../etc/shadow'] },
    ]) {
      const res = await hostile.withToken(w.token, 'POST', path, other);
      expect(res.status, res.text).toBe(409);
      expect(res.json.code).toBe('conflict');
    }

    const after = await hostile.deps.tasks.getTask(w.jobId, w.taskNo);
    expect(after?.result).toEqual(before?.result);
    expect(after?.attempts).toEqual(before?.attempts);
    expect(after?.result?.output).toBe('the first answer');
    await w.release();
    expect(await hostile.waitForJob(w.jobId)).toBe('completed');
    // The session's own result, posted after release, did not replace the first either.
    expect((await hostile.deps.tasks.getTask(w.jobId, w.taskNo))?.result?.output).toBe('the first answer');
  });
});
