import { spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeHttpTransport } from '../../functions/client/node-transport.ts';
import {
  type HttpTransport,
  OrchestratorApiError,
  OrchestratorClient,
  retryAfterMs,
} from '../../functions/client/orchestrator-client.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

describe.each([
  ['fetch', undefined],
  ['node:http (the worker)', nodeHttpTransport],
] as [string, HttpTransport | undefined][])('the API client through %s', (_name, transport) => {
  let server: Server;
  let base: string;
  const seen: { method: string; url: string; token: string | undefined }[] = [];
  let failuresLeft = 0;
  let status = 200;

  beforeAll(async () => {
    server = createServer((req, res) => {
      seen.push({
        method: req.method ?? '',
        url: req.url ?? '',
        token: req.headers['x-task-token'] as string | undefined,
      });
      if (failuresLeft > 0) {
        failuresLeft -= 1;
        res.writeHead(503).end('busy');
        return;
      }
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('keeps the API Gateway stage in the URL', async () => {
    seen.length = 0;
    status = 200;
    await new OrchestratorClient(`${base}/v1/`, undefined, { taskToken: 't', transport }).request(
      'GET',
      '/api/v1/jobs/x',
    );
    expect(seen.map((s) => s.url)).toEqual(['/v1/api/v1/jobs/x']);
  });

  it('reads Retry-After as seconds or as an HTTP date', () => {
    expect(retryAfterMs('3')).toBe(3000);
    expect(retryAfterMs(new Date(10_000).toUTCString(), 4_000)).toBe(6000);
    expect(retryAfterMs('soon')).toBeUndefined();
    expect(retryAfterMs(null)).toBeUndefined();
  });

  it('sends the task token to the stage-prefixed path and retries 5xx a bounded number of times', async () => {
    seen.length = 0;
    failuresLeft = 2;
    status = 200;
    const client = new OrchestratorClient(`${base}/v1/`, undefined, {
      taskToken: 'tt1.x',
      attempts: 3,
      backoffMs: 1,
      transport,
    });
    expect(await client.request('GET', '/api/v1/jobs/j/tasks/1/assignment')).toEqual({ ok: true });
    expect(seen.map((s) => s.url)).toEqual(Array(3).fill('/v1/api/v1/jobs/j/tasks/1/assignment'));
    expect(seen.every((s) => s.token === 'tt1.x')).toBe(true);
  });

  it('gives up at once on a 4xx, with the status', async () => {
    seen.length = 0;
    status = 403;
    const client = new OrchestratorClient(base, undefined, {
      taskToken: 't',
      attempts: 5,
      backoffMs: 1,
      transport,
    });
    await expect(client.request('POST', '/api/v1/x', { body: {} })).rejects.toBeInstanceOf(
      OrchestratorApiError,
    );
    expect(seen).toHaveLength(1);
  });
});

describe('node:http transport', () => {
  let server: Server;
  let base: string;
  const bodies: { method: string; length: string | undefined; body: Buffer }[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        bodies.push({
          method: req.method ?? '',
          length: req.headers['content-length'],
          body: Buffer.concat(chunks),
        });
        if (req.url === '/hang') return; // never answers
        if (req.url === '/cut') {
          res.writeHead(200, { 'content-length': '100' }).write('partial');
          setTimeout(() => res.destroy(), 20);
          return;
        }
        if (req.url === '/busy') {
          const busy = bodies.filter((b) => b.method === 'GET').length < 2;
          res
            .writeHead(busy ? 429 : 200, busy ? { 'retry-after': '0.2' } : {})
            .end(busy ? 'later' : '{"ok":1}');
          return;
        }
        res
          .writeHead(201, { 'content-type': 'application/json', 'x-two': ['a', 'b'] })
          .end(JSON.stringify({ got: Buffer.concat(chunks).toString('utf8') }));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('sends the body with its length and reads status, headers and text', async () => {
    bodies.length = 0;
    const reply = await nodeHttpTransport(`${base}/x`, {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream' },
      body: new Uint8Array([104, 105, 0xe2, 0x82, 0xac]),
      signal: AbortSignal.timeout(5_000),
    });
    expect(reply.status).toBe(201);
    expect(JSON.parse(reply.text)).toEqual({ got: 'hi€' });
    expect(reply.headers.get('Content-Type')).toBe('application/json');
    expect(reply.headers.get('x-two')).toBe('a, b');
    expect(reply.headers.get('absent')).toBeNull();
    expect(bodies).toEqual([{ method: 'PUT', length: '5', body: Buffer.from('hi€') }]);
  });

  it("waits what Retry-After asks, through the client's retries", async () => {
    bodies.length = 0;
    const client = new OrchestratorClient(base, undefined, { backoffMs: 1, transport: nodeHttpTransport });
    const t0 = Date.now();
    expect(await client.request('GET', '/busy')).toEqual({ ok: 1 });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
  });

  it('gives up on a server that does not answer within the deadline', async () => {
    const client = new OrchestratorClient(base, undefined, {
      attempts: 1,
      timeoutMs: 200,
      transport: nodeHttpTransport,
    });
    const t0 = Date.now();
    await expect(client.request('GET', '/hang')).rejects.toThrow();
    expect(Date.now() - t0).toBeLessThan(5_000);
  });

  it('fails a response cut off before its end instead of returning part of it', async () => {
    await expect(
      nodeHttpTransport(`${base}/cut`, { method: 'GET', signal: AbortSignal.timeout(5_000) }),
    ).rejects.toThrow();
  });

  it('fails a refused connection, so the client can retry it', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    await expect(
      nodeHttpTransport(`http://127.0.0.1:${port}/`, { method: 'GET', signal: AbortSignal.timeout(5_000) }),
    ).rejects.toThrow(/ECONNREFUSED/);
  });

  it('never loads undici: a worker does not pay for fetch at start', () => {
    const probe = `
      import { register } from 'tsx/esm/api';
      register();
      const { createServer } = await import('node:http');
      const { nodeHttpTransport } = await import('./functions/client/node-transport.ts');
      const server = createServer((q, s) => s.end('{}')).listen(0, '127.0.0.1');
      await new Promise((r) => server.once('listening', r));
      await nodeHttpTransport('http://127.0.0.1:' + server.address().port + '/', { method: 'GET', signal: AbortSignal.timeout(5000) });
      server.close();
      console.log(JSON.stringify(process.moduleLoadList.filter((m) => /undici/.test(m))));
    `;
    const out = spawnSync(process.execPath, ['--input-type=module', '-e', probe], {
      cwd: REPO,
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(out.status, out.stderr).toBe(0);
    expect(JSON.parse(out.stdout.trim().split('\n').at(-1) ?? 'null')).toEqual([]);
  });
});
