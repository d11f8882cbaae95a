/**
 * The model gateway against a hostile worker: its task token is its only
 * model credential, usable only while its attempt runs, only for priced
 * models, only within the budgets, and what the worker says it spent counts
 * for nothing. The orchestrator's key never reaches it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { priceOf, priceUsage, usageOf } from '../../functions/core/model-metering.ts';
import { formatTaskToken } from '../../functions/core/tokens.ts';
import { type HeldWorker, type HostileStack, startHostileStack } from '../support/hostile-worker.ts';
import { type MessagesApi, startMessagesApi, text } from '../support/messages-api.ts';

const UPSTREAM_KEY = 'sk-ant-the-orchestrators-own-key-never-for-workers';
const MODEL = 'claude-opus-4-8';
const USAGE = { input_tokens: 4000, output_tokens: 800 };

describe('model gateway attacks', () => {
  let api: MessagesApi;
  let hostile: HostileStack;
  const jobs: string[] = [];

  beforeAll(async () => {
    api = await startMessagesApi(async (request) => {
      if (request.prompt.includes('slow')) await new Promise((r) => setTimeout(r, 250));
      return { ...text('an answer'), usage: USAGE };
    });
    hostile = await startHostileStack(
      'gateway: {enabled: true}\nworkers: {max_workers: 8}',
      {},
      { modelEnv: { ANTHROPIC_API_KEY: UPSTREAM_KEY, ANTHROPIC_BASE_URL: api.url }, holdMs: 120_000 },
    );
  });
  afterAll(async () => {
    if (!hostile) return;
    await Promise.all(jobs.map((id) => hostile.waitForJob(id, 90_000).catch(() => undefined)));
    await hostile.stop();
    await api?.stop();
  });

  const capture = async (
    label: string,
    extra = '',
    config: Record<string, unknown> = {},
  ): Promise<HeldWorker> => {
    const w = await hostile.capture({
      request: `gateway attack ${label}`,
      tasks: [{ prompt: `attack ${label} [[hold:${label}]]${extra}` }],
      config,
    });
    jobs.push(w.jobId);
    return w;
  };

  function call(headers: Record<string, string>, body: Record<string, unknown> = {}) {
    return fetch(`${hostile.apiUrl}/gateway/v1/messages?beta=true`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01', ...headers },
      body: JSON.stringify({
        model: MODEL,
        max_tokens: 1000,
        stream: true,
        messages: [{ role: 'user', content: 'hello' }],
        ...body,
      }),
      signal: AbortSignal.timeout(60_000),
    }).then(async (res) => ({ status: res.status, body: await res.text() }));
  }

  const errorType = (body: string) => (JSON.parse(body) as { error?: { type?: string } }).error?.type;

  it('attack: call the model without a token', async () => {
    const before = api.requests.length;
    const res = await call({});
    expect(res.status).toBe(401);
    expect(errorType(res.body)).toBe('authentication_error');
    expect(api.requests.length).toBe(before);
  });

  it("attack: call the model with a forged token naming a live worker's task", async () => {
    const w = await capture('forged');
    const before = api.requests.length;
    const forged = formatTaskToken(
      { jobId: w.jobId, taskNo: w.taskNo, attempt: w.attempt },
      Buffer.alloc(32, 7),
    );
    const ways: Record<string, string>[] = [{ 'x-api-key': forged }, { authorization: `Bearer ${forged}` }];
    for (const headers of ways) {
      const res = await call(headers);
      expect(res.status).toBe(401);
    }
    expect(api.requests.length).toBe(before);
    const task = await hostile.deps.tasks.getTask(w.jobId, w.taskNo);
    expect(task?.meter).toMatchObject({ requests: 0, committedUsd: 0, meteredUsd: 0 });
    await w.release();
  });

  it('attack: keep calling the model with the token after the attempt ended', async () => {
    const w = await capture('ended');
    await w.release();
    expect(await hostile.waitForJob(w.jobId, 60_000)).toBe('completed');
    const rootBefore = (await hostile.deps.jobs.getJob(w.jobId))?.budget;
    const before = api.requests.length;
    const res = await call({ 'x-api-key': w.token });
    expect(res.status).toBe(403);
    expect(errorType(res.body)).toBe('permission_error');
    expect(api.requests.length).toBe(before);
    expect((await hostile.deps.jobs.getJob(w.jobId))?.budget).toEqual(rootBefore);
  });

  it('attack: use a model that has no price, so its spend could not be metered', async () => {
    const w = await capture('unpriced');
    const before = api.requests.length;
    for (const model of ['claude-opus-9-unreleased', '__proto__', 'constructor']) {
      const res = await call({ 'x-api-key': w.token }, { model });
      expect(res.status, model).toBe(400);
      expect(res.body).toContain('gateway.prices');
    }
    expect(api.requests.length).toBe(before);
    await w.release();
  });

  it("attack: send its own credentials along, hoping the upstream bills someone else's key", async () => {
    const w = await capture('smuggle');
    const before = api.requests.length;
    const res = await call({
      'x-api-key': w.token,
      authorization: 'Bearer sk-ant-attacker-key',
      'x-forwarded-for': '10.0.0.1',
      cookie: 'session=stolen',
    });
    expect(res.status).toBe(200);
    const seen = api.requests.slice(before);
    expect(seen).toHaveLength(1);
    expect(seen[0]?.headers['x-api-key']).toBe(UPSTREAM_KEY);
    expect(seen[0]?.headers.authorization).toBeUndefined();
    expect(seen[0]?.headers.cookie).toBeUndefined();
    expect(JSON.stringify(seen[0]?.headers)).not.toContain(w.token);
    await w.release();
  });

  it('attack: exceed the budget with many parallel requests', async () => {
    const w = await capture('flood', '', { max_budget_usd: 0.4 });
    const results = await Promise.all(
      Array.from({ length: 40 }, () =>
        call({ 'x-api-key': w.token }, { messages: [{ role: 'user', content: 'slow flood' }] }),
      ),
    );
    const ok = results.filter((r) => r.status === 200).length;
    expect(results.some((r) => r.status === 402)).toBe(true);
    const root = await hostile.deps.jobs.getJob(w.jobId);
    expect(root?.budget?.spentUsd ?? 99).toBeLessThanOrEqual(0.4);
    expect(root?.budget?.committedUsd).toBeCloseTo(root?.budget?.spentUsd ?? -1, 6);
    const price = priceOf(hostile.deps.settings.gateway?.prices ?? {}, MODEL);
    if (!price) throw new Error('no price');
    expect(root?.budget?.spentUsd).toBeCloseTo(ok * priceUsage(usageOf(USAGE), price), 6);
    expect((await hostile.deps.tasks.getTask(w.jobId, w.taskNo))?.meter?.open).toEqual({});
    await w.release();
  });

  it('attack: report cost_usd 0 after spending through the gateway', async () => {
    const w = await capture('free-lunch', ' [[cost:0]]');
    for (let i = 0; i < 3; i++) expect((await call({ 'x-api-key': w.token })).status).toBe(200);
    await w.release();
    expect(await hostile.waitForJob(w.jobId, 60_000)).toBe('completed');
    const price = priceOf(hostile.deps.settings.gateway?.prices ?? {}, MODEL);
    if (!price) throw new Error('no price');
    const metered = 3 * priceUsage(usageOf(USAGE), price);
    const result = (await hostile.api('GET', `/api/v1/jobs/${w.jobId}`)).json;
    const task = result.results.tasks[0];
    expect(task.cost_usd).toBeCloseTo(metered, 6);
    expect(task.reported_cost_usd).toBe(0);
    expect(result.results.summary.total_cost_usd).toBeCloseTo(metered, 6);
    expect((await hostile.deps.jobs.getJob(w.jobId))?.budget?.spentUsd).toBeCloseTo(metered, 6);
  });

  it("attack: read the orchestrator's ANTHROPIC_API_KEY from the worker's environment", async () => {
    const w = await capture('env');
    expect(Object.values(w.env)).not.toContain(UPSTREAM_KEY);
    expect(JSON.stringify(w.probes)).not.toContain(UPSTREAM_KEY);
    // What it holds instead: its own task token, good only at the gateway, only while it runs.
    expect(w.env.ANTHROPIC_API_KEY).toBe(w.token);
    expect(w.env.ANTHROPIC_BASE_URL).toBe(`${hostile.apiUrl}/gateway`);
    expect(w.env.ANTHROPIC_AUTH_TOKEN).toBeUndefined();
    await w.release();
  });
});
