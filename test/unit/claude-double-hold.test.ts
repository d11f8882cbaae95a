/**
 * The test double's `[[hold:LABEL]]`: which runs hold, what they report, and
 * that a hold is bounded even when nobody releases it.
 */

import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { resultOf, runDouble } from '../support/run-double.ts';

/** A collector that records reports and answers release polls as `releaseNow` says. */
let server: Server;
let url: string;
let reports: Record<string, unknown>[];
let polls: string[];
let releaseNow: boolean;
let root: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'double-hold-'));
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.method === 'POST' && req.url === '/held') {
      let text = '';
      req.setEncoding('utf8').on('data', (c: string) => {
        text += c;
      });
      req.on('end', () => {
        reports.push(JSON.parse(text) as Record<string, unknown>);
        res.end('ok');
      });
      return;
    }
    polls.push(req.url ?? '');
    // Not released: leave the poll open until the double gives up on it.
    if (releaseNow) res.end('released');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
  await rm(root, { recursive: true, force: true });
});
beforeEach(() => {
  reports = [];
  polls = [];
  releaseNow = true;
});

let n = 0;
async function run(prompt: string, args: string[] = [], env: Record<string, string> = {}) {
  n += 1;
  const cwd = await mkdtemp(join(root, `ws-${n}-`));
  const started = Date.now();
  const r = await runDouble(['-p', prompt, '--output-format', 'json', ...args], {
    cwd,
    stateDir: join(root, 'state'),
    env: { HOSTILE_COLLECTOR_URL: url, TASK_TOKEN: 'tt1.job.1.1.secret', TASK_ID: 'job/1/1', ...env },
  });
  return { ...r, elapsed: Date.now() - started, cwd };
}

describe('claude double [[hold:LABEL]]', () => {
  it('reports token, task id, env and cwd, waits for its release, then succeeds with its other directives', async () => {
    const r = await run('work [[hold:w1]] [[files:1]]', [], { ORCHESTRATOR_API_KEY: 'cok_leak' });
    expect(r.code).toBe(0);
    expect(reports).toHaveLength(1);
    const report = reports[0] as Record<string, unknown>;
    expect(report).toMatchObject({
      label: 'w1',
      token: 'tt1.job.1.1.secret',
      task_id: 'job/1/1',
      cwd: r.cwd,
    });
    expect((report.env as Record<string, string>).ORCHESTRATOR_API_KEY).toBe('cok_leak');
    expect((report.probes as { secrets: Record<string, string> }).secrets.ORCHESTRATOR_API_KEY).toBe(
      'cok_leak',
    );
    expect(polls).toEqual(['/release/w1']);
    const result = resultOf(r);
    expect(result.is_error).toBe(false);
    expect(result.result).toMatch(/hold: released/);
  });

  it('gives up after HOSTILE_HOLD_MS when nobody releases it, and still finishes', async () => {
    releaseNow = false;
    const r = await run('work [[hold:stuck]]', [], { HOSTILE_HOLD_MS: '600' });
    expect(r.code).toBe(0);
    expect(resultOf(r).result).toMatch(/hold: gave up waiting/);
    expect(r.elapsed).toBeGreaterThanOrEqual(600);
    expect(r.elapsed).toBeLessThan(5_000);
  });

  it('holds a plan run only for [[hold_plan]], and never a decide run', async () => {
    const schema = JSON.stringify({ type: 'object', properties: { subtasks: { type: 'array' } } });
    await run('plan [[hold:w]] [[hold_plan:p]]', ['--json-schema', schema]);
    await run('work [[hold_plan:p]]');
    await run('ORCHESTRATOR-DECIDE\nSubtask: x [[hold:d]]', ['--json-schema', schema]);
    expect(reports.map((x) => x.label)).toEqual(['p']);
  });

  it('goes on at once without a collector', async () => {
    const r = await run('work [[hold:alone]]', [], { HOSTILE_COLLECTOR_URL: '' });
    expect(resultOf(r).result).toMatch(/hold: no collector/);
    expect(reports).toEqual([]);
  });
});
