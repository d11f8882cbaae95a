import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  OrchestratorApiError,
  OrchestratorClient,
  retryAfterMs,
} from '../../functions/client/orchestrator-client.ts';

describe('the API client, as a worker uses it', () => {
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
    await new OrchestratorClient(`${base}/v1/`, undefined, { taskToken: 't' }).request(
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
    });
    expect(await client.request('GET', '/api/v1/jobs/j/tasks/1/assignment')).toEqual({ ok: true });
    expect(seen.map((s) => s.url)).toEqual(Array(3).fill('/v1/api/v1/jobs/j/tasks/1/assignment'));
    expect(seen.every((s) => s.token === 'tt1.x')).toBe(true);
  });

  it('gives up at once on a 4xx, with the status', async () => {
    seen.length = 0;
    status = 403;
    const client = new OrchestratorClient(base, undefined, { taskToken: 't', attempts: 5, backoffMs: 1 });
    await expect(client.request('POST', '/api/v1/x', { body: {} })).rejects.toBeInstanceOf(
      OrchestratorApiError,
    );
    expect(seen).toHaveLength(1);
  });
});
