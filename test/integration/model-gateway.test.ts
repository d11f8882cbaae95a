/**
 * The model gateway in local mode, against the scripted Messages API as its
 * upstream: a held worker's task token is the key, exactly as the CLI sends
 * it. Streams pass through, usage is metered into the attempt and the tree,
 * budgets refuse with Anthropic-shaped errors, concurrent requests never
 * overspend, and every reservation is settled however the request ends.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ModelUpstream } from '../../functions/adapters/model-upstream.ts';
import type { JobRecord, TaskRecord } from '../../functions/core/model.ts';
import { priceOf, priceUsage, usageOf } from '../../functions/core/model-metering.ts';
import { serveModelRequest } from '../../functions/services/model-gateway.ts';
import { type HeldWorker, type HostileStack, startHostileStack } from '../support/hostile-worker.ts';
import { type MessagesApi, type ScriptedReply, startMessagesApi, text } from '../support/messages-api.ts';

const UPSTREAM_KEY = 'sk-ant-upstream-key-only-the-gateway-holds';
const MODEL = 'claude-opus-4-8';
const USAGE = { input_tokens: 2000, output_tokens: 500, cache_read_input_tokens: 3000 };
/** 100,000 output tokens of opus: $2.50, more than the $2 attempts of this file. */
const PRICEY_USAGE = { input_tokens: 100, output_tokens: 100_000 };

let api: MessagesApi;
let stack: HostileStack;
let inFlight = 0;
let peakInFlight = 0;

/** Every reply is text; the prompt says how: `slow` holds it 300 ms, `boom` fails it upstream. */
async function script(request: { prompt: string }): Promise<ScriptedReply> {
  inFlight += 1;
  peakInFlight = Math.max(peakInFlight, inFlight);
  try {
    if (request.prompt.includes('boom')) throw new Error('the upstream broke');
    if (request.prompt.includes('slow')) await new Promise((r) => setTimeout(r, 300));
    if (request.prompt.includes('pricey')) return { ...text('a long answer'), usage: PRICEY_USAGE };
    return { ...text('metered answer'), usage: USAGE };
  } finally {
    inFlight -= 1;
  }
}

function messagesBody(prompt: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    model: MODEL,
    max_tokens: 1000,
    stream: true,
    messages: [{ role: 'user', content: prompt }],
    ...extra,
  };
}

async function gateway(
  credential: Record<string, string>,
  body: unknown,
  path = '/v1/messages?beta=true',
  method = 'POST',
) {
  const res = await fetch(`${stack.apiUrl}/gateway${path}`, {
    method,
    headers: {
      'content-type': 'application/json',
      'anthropic-version': '2023-06-01',
      'anthropic-beta': 'claude-code-20250219',
      ...credential,
    },
    ...(method === 'POST' ? { body: JSON.stringify(body) } : {}),
    signal: AbortSignal.timeout(60_000),
  });
  const raw = await res.text();
  let json: { type?: string; error?: { type: string; message: string } } | undefined;
  try {
    json = JSON.parse(raw);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, raw, json };
}

const asKey = (w: HeldWorker) => ({ 'x-api-key': w.token });

async function taskOf(w: HeldWorker): Promise<TaskRecord> {
  const task = await stack.deps.tasks.getTask(w.jobId, w.taskNo);
  if (!task) throw new Error('task gone');
  return task;
}

async function rootOf(w: HeldWorker): Promise<JobRecord> {
  const job = await stack.deps.jobs.getJob(w.jobId);
  if (!job?.budget) throw new Error('no budget');
  return job;
}

function hold(label: string, config: Record<string, unknown> = {}) {
  return stack.capture({
    request: `model gateway ${label}`,
    tasks: [{ prompt: `gateway test [[hold:${label}]]` }],
    config,
  });
}

const opus = () => {
  const price = priceOf(stack.deps.settings.gateway?.prices ?? {}, MODEL);
  if (!price) throw new Error('no opus price');
  return price;
};

beforeAll(async () => {
  api = await startMessagesApi(script);
  stack = await startHostileStack(
    'gateway: {enabled: true}\nlimits: {max_task_budget_usd: 2}\nworkers: {max_workers: 8}',
    {},
    { modelEnv: { ANTHROPIC_API_KEY: UPSTREAM_KEY, ANTHROPIC_BASE_URL: api.url }, holdMs: 120_000 },
  );
});

afterAll(async () => {
  await stack?.stop();
  await api?.stop();
});

describe('the model gateway', () => {
  it('answers the CLI connectivity probe and gives paths it does not serve a quick Anthropic-shaped 404', async () => {
    const head = await fetch(`${stack.apiUrl}/gateway`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    const other = await gateway({}, undefined, '/v1/models', 'GET');
    expect(other.status).toBe(404);
    expect(other.json).toMatchObject({ type: 'error', error: { type: 'not_found_error' } });
  });

  it('streams the answer through, with the deployment key upstream and the token nowhere past the gateway', async () => {
    const w = await hold('stream');
    const before = api.requests.length;
    const res = await gateway(asKey(w), messagesBody('say something'));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const events = [...res.raw.matchAll(/^event: (\w+)$/gm)].map((m) => m[1]);
    expect(events).toEqual([
      'message_start',
      'content_block_start',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
    expect(res.raw).toContain('metered answer');

    const seen = api.requests.slice(before);
    expect(seen).toHaveLength(1);
    expect(seen[0]?.headers['x-api-key']).toBe(UPSTREAM_KEY);
    expect(seen[0]?.headers['anthropic-beta']).toBe('claude-code-20250219');
    expect(JSON.stringify(seen[0]?.headers)).not.toContain(w.token);
    await w.release();
  });

  it('meters exactly the usage the answer reported, on the attempt and on the tree, with nothing left reserved', async () => {
    const w = await hold('metering');
    const rootBefore = await rootOf(w);
    // Bearer (ANTHROPIC_AUTH_TOKEN) is taken as well as x-api-key.
    const res = await gateway({ authorization: `Bearer ${w.token}` }, messagesBody('meter me'));
    expect(res.status).toBe(200);
    const cost = priceUsage(usageOf(USAGE), opus());
    expect(cost).toBeGreaterThan(0);

    const task = await taskOf(w);
    expect(task.meter).toMatchObject({ attempt: w.attempt, requests: 1, open: {} });
    expect(task.meter?.meteredUsd).toBeCloseTo(cost, 6);
    expect(task.meter?.committedUsd).toBeCloseTo(cost, 6);
    const root = await rootOf(w);
    expect(root.budget?.spentUsd ?? 0).toBeCloseTo((rootBefore.budget?.spentUsd ?? 0) + cost, 6);
    expect(root.budget?.committedUsd).toBeCloseTo(root.budget?.spentUsd ?? -1, 6);
    await w.release();
  });

  it('meters a non-streamed answer from its JSON body', async () => {
    const w = await hold('non-streamed');
    const res = await gateway(asKey(w), messagesBody('whole answer at once', { stream: false }));
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ type: 'message', usage: { input_tokens: 2000, output_tokens: 500 } });
    const task = await taskOf(w);
    expect(task.meter?.open).toEqual({});
    expect(task.meter?.meteredUsd).toBeCloseTo(priceUsage(usageOf(USAGE), opus()), 6);
    await w.release();
  });

  it('refuses a model that is not in the price table, naming it and the configured ones', async () => {
    const w = await hold('unknown-model');
    const before = api.requests.length;
    const res = await gateway(asKey(w), messagesBody('x', { model: 'claude-imaginary-9' }));
    expect(res.status).toBe(400);
    expect(res.json?.error?.type).toBe('invalid_request_error');
    expect(res.json?.error?.message).toContain('claude-imaginary-9');
    expect(res.json?.error?.message).toContain('claude-opus-4-8');
    expect(api.requests.length).toBe(before);
    await w.release();
  });

  it("lets an attempt use its whole budget, at most one request's worst case past it, then refuses with a 402 billing_error, sending nothing upstream", async () => {
    const w = await hold('attempt-budget');
    // A request that may cost $2.50 is admitted while the $2 attempt has anything left.
    const first = await gateway(asKey(w), messagesBody('pricey', { max_tokens: 100_000 }));
    expect(first.status).toBe(200);
    const afterFirst = await taskOf(w);
    const spent = afterFirst.meter?.meteredUsd ?? 0;
    expect(spent).toBeCloseTo(priceUsage(usageOf(PRICEY_USAGE), opus()), 6);
    expect(spent).toBeGreaterThan(2);

    const before = api.requests.length;
    const res = await gateway(asKey(w), messagesBody('one more'));
    expect(res.status).toBe(402);
    expect(res.headers.get('x-should-retry')).toBe('false');
    expect(res.json).toMatchObject({ type: 'error', error: { type: 'billing_error' } });
    expect(res.json?.error?.message).toMatch(/budget exhausted: this attempt .*max_task_budget_usd/);
    expect(api.requests.length).toBe(before);
    const task = await taskOf(w);
    expect(task.meter).toMatchObject({ open: {} });
    expect(task.meter?.meteredUsd).toBeCloseTo(spent, 9);
    expect(task.meter?.committedUsd).toBeCloseTo(spent, 9);
    await w.release();
  });

  it("refuses with a 402 when the tree's budget cannot cover a request, and notes it so no retry is wasted", async () => {
    const w = await hold('tree-budget', { max_budget_usd: 0.05 });
    const res = await gateway(asKey(w), messagesBody('over the tree'));
    expect(res.status).toBe(402);
    expect(res.json?.error?.message).toMatch(/budget exhausted: the job tree .*max_budget_usd \$0\.0500/);
    const task = await taskOf(w);
    expect(task.meter?.refusal).toContain('the job tree');
    const root = await rootOf(w);
    expect(root.budget).toMatchObject({ committedUsd: 0, spentUsd: 0 });
    await w.release();
  });

  it('never lets concurrent requests overspend: reservations are conditional, and all of them settle', async () => {
    const w = await hold('race', { max_budget_usd: 0.5 });
    peakInFlight = 0;
    const calls = await Promise.all(
      Array.from({ length: 30 }, (_, i) => gateway(asKey(w), messagesBody(`slow race ${i}`))),
    );
    const statuses = calls.map((c) => c.status);
    const ok = statuses.filter((s) => s === 200).length;
    // Each request may cost up to ~$0.068 (its body plus 1,000 output tokens of opus): at most 7 fit $0.50 at once.
    expect(peakInFlight).toBeLessThanOrEqual(7);
    expect(ok).toBeGreaterThan(0);
    expect(statuses.every((s) => s === 200 || s === 402)).toBe(true);
    expect(statuses).toContain(402);

    const root = await rootOf(w);
    const spent = root.budget?.spentUsd ?? 0;
    expect(spent).toBeLessThanOrEqual(0.5);
    expect(spent).toBeCloseTo(ok * priceUsage(usageOf(USAGE), opus()), 6);
    expect(root.budget?.committedUsd).toBeCloseTo(spent, 6);
    const task = await taskOf(w);
    expect(task.meter?.open).toEqual({});
    expect(task.meter?.meteredUsd).toBeCloseTo(spent, 6);
    await w.release();
  });

  it('settles an upstream error to nothing and passes the error on', async () => {
    const w = await hold('upstream-error');
    const res = await gateway(asKey(w), messagesBody('boom'));
    expect(res.status).toBe(500);
    expect(res.json).toMatchObject({ type: 'error', error: { type: 'api_error' } });
    const task = await taskOf(w);
    expect(task.meter).toMatchObject({ requests: 1, committedUsd: 0, meteredUsd: 0, open: {} });
    expect((await rootOf(w)).budget).toMatchObject({ committedUsd: 0, spentUsd: 0 });
    await w.release();
  });

  it('refuses the token of an attempt that has ended', async () => {
    const w = await hold('ended');
    await w.release();
    expect(await stack.waitForJob(w.jobId)).toBe('completed');
    const before = api.requests.length;
    const res = await gateway(asKey(w), messagesBody('after the end'));
    expect(res.status).toBe(403);
    expect(res.json?.error?.type).toBe('permission_error');
    expect(api.requests.length).toBe(before);
  });

  it('refuses a missing or forged token with authentication_error', async () => {
    const none = await gateway({}, messagesBody('no token'));
    expect(none.status).toBe(401);
    expect(none.json?.error?.type).toBe('authentication_error');
  });
});

describe('a request that ends early', () => {
  /** An upstream that sends message_start and one delta, then stalls until aborted (or fails, with `fail`). */
  function stallingUpstream(fail: boolean): ModelUpstream & { aborted: () => boolean } {
    let aborted = false;
    return {
      aborted: () => aborted,
      async send(req) {
        req.signal.addEventListener('abort', () => {
          aborted = true;
        });
        async function* body() {
          yield Buffer.from(
            'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":1000,"output_tokens":1}}}\n\n',
          );
          yield Buffer.from(
            `event: content_block_delta\ndata: ${JSON.stringify({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'z'.repeat(400) } })}\n\n`,
          );
          if (fail) throw new Error('connection reset');
          await new Promise<void>((resolve) => req.signal.addEventListener('abort', () => resolve()));
        }
        return { status: 200, headers: { 'content-type': 'text/event-stream' }, body: body() };
      },
    };
  }

  for (const fail of [false, true]) {
    it(
      fail
        ? 'an upstream that breaks mid-stream: the client gets an error event and the request settles what it delivered'
        : 'a client that stops reading mid-stream: the upstream request stops and the request settles what it delivered',
      async () => {
        const w = await hold(fail ? 'cut-upstream' : 'cut-client');
        const upstream = stallingUpstream(fail);
        const answer = await serveModelRequest(
          { ...stack.deps, upstream },
          {
            method: 'POST',
            path: '/v1/messages',
            headers: { 'x-api-key': w.token },
            body: JSON.stringify(messagesBody('cut short')),
          },
        );
        expect(answer.status).toBe(200);
        const it = answer.body[Symbol.asyncIterator]();
        const chunks: string[] = [];
        for (let i = 0; i < 2; i++) chunks.push(Buffer.from((await it.next()).value).toString());
        if (fail) {
          const last = await it.next();
          expect(Buffer.from(last.value).toString()).toContain('"type":"error"');
          expect((await it.next()).done).toBe(true);
        } else {
          await it.return?.();
          expect(upstream.aborted()).toBe(true);
        }
        const charged = (1000 * 5 + 400 * 25) / 1e6;
        const task = await taskOf(w);
        expect(task.meter?.open).toEqual({});
        expect(task.meter?.meteredUsd).toBeCloseTo(charged, 6);
        const root = await rootOf(w);
        expect(root.budget?.spentUsd).toBeCloseTo(charged, 6);
        expect(root.budget?.committedUsd).toBeCloseTo(charged, 6);
        await w.release();
      },
    );
  }

  it('a reservation left open when the attempt ends is charged whole, once', async () => {
    const w = await hold('left-open');
    const upstream = stallingUpstream(false);
    const answer = await serveModelRequest(
      { ...stack.deps, upstream },
      {
        method: 'POST',
        path: '/v1/messages',
        headers: { 'x-api-key': w.token },
        body: JSON.stringify(messagesBody('never read')),
      },
    );
    expect(answer.status).toBe(200);
    const reserved = Object.values((await taskOf(w)).meter?.open ?? {});
    expect(reserved).toHaveLength(1);
    // The worker finishes while the answer was never read: its attempt's end charges the reservation.
    await w.release();
    expect(await stack.waitForJob(w.jobId)).toBe('completed');
    const root = await rootOf(w);
    expect(root.budget?.spentUsd).toBeCloseTo(reserved[0] ?? -1, 6);
    expect(root.budget?.committedUsd).toBeCloseTo(reserved[0] ?? -1, 6);
    // The body stopped late settles nothing more.
    await answer.body[Symbol.asyncIterator]().return?.();
    expect((await rootOf(w)).budget?.spentUsd).toBeCloseTo(reserved[0] ?? -1, 6);
    const result = (await stack.api('GET', `/api/v1/jobs/${w.jobId}`)).json;
    expect(result.results.tasks[0].cost_usd).toBeCloseTo(reserved[0] ?? -1, 6);
  });
});
