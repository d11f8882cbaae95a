import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobEvent } from '../../functions/core/progress.ts';
import { startTestStack, type TestStack } from '../support/harness.ts';

/** When the test double printed each `[[steps]]` tool call (epoch ms), by step number. */
async function stepTimes(stack: TestStack): Promise<Map<number, number>> {
  const text = await readFile(join(stack.doubleState, 'steps.jsonl'), 'utf8').catch(() => '');
  const times = new Map<number, number>();
  for (const line of text.split('\n').filter(Boolean)) {
    const { step, at } = JSON.parse(line) as { step: number; at: number };
    times.set(step, at);
  }
  return times;
}

describe('following a job while it runs: events, live logs, heartbeats', () => {
  let stack: TestStack;

  beforeAll(async () => {
    stack = await startTestStack('workers: {max_workers: 2, max_retries: 1, progress_interval_ms: 500}');
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it("streams each worker's turns, tools and tokens as they happen, and ends when the job does", async () => {
    const { job_id: jobId } = await stack.client.orchestrate({
      request: 'steps',
      tasks: [{ title: 'Stepper', prompt: 'Take four steps [[steps:4:800]]' }],
    });
    const events: (JobEvent & { seenAt: number })[] = [];
    for await (const e of stack.client.events(jobId, { waitSec: 5 }))
      events.push({ ...e, seenAt: Date.now() });

    expect(events.map((e) => e.kind)[0]).toBe('started');
    expect(events.at(-1)).toMatchObject({ kind: 'finished', status: 'succeeded', worker_id: 'worker_1' });
    const steps = events.filter((e) => e.tool === 'Bash');
    expect(steps.map((e) => e.detail)).toEqual(['echo step 1', 'echo step 2', 'echo step 3', 'echo step 4']);
    expect(steps.map((e) => e.turn)).toEqual([1, 2, 3, 4]);
    // Tokens so far only grow.
    const inputs = steps.map((e) => e.tokens?.input ?? 0);
    expect([...inputs].sort((a, b) => a - b)).toEqual(inputs);
    expect(inputs.at(-1)).toBe(100 + 200 + 300 + 400);
    // Seen by a follower within 2 s of the worker doing it.
    const printed = await stepTimes(stack);
    for (const e of steps) {
      const step = Number(e.detail?.split(' ').at(-1));
      expect(e.seenAt - (printed.get(step) as number), `step ${step}`).toBeLessThan(2_000);
    }
    // Event ids only grow, so `after` resumes exactly.
    const ids = events.map((e) => e.id);
    expect([...ids].sort()).toEqual(ids);
    const resumed: JobEvent[] = [];
    for await (const e of stack.client.events(jobId, { after: ids[1] as string, waitSec: 1 }))
      resumed.push(e);
    expect(resumed.map((e) => e.id)).toEqual(ids.slice(2));
  });

  it("shows a worker's log while it runs, then the uploaded log; each attempt keeps its own", async () => {
    const { job_id: jobId } = await stack.client.orchestrate({
      request: 'logs',
      tasks: [{ title: 'Retried', prompt: 'Fail once then work [[fail_times:1]] [[steps:3:700]]' }],
    });
    // While attempt 1 runs: its live log grows and says what Claude does.
    let live = await stack.client.log(jobId, 'worker_1');
    for (let i = 0; i < 50 && !live.text.includes('echo step 2'); i++) {
      await new Promise((r) => setTimeout(r, 200));
      live = await stack.client.log(jobId, 'worker_1', { attempt: 1 });
    }
    expect(live).toMatchObject({ worker_id: 'worker_1', attempt: 1, source: 'live', done: false });
    expect(live.text).toMatch(/\[turn 2\] Bash echo step 2/);
    // Reading on from `next` gives only what came after.
    const more = await stack.client.log(jobId, 'worker_1', { attempt: 1, after: live.next });
    expect(live.text + more.text).toContain(live.text);

    await stack.client.wait(jobId, { timeoutMs: 60_000, pollMs: 200 });
    const first = await stack.client.log(jobId, 'worker_1', { attempt: 1 });
    const second = await stack.client.log(jobId, 'worker_1', { attempt: 2 });
    expect(first).toMatchObject({ attempt: 1, attempts: 2, source: 'stored', done: true });
    expect(second).toMatchObject({ attempt: 2, attempts: 2, source: 'stored', done: true });
    expect(first.text).toMatch(/-> failed/);
    expect(second.text).toMatch(/-> succeeded/);
    // What was live is where the uploaded log starts.
    expect(first.text.startsWith(live.text.slice(0, 200))).toBe(true);
    const missing = await stack.api('GET', `/api/v1/jobs/${jobId}/logs/worker_1?attempt=3`);
    expect(missing.status).toBe(404);
    const bad = await stack.api('GET', `/api/v1/jobs/${jobId}/logs/nobody`);
    expect(bad.status).toBe(400);
  });

  it('never shows a credential the worker printed', async () => {
    const secret = 'sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWx';
    const { job_id: jobId } = await stack.client.orchestrate({
      request: 'secret',
      // The title goes into the attempt's log as its first line.
      tasks: [{ title: `Use key ${secret}`, prompt: 'Print the key [[steps:1:100]]' }],
    });
    await stack.client.wait(jobId, { timeoutMs: 60_000, pollMs: 200 });
    const log = await stack.client.log(jobId, 'worker_1');
    expect(log.text.length).toBeGreaterThan(0);
    expect(log.text).not.toContain(secret);
    expect(log.text).toContain('[redacted]');
    const stored = await stack.deps.artifacts.getText(`jobs/${jobId}/logs/depth_0_worker_1.log`);
    expect(stored).not.toContain(secret);
  });

  it('serves the events as server-sent events when asked, resuming from Last-Event-ID, and ends with the job', async () => {
    const { job_id: jobId } = await stack.client.orchestrate({
      request: 'sse',
      tasks: [{ prompt: 'Two steps [[steps:2:600]]' }],
    });
    const read = async (headers: Record<string, string>) => {
      const res = await fetch(`${stack.apiUrl}/api/v1/jobs/${jobId}/events`, {
        headers: { 'x-api-key': stack.apiKey, accept: 'text/event-stream', ...headers },
        signal: AbortSignal.timeout(60_000),
      });
      return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
    };
    const first = await read({});
    expect(first.status).toBe(200);
    expect(first.type).toMatch(/^text\/event-stream/);
    const frames = first.text
      .split('\n\n')
      .filter((f) => /^(id|event):/m.test(f))
      .map((f) => ({
        id: /^id: (.*)$/m.exec(f)?.[1],
        event: /^event: (.*)$/m.exec(f)?.[1],
        data: JSON.parse(/^data: (.*)$/m.exec(f)?.[1] ?? 'null'),
      }));
    expect(frames[0]?.event).toBe('started');
    expect(frames.filter((f) => f.data?.tool === 'Bash').map((f) => f.data.detail)).toEqual([
      'echo step 1',
      'echo step 2',
    ]);
    expect(frames.at(-1)).toMatchObject({ event: 'end', data: { job_status: 'completed' } });
    for (const f of frames.slice(0, -1)) expect(f.id).toBe(f.data.id);
    // A reconnecting EventSource sends the last id it saw and gets only what came after.
    const resumed = await read({ 'last-event-id': frames[1]?.id as string });
    const ids = [...resumed.text.matchAll(/^id: (.*)$/gm)].map((m) => m[1]);
    expect(ids).toEqual(frames.slice(2, -1).map((f) => f.id));
    // Errors come before the stream, as plain JSON answers.
    const missing = await fetch(`${stack.apiUrl}/api/v1/jobs/ffffffffffffffffffff/events`, {
      headers: { 'x-api-key': stack.apiKey, accept: 'text/event-stream' },
    });
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { code?: string }).code).toBe('not_found');
  });

  it('refuses progress without a valid task token', async () => {
    const { job_id: jobId } = await stack.client.orchestrate({ request: 'quick', tasks: [{ prompt: 'hi' }] });
    await stack.client.wait(jobId, { timeoutMs: 60_000, pollMs: 200 });
    const other = await stack.api('POST', `/api/v1/jobs/${jobId}/tasks/1/progress`, {
      body: { attempt: 1, events: [] },
      headers: {
        'x-task-token': 'tt1.nope.1.1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
        'x-api-key': '',
      },
    });
    expect(other.status).toBe(401);
  });
});
