import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../functions/core/tokens.ts';
import { startTestStack, type TestStack } from '../support/harness.ts';

describe('tenants and API keys, end to end', () => {
  let stack: TestStack;
  let tenantB: string;
  beforeAll(async () => {
    stack = await startTestStack('workers: {max_workers: 8}');
    tenantB = await stack.createApiKey('tenant-b', 'b-key');
  });
  afterAll(async () => {
    await stack?.stop();
  });

  const as = (apiKey: string) => ({ headers: { 'x-api-key': apiKey } });

  async function submit(body: unknown, apiKey: string): Promise<string> {
    const res = await stack.api('POST', '/api/v1/orchestrate', { body, ...as(apiKey) });
    expect(res.status).toBe(202);
    return res.json.job_id as string;
  }

  async function listedIds(apiKey: string): Promise<string[]> {
    const res = await stack.api('GET', '/api/v1/jobs?limit=100', as(apiKey));
    expect(res.status).toBe(200);
    return res.json.jobs.map((j: { job_id: string }) => j.job_id);
  }

  /** Every caller route, for one job id. */
  const callerRoutes = (jobId: string): [string, string, unknown?][] => [
    ['GET', `/api/v1/jobs/${jobId}`],
    ['GET', `/api/v1/jobs/${jobId}/status`],
    ['GET', `/api/v1/jobs/${jobId}/report`],
    ['POST', `/api/v1/jobs/${jobId}/cancel`],
    ['GET', '/api/v1/jobs'],
    ['POST', '/api/v1/orchestrate', { request: 'more', tasks: [{ prompt: 'x' }] }],
  ];

  it("a tenant cannot see, list or cancel another tenant's jobs: each is a 404", async () => {
    const jobA = await submit(
      { request: 'tenant a work', tasks: [{ prompt: 'a work [[sleep:2500]]' }] },
      stack.apiKey,
    );
    const jobB = await submit({ request: 'tenant b work', tasks: [{ prompt: 'b work' }] }, tenantB);
    const unknown = 'aaaaaaaaaaaaaaaaaaaa';

    for (const [method, path] of [
      ['GET', `/api/v1/jobs/${jobA}`],
      ['GET', `/api/v1/jobs/${jobA}/status`],
      ['GET', `/api/v1/jobs/${jobA}/report`],
      ['POST', `/api/v1/jobs/${jobA}/cancel`],
    ] as const) {
      const res = await stack.api(method, path, as(tenantB));
      expect(res.status, `${method} ${path} as tenant B`).toBe(404);
      expect(res.json.code).toBe('not_found');
      // Exactly the answer for a job that does not exist: nothing tells B the job is there.
      const none = await stack.api(method, path.replace(jobA, unknown), as(tenantB));
      expect(none.status).toBe(404);
      expect(res.json.error.replace(jobA, unknown)).toBe(none.json.error);
      expect(res.text).not.toMatch(/tenant a work|a work/);
    }
    // The same holds the other way round.
    for (const path of [
      `/api/v1/jobs/${jobB}`,
      `/api/v1/jobs/${jobB}/status`,
      `/api/v1/jobs/${jobB}/report`,
    ]) {
      expect((await stack.api('GET', path)).status, `GET ${path} as tenant A`).toBe(404);
    }

    expect(await listedIds(tenantB)).toEqual([jobB]);
    const listedForA = await listedIds(stack.apiKey);
    expect(listedForA).toContain(jobA);
    expect(listedForA).not.toContain(jobB);

    // B's cancel changed nothing: A's job runs on and finishes normally.
    expect((await stack.deps.jobs.getJob(jobA))?.status).toBe('running');
    expect(stack.logs.filter((l) => l.message === 'job cancel requested' && l.extra?.jobId === jobA)).toEqual(
      [],
    );
    expect(await stack.waitForJob(jobA)).toBe('completed');
    expect(await stack.waitForJob(jobB)).toBe('completed');
    const own = await stack.api('GET', `/api/v1/jobs/${jobA}`);
    expect(own.status).toBe(200);
    expect(own.json.results.tasks[0].status).toBe('succeeded');
    // Each tenant sees its own job's report.
    expect((await stack.api('GET', `/api/v1/jobs/${jobB}/report`, as(tenantB))).status).toBe(200);
  });

  it('a revoked key gets 401 at once on every caller route; another key of the tenant keeps working', async () => {
    const second = await stack.createApiKey('tenant-a', 'second');
    const running = await submit(
      { request: 'made with the second key', tasks: [{ prompt: 'second key work [[sleep:2500]]' }] },
      second,
    );
    expect((await stack.api('GET', `/api/v1/jobs/${running}/status`, as(second))).status).toBe(200);

    expect(await stack.deps.keys.revokeApiKey(sha256Hex(second), new Date().toISOString())).toBe(true);
    const record = (await stack.deps.keys.listApiKeys()).find((k) => k.sha256 === sha256Hex(second));
    expect(record?.revokedAt).toBeDefined();
    expect(record?.tenant).toBe('tenant-a');

    const jobsBefore = (await listedIds(stack.apiKey)).length;
    const refusalsBefore = stack.logs.filter((l) => l.message === 'request refused by authorizer').length;
    for (const [method, path, body] of callerRoutes(running)) {
      const res = await stack.api(method, path, { ...as(second), ...(body ? { body } : {}) });
      expect(res.status, `${method} ${path} with the revoked key`).toBe(401);
      expect(res.json.code).toBe('unauthorized');
    }
    expect(
      stack.logs.filter((l) => l.message === 'request refused by authorizer').length - refusalsBefore,
    ).toBe(callerRoutes(running).length);
    // Neither the refused submit nor the refused cancel did anything.
    expect(await listedIds(stack.apiKey)).toHaveLength(jobsBefore);
    expect((await stack.deps.jobs.getJob(running))?.status).toBe('running');

    // The tenant's other key still works and still sees the job the revoked key created.
    expect(await listedIds(stack.apiKey)).toContain(running);
    const view = await stack.api('GET', `/api/v1/jobs/${running}`);
    expect(view.status).toBe(200);
    expect((await stack.api('GET', `/api/v1/jobs/${running}/status`)).status).toBe(200);
    expect(await stack.waitForJob(running)).toBe('completed');
    const report = await stack.api('GET', `/api/v1/jobs/${running}/report`);
    expect(report.status).toBe(200);
    expect(report.text).toMatch(/completed/);
    const fresh = await submit({ request: 'still allowed', tasks: [{ prompt: 'fine' }] }, stack.apiKey);
    expect(await stack.waitForJob(fresh)).toBe('completed');

    // Revoking again is refused (already revoked), and the key stays dead; no key and a made-up key are 401 too.
    expect(await stack.deps.keys.revokeApiKey(sha256Hex(second), new Date().toISOString())).toBe(false);
    expect((await stack.api('GET', '/api/v1/jobs', as(second))).status).toBe(401);
    expect((await stack.api('GET', '/api/v1/jobs', as('cok_not-a-real-key'))).status).toBe(401);
    expect((await stack.api('GET', '/api/v1/jobs', as(''))).status).toBe(401);
  });
});
