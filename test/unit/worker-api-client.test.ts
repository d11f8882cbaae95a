import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError, joinUrl, WorkerApiClient } from '../../container/api-client.ts';

describe("the worker's API client", () => {
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

  it('keeps the API Gateway stage in the URL', () => {
    expect(joinUrl('https://abc.execute-api.us-east-1.amazonaws.com/v1/', '/api/v1/jobs/x')).toBe(
      'https://abc.execute-api.us-east-1.amazonaws.com/v1/api/v1/jobs/x',
    );
    expect(joinUrl('http://127.0.0.1:8000', '/api/v1/jobs')).toBe('http://127.0.0.1:8000/api/v1/jobs');
  });

  it('sends the task token to the stage-prefixed path and retries 5xx a bounded number of times', async () => {
    seen.length = 0;
    failuresLeft = 2;
    status = 200;
    const client = new WorkerApiClient({ baseUrl: `${base}/v1/`, token: 'tt1.x', attempts: 3, backoffMs: 1 });
    expect(await client.call('GET', '/api/v1/jobs/j/tasks/1/assignment')).toEqual({ ok: true });
    expect(seen.map((s) => s.url)).toEqual(Array(3).fill('/v1/api/v1/jobs/j/tasks/1/assignment'));
    expect(seen.every((s) => s.token === 'tt1.x')).toBe(true);
  });

  it('gives up at once on a 4xx, with the status', async () => {
    seen.length = 0;
    status = 403;
    const client = new WorkerApiClient({ baseUrl: base, token: 't', attempts: 5, backoffMs: 1 });
    await expect(client.call('POST', '/api/v1/x', {})).rejects.toBeInstanceOf(ApiError);
    expect(seen).toHaveLength(1);
  });
});
