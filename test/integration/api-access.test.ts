/**
 * What a caller relies on beyond validation: 404/405 for what does not
 * exist, tenant isolation, Idempotency-Key replays, newest-first paging with
 * opaque cursors, query bounds, and worker routes closed to anything but the
 * task's own token.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack, type TestStack } from '../support/harness.ts';

const ORCHESTRATE = '/api/v1/orchestrate';
const UNKNOWN_ID = '0123456789abcdef0123';

interface Listed {
  job_id: string;
  created_at: string;
}

describe('API access: lookups, tenants, idempotency, paging, worker routes', () => {
  let stack: TestStack;
  let keyB: string;
  let keyPages: string;
  /** Every job this file creates, awaited before the stack stops. */
  const created: string[] = [];

  /** Submits caller-given tasks (no planning) as the tenant behind `apiKey`. */
  const submit = async (apiKey: string, body: unknown = { request: 'r', tasks: [{ prompt: 'p' }] }) => {
    const res = await stack.api('POST', ORCHESTRATE, { body, headers: { 'x-api-key': apiKey } });
    expect(res.status, res.text).toBe(202);
    created.push(res.json.job_id);
    return res.json as { job_id: string; status: string; created: boolean };
  };

  const listAll = async (apiKey: string): Promise<Listed[]> => {
    const res = await stack.api('GET', '/api/v1/jobs?limit=100', { headers: { 'x-api-key': apiKey } });
    expect(res.status).toBe(200);
    return res.json.jobs;
  };

  beforeAll(async () => {
    stack = await startTestStack();
    keyB = await stack.createApiKey('tenant-b');
    keyPages = await stack.createApiKey('tenant-pages');
  });
  afterAll(async () => {
    if (stack) {
      await Promise.all([...new Set(created)].map((id) => stack.waitForJob(id).catch(() => undefined)));
      await stack.stop();
    }
  });

  describe('what does not exist', () => {
    it('an unknown job id is a 404 not_found on every job route', async () => {
      for (const suffix of ['', '/status', '/report']) {
        const res = await stack.api('GET', `/api/v1/jobs/${UNKNOWN_ID}${suffix}`);
        expect(res.status).toBe(404);
        expect(res.json).toEqual({ error: `job ${UNKNOWN_ID} not found`, code: 'not_found' });
      }
    });

    it.each([
      ['with characters a job id never has', 'not-a-job!'],
      ['longer than any job id', 'a'.repeat(200)],
      ['with an encoded slash', 'abc%2Fdef'],
      ['with an encoded NUL', 'abc%00'],
      ['with malformed percent-encoding', '%ZZ'],
    ])('a malformed job id (%s) is a 404 not_found, not an error', async (_what, id) => {
      const res = await stack.api('GET', `/api/v1/jobs/${id}`);
      expect(res.status, res.text).toBe(404);
      expect(res.json.code).toBe('not_found');
      expect(res.text.length).toBeLessThan(300);
    });

    it.each([
      ['GET', '/api/v1/nope'],
      ['GET', '/api/v2/jobs'],
      ['GET', '/'],
      ['GET', `/api/v1/jobs/${UNKNOWN_ID}/tasks`],
      ['POST', `/api/v1/jobs/${UNKNOWN_ID}/cancel-everything`],
    ])('an unknown route (%s %s) is a 404 not_found', async (method, path) => {
      const res = await stack.api(method, path);
      expect(res.status).toBe(404);
      expect(res.json.code).toBe('not_found');
    });

    it.each([
      ['GET', ORCHESTRATE],
      ['PUT', ORCHESTRATE],
      ['POST', '/api/v1/jobs'],
      ['DELETE', `/api/v1/jobs/${UNKNOWN_ID}`],
      ['POST', `/api/v1/jobs/${UNKNOWN_ID}/status`],
      ['GET', `/api/v1/jobs/${UNKNOWN_ID}/tasks/1/result`],
    ])('the wrong method on a known path (%s %s) is a 405', async (method, path) => {
      const res = await stack.api(method, path);
      expect(res.status).toBe(405);
      expect(res.json.code).toBe('method_not_allowed');
      expect(res.json.error).toContain(method);
    });
  });

  describe('tenant isolation', () => {
    let jobA: string;
    beforeAll(async () => {
      jobA = (await submit(stack.apiKey, { request: 'tenant A only', tasks: [{ prompt: 'p' }] })).job_id;
    });

    it('tenant A sees its own job', async () => {
      for (const suffix of ['', '/status', '/report']) {
        expect((await stack.api('GET', `/api/v1/jobs/${jobA}${suffix}`)).status).toBe(200);
      }
      expect((await listAll(stack.apiKey)).map((j) => j.job_id)).toContain(jobA);
    });

    it('for tenant B the job answers exactly like a job that does not exist', async () => {
      for (const suffix of ['', '/status', '/report']) {
        const res = await stack.api('GET', `/api/v1/jobs/${jobA}${suffix}`, {
          headers: { 'x-api-key': keyB },
        });
        expect(res.status).toBe(404);
        expect(res.json).toEqual({ error: `job ${jobA} not found`, code: 'not_found' });
        expect(res.text).not.toContain('tenant A only');
      }
    });

    it("the job is not in tenant B's listing", async () => {
      expect((await listAll(keyB)).map((j) => j.job_id)).not.toContain(jobA);
    });
  });

  describe('Idempotency-Key', () => {
    const body = { request: 'idempotent request', tasks: [{ title: 'T', prompt: 'p' }] };

    it('the same key and body twice give the same job, created once', async () => {
      const send = (b: unknown) =>
        stack.api('POST', ORCHESTRATE, { body: b, headers: { 'idempotency-key': 'order-42' } });
      const first = await send(body);
      expect(first.status, first.text).toBe(202);
      expect(first.json.created).toBe(true);
      created.push(first.json.job_id);

      const second = await send(body);
      expect(second.status, second.text).toBe(202);
      expect(second.json.job_id).toBe(first.json.job_id);
      expect(second.json.created).toBe(false);
      expect(second.headers.get('location')).toBe(`/api/v1/jobs/${first.json.job_id}`);

      // Field order does not make it a different body.
      const reordered = await send({ tasks: [{ prompt: 'p', title: 'T' }], request: 'idempotent request' });
      expect(reordered.status).toBe(202);
      expect(reordered.json).toMatchObject({ job_id: first.json.job_id, created: false });

      const listed = (await listAll(stack.apiKey)).filter((j) => j.job_id === first.json.job_id);
      expect(listed).toHaveLength(1);
      expect((await stack.api('GET', `/api/v1/jobs/${first.json.job_id}/status`)).json.total_tasks).toBe(1);
    });

    it('the same key with a different body is a 409 conflict and changes nothing', async () => {
      const before = await listAll(stack.apiKey);
      const res = await stack.api('POST', ORCHESTRATE, {
        body: { ...body, request: 'something else' },
        headers: { 'idempotency-key': 'order-42' },
      });
      expect(res.status, JSON.stringify({ res: res.json, before: before.length })).toBe(409);
      expect(res.json.code).toBe('conflict');
      expect(res.json.error).toMatch(/Idempotency-Key/);
      // No job was added (the listed jobs' states may move on meanwhile: they are still running).
      const ids = (jobs: { job_id: string }[]) => jobs.map((j) => j.job_id);
      expect(ids(await listAll(stack.apiKey))).toEqual(ids(before));
    });

    it('keys are scoped to the tenant: tenant B reusing the key gets its own job', async () => {
      const mine = (await listAll(stack.apiKey)).map((j) => j.job_id);
      const res = await stack.api('POST', ORCHESTRATE, {
        body,
        headers: { 'idempotency-key': 'order-42', 'x-api-key': keyB },
      });
      expect(res.status).toBe(202);
      expect(res.json.created).toBe(true);
      created.push(res.json.job_id);
      expect(mine).not.toContain(res.json.job_id);
    });
  });

  describe('listing newest first, with cursors', () => {
    const ids: string[] = [];
    beforeAll(async () => {
      for (let i = 0; i < 5; i++) {
        ids.push((await submit(keyPages, { request: `page job ${i}`, tasks: [{ prompt: 'p' }] })).job_id);
        // Distinct creation times, so "newest first" has one right answer.
        await new Promise((r) => setTimeout(r, 5));
      }
    });
    const asPages = (path: string, apiKey = keyPages) =>
      stack.api('GET', path, { headers: { 'x-api-key': apiKey } });

    it('pages of 2 are disjoint, newest first, and cover all 5 jobs', async () => {
      const pages: Listed[][] = [];
      let cursor: string | undefined;
      do {
        const res = await asPages(
          `/api/v1/jobs?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
        );
        expect(res.status, res.text).toBe(200);
        expect(res.json.jobs.length).toBeLessThanOrEqual(2);
        pages.push(res.json.jobs);
        cursor = res.json.next_cursor;
        if (cursor !== undefined) expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
        expect(pages.length).toBeLessThanOrEqual(4);
      } while (cursor);

      expect(pages.slice(0, 3).map((p) => p.length)).toEqual([2, 2, 1]);
      const seen = pages.flat().map((j) => j.job_id);
      expect(new Set(seen).size).toBe(seen.length);
      expect(seen).toEqual([...ids].reverse());
      const times = pages.flat().map((j) => j.created_at);
      expect(times).toEqual([...times].sort().reverse());
    });

    it.each([
      ['not base64 JSON', 'not-a-cursor'],
      ['base64 of a JSON number', Buffer.from('5').toString('base64url')],
      ['longer than any cursor', 'A'.repeat(3000)],
    ])('a garbage cursor (%s) is a 400 naming cursor', async (_what, cursor) => {
      const res = await asPages(`/api/v1/jobs?limit=2&cursor=${cursor}`);
      expect(res.status, res.text).toBe(400);
      expect(res.json.code).toBe('bad_request');
      expect(res.json.issues.map((i: { path: string }) => i.path)).toContain('cursor');
    });

    it("a forged cursor in the tenant's own partition but without a full key is a 400, not a 500", async () => {
      const forged = Buffer.from(JSON.stringify({ GSI1PK: 'TENANT#tenant-pages' })).toString('base64url');
      const res = await asPages(`/api/v1/jobs?limit=2&cursor=${forged}`);
      expect(res.status, res.text).toBe(400);
      expect(res.json.code).toBe('bad_request');
      expect(res.json.issues.map((i: { path: string }) => i.path)).toContain('cursor');
    });

    it("tenant B cannot page with tenant A's cursor", async () => {
      const first = await asPages('/api/v1/jobs?limit=2');
      const cursor = first.json.next_cursor as string;
      expect(cursor).toBeTypeOf('string');
      const res = await stack.api('GET', `/api/v1/jobs?limit=2&cursor=${encodeURIComponent(cursor)}`, {
        headers: { 'x-api-key': keyB },
      });
      expect(res.status).toBe(400);
      expect(res.json.code).toBe('bad_request');
      expect(res.json.issues.map((i: { path: string }) => i.path)).toContain('cursor');
      expect(res.text).not.toContain('page job');
    });

    it.each(['0', '1000', '-1', '2.5', 'abc'])('limit=%s is a 400 naming limit', async (limit) => {
      const res = await asPages(`/api/v1/jobs?limit=${limit}`);
      expect(res.status).toBe(400);
      expect(res.json.code).toBe('bad_request');
      expect(res.json.issues.map((i: { path: string }) => i.path)).toContain('limit');
    });

    it('an unknown query parameter is a 400 naming it', async () => {
      const res = await asPages('/api/v1/jobs?sort=asc');
      expect(res.status).toBe(400);
      expect(res.json.issues.some((i: { message: string }) => i.message.includes('sort'))).toBe(true);
    });
  });

  describe('worker routes take only the task token', () => {
    let jobId: string;
    beforeAll(async () => {
      jobId = (await submit(stack.apiKey)).job_id;
    });

    it('an API key (and no task token) is a 401', async () => {
      const res = await stack.api('GET', `/api/v1/jobs/${jobId}/tasks/1/assignment`);
      expect(res.status).toBe(401);
      expect(res.json).toEqual({ error: expect.stringMatching(/X-Task-Token/), code: 'unauthorized' });
    });

    it('a made-up token in the right format is a 401 on every worker route', async () => {
      const token = `tt1.${jobId}.1.1.${randomBytes(32).toString('base64url')}`;
      expect(token).toMatch(/\.[A-Za-z0-9_-]{43}$/);
      const headers = { 'x-api-key': '', 'x-task-token': token };
      const assignment = await stack.api('GET', `/api/v1/jobs/${jobId}/tasks/1/assignment`, { headers });
      expect(assignment.status).toBe(401);
      expect(assignment.json.code).toBe('unauthorized');
      const uploads = await stack.api('POST', `/api/v1/jobs/${jobId}/tasks/1/uploads`, {
        headers,
        body: { attempt: 1, files: ['evil.txt'] },
      });
      expect(uploads.status).toBe(401);
      const result = await stack.api('POST', `/api/v1/jobs/${jobId}/tasks/1/result`, {
        headers,
        body: { attempt: 1, status: 'succeeded', output: 'forged' },
      });
      expect(result.status).toBe(401);
    });

    it('the forged calls did not touch the task', async () => {
      expect(await stack.waitForJob(jobId)).toBe('completed');
      const job = await stack.api('GET', `/api/v1/jobs/${jobId}`);
      expect(job.text).not.toContain('forged');
    });
  });
});
