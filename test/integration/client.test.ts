import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Validator } from '@seriousme/openapi-schema-validator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OrchestratorApiError, OrchestratorClient } from '../../functions/client/orchestrator-client.ts';
import {
  JobListResponseSchema,
  JobResultSchema,
  JobStatusResponseSchema,
  SubmitResponseSchema,
} from '../../functions/core/api-responses.ts';
import { ROUTES } from '../../functions/handlers/routes.ts';
import { startTestStack, type TestStack } from '../support/harness.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PACKAGE = JSON.parse(readFileSync(`${ROOT}/package.json`, 'utf8')) as { version: string };

describe('the TypeScript client and the OpenAPI document, against the local API', () => {
  let stack: TestStack;
  let client: OrchestratorClient;

  beforeAll(async () => {
    stack = await startTestStack('workers: {max_workers: 3}');
    client = new OrchestratorClient(stack.apiUrl, stack.apiKey);
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('answers health without credentials, with the package version', async () => {
    const anonymous = new OrchestratorClient(stack.apiUrl);
    const health = await anonymous.health();
    expect(health).toMatchObject({ status: 'ok', version: PACKAGE.version });
    // Nothing else is open: a job list still needs a key.
    await expect(anonymous.jobs()).rejects.toMatchObject({ status: 401 });
  });

  it('serves an OpenAPI 3.1 document that a validator accepts and that covers every route', async () => {
    const doc = (await new OrchestratorClient(stack.apiUrl).openapi()) as {
      openapi: string;
      paths: Record<string, Record<string, { operationId: string; security: unknown[]; responses: object }>>;
    };
    expect(doc.openapi).toBe('3.1.0');
    const verdict = await new Validator().validate(doc as unknown as Parameters<Validator['validate']>[0]);
    expect(verdict.errors ?? []).toEqual([]);
    expect(verdict.valid).toBe(true);
    for (const route of ROUTES) {
      const op = doc.paths[route.resource]?.[route.method.toLowerCase()];
      expect(op?.operationId, `${route.method} ${route.resource}`).toBe(route.name);
      expect(Object.keys(op?.responses ?? {})).toContain('500');
      if (route.auth === 'public') expect(op?.security).toEqual([]);
    }
  });

  it('runs a job: orchestrate, status, wait, result, report and jobs', async () => {
    const submitted = await client.orchestrate('Write two notes [[plan:2]]', { maxWorkers: 2 });
    expect(submitted).toMatchObject({ created: true, status: 'planning' });
    const seen: string[] = [];
    const result = await client.wait(submitted.job_id, {
      timeoutMs: 60_000,
      pollMs: 200,
      onStatus: (s) => seen.push(s.status),
    });
    expect(result.status).toBe('completed');
    expect(result.results.tasks.map((t) => t.status)).toEqual(['succeeded', 'succeeded']);
    expect(result.config.max_workers).toBe(2);
    expect(seen.at(-1)).toBe('completed');
    const status = await client.status(submitted.job_id);
    expect(status.finished_tasks).toBe(2);
    expect(await client.report(submitted.job_id)).toMatch(/^# /);
    const listed = await client.jobs({ limit: 50 });
    // What the document promises is what the server answers.
    expect(() => SubmitResponseSchema.parse(submitted)).not.toThrow();
    expect(() => JobStatusResponseSchema.parse(status)).not.toThrow();
    expect(() => JobResultSchema.parse(result)).not.toThrow();
    expect(() => JobListResponseSchema.parse(listed)).not.toThrow();
    expect(listed.jobs.map((j) => j.job_id)).toContain(submitted.job_id);
  });

  it('makes a retried submission safe: the same Idempotency-Key returns the same job', async () => {
    const first = await client.orchestrate('One note [[plan:1]]', { idempotencyKey: 'client-test-1' });
    const again = await client.orchestrate('One note [[plan:1]]', { idempotencyKey: 'client-test-1' });
    expect(again.job_id).toBe(first.job_id);
    expect(again.created).toBe(false);
    await client.wait(first.job_id, { timeoutMs: 60_000, pollMs: 200 });
  });

  it('cancels a running job', async () => {
    const submitted = await client.orchestrate({
      request: 'hang',
      tasks: [{ prompt: 'wait a long time [[sleep:60000]]' }],
    });
    const cancelled = await client.cancel(submitted.job_id);
    expect(cancelled.job_id).toBe(submitted.job_id);
    const result = await client.wait(submitted.job_id, { timeoutMs: 30_000, pollMs: 200 });
    expect(result.status).toBe('cancelled');
  });

  it('throws the API error with its code and the offending field, without retrying a 400', async () => {
    const error = await client.orchestrate('   ').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OrchestratorApiError);
    const e = error as OrchestratorApiError;
    expect(e.status).toBe(400);
    expect(e.code).toBe('bad_request');
    expect(e.issues?.map((i) => i.path)).toContain('request');
  });

  it('works as the package export claude-fleet/client, built for plain Node', async () => {
    const run = promisify(execFile);
    await run(process.execPath, ['scripts/build-client.mjs'], { cwd: ROOT, timeout: 60_000 });
    const script = `import { OrchestratorClient } from 'claude-fleet/client';
      const h = await new OrchestratorClient(process.argv[1]).health();
      process.stdout.write(h.status);`;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script, stack.apiUrl], {
      cwd: ROOT,
      timeout: 30_000,
    });
    expect(stdout).toBe('ok');
  });
});

describe('the client under overload', () => {
  let server: Server;
  let url: string;
  const hits: number[] = [];

  beforeAll(async () => {
    // 503 with Retry-After: 1 twice, then the answer.
    server = createServer((_req, res) => {
      hits.push(Date.now());
      if (hits.length <= 2) {
        res.writeHead(503, { 'retry-after': '1', 'content-type': 'application/json' });
        res.end('{"error":"busy","code":"throttled"}');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"status":"ok","version":"x","time":"t"}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('waits at least what Retry-After asks before trying again, then succeeds', async () => {
    const client = new OrchestratorClient(url, 'k', { backoffMs: 10 });
    await expect(client.health()).resolves.toMatchObject({ status: 'ok' });
    expect(hits).toHaveLength(3);
    expect((hits[1] as number) - (hits[0] as number)).toBeGreaterThanOrEqual(950);
    expect((hits[2] as number) - (hits[1] as number)).toBeGreaterThanOrEqual(950);
  });

  it('gives up after its attempts with the last error', async () => {
    hits.length = 0;
    const client = new OrchestratorClient(url, 'k', { attempts: 2, backoffMs: 10, maxBackoffMs: 50 });
    await expect(client.health()).rejects.toMatchObject({ status: 503, code: 'throttled' });
    expect(hits).toHaveLength(2);
  });
});
