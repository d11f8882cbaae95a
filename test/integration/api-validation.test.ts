/**
 * `POST /api/v1/orchestrate` refuses malformed bodies and headers with the
 * exact 4xx a caller can act on, a message naming the problem, no stack
 * trace, and without writing anything: no item in DynamoDB, no message in
 * SQS, no job in the listing.
 */
import { GetQueueAttributesCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { type DynamoDBDocumentClient, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAwsClients } from '../../functions/adapters/aws-clients.ts';
import { RUNNING_COUNTER_KEY } from '../../functions/adapters/table-keys.ts';
import { PARTITION_KEY } from '../../functions/adapters/table-schema.ts';
import { startTestStack, type TestStack } from '../support/harness.ts';

const ORCHESTRATE = '/api/v1/orchestrate';
const MAX_REQUEST_CHARS = 20_000;
const MAX_WORKERS_PER_JOB = 20;

interface Case {
  name: string;
  status: number;
  code: string;
  /** Matches the top-level `error` message. */
  error: RegExp;
  /** For field errors: the issue that must be present (path exact, message matched). */
  issue?: { path: string; message: RegExp };
  body?: unknown;
  rawBody?: string;
  headers?: Record<string, string>;
}

const tasks = (n: number) => Array.from({ length: n }, (_, i) => ({ prompt: `part ${i + 1}` }));

const CASES: Case[] = [
  {
    name: 'missing request',
    body: { config: { max_workers: 2 } },
    status: 400,
    code: 'bad_request',
    error: /invalid/,
    issue: { path: 'request', message: /expected string/i },
  },
  {
    name: 'request of the wrong type (number)',
    body: { request: 42 },
    status: 400,
    code: 'bad_request',
    error: /invalid/,
    issue: { path: 'request', message: /expected string.*number/i },
  },
  {
    name: 'empty request',
    body: { request: '' },
    status: 400,
    code: 'bad_request',
    error: /invalid/,
    issue: { path: 'request', message: /must not be empty/ },
  },
  {
    name: 'whitespace-only request',
    body: { request: ' \n\t  ' },
    status: 400,
    code: 'bad_request',
    error: /invalid/,
    issue: { path: 'request', message: /must not be empty/ },
  },
  {
    name: 'oversized request',
    body: { request: 'x'.repeat(MAX_REQUEST_CHARS + 1) },
    status: 400,
    code: 'bad_request',
    error: /invalid/,
    issue: { path: 'request', message: new RegExp(`at most ${MAX_REQUEST_CHARS} characters`) },
  },
  {
    name: 'config.max_workers negative',
    body: { request: 'r', config: { max_workers: -1 } },
    status: 400,
    code: 'bad_request',
    error: /invalid/,
    issue: { path: 'config.max_workers', message: /1/ },
  },
  {
    name: 'config.max_workers zero',
    body: { request: 'r', config: { max_workers: 0 } },
    status: 400,
    code: 'bad_request',
    error: /invalid/,
    issue: { path: 'config.max_workers', message: />=\s*1/ },
  },
  {
    name: 'config.max_workers huge (1e6)',
    body: { request: 'r', config: { max_workers: 1e6 } },
    status: 400,
    code: 'bad_request',
    error: /invalid/,
    issue: { path: 'config.max_workers', message: new RegExp(`<=\\s*${MAX_WORKERS_PER_JOB}`) },
  },
  {
    name: 'config.max_workers not an integer (2.5)',
    body: { request: 'r', config: { max_workers: 2.5 } },
    status: 400,
    code: 'bad_request',
    error: /invalid/,
    issue: { path: 'config.max_workers', message: /int/i },
  },
  {
    name: 'config.default_timeout as a string',
    body: { request: 'r', config: { default_timeout: '600' } },
    status: 400,
    code: 'bad_request',
    error: /invalid/,
    issue: { path: 'config.default_timeout', message: /expected number.*string/i },
  },
  {
    name: 'unknown top-level field',
    body: { request: 'r', priority: 'high' },
    status: 400,
    code: 'bad_request',
    error: /invalid/,
    issue: { path: '(root)', message: /unknown field.*\bpriority\b/ },
  },
  {
    name: 'unknown field inside config',
    body: { request: 'r', config: { max_worker: 3 } },
    status: 400,
    code: 'bad_request',
    error: /invalid/,
    issue: { path: 'config', message: /unknown field.*\bmax_worker\b/ },
  },
  {
    name: 'config of the wrong type',
    body: { request: 'r', config: 'fast' },
    status: 400,
    code: 'bad_request',
    error: /invalid/,
    issue: { path: 'config', message: /expected object/i },
  },
  {
    name: 'empty tasks array',
    body: { request: 'r', tasks: [] },
    status: 400,
    code: 'bad_request',
    error: /invalid/,
    issue: { path: 'tasks', message: />=\s*1/ },
  },
  {
    name: 'too many tasks',
    body: { request: 'r', tasks: tasks(MAX_WORKERS_PER_JOB + 1) },
    status: 400,
    code: 'bad_request',
    error: /invalid/,
    issue: { path: 'tasks', message: new RegExp(`<=\\s*${MAX_WORKERS_PER_JOB}`) },
  },
  {
    name: 'a task with an unknown field',
    body: { request: 'r', tasks: [{ prompt: 'p' }, { prompt: 'p', depends_on: [1] }] },
    status: 400,
    code: 'bad_request',
    error: /invalid/,
    issue: { path: 'tasks[1]', message: /unknown field.*\bdepends_on\b/ },
  },
  {
    name: 'a task with an empty prompt',
    body: { request: 'r', tasks: [{ prompt: '  ' }] },
    status: 400,
    code: 'bad_request',
    error: /invalid/,
    issue: { path: 'tasks[0].prompt', message: /must not be empty/ },
  },
  {
    name: 'malformed JSON',
    rawBody: '{"request": "r",',
    headers: { 'content-type': 'application/json' },
    status: 400,
    code: 'bad_request',
    error: /not valid JSON/,
  },
  {
    name: 'a JSON array instead of an object',
    body: [{ request: 'r' }],
    status: 400,
    code: 'bad_request',
    error: /invalid/,
    issue: { path: '(root)', message: /expected object/i },
  },
  {
    name: 'empty body',
    rawBody: '',
    headers: { 'content-type': 'application/json' },
    status: 400,
    code: 'bad_request',
    error: /empty/,
  },
  {
    name: 'wrong content type (text/plain)',
    rawBody: JSON.stringify({ request: 'r' }),
    headers: { 'content-type': 'text/plain' },
    status: 415,
    code: 'unsupported_media_type',
    error: /application\/json.*text\/plain/,
  },
  {
    name: 'body over 1 MiB',
    body: { request: 'r', padding: 'x'.repeat(1024 * 1024 + 10) },
    status: 413,
    code: 'too_large',
    error: /larger than/,
  },
  {
    name: 'missing API key',
    body: { request: 'r' },
    headers: { 'x-api-key': '' },
    status: 401,
    code: 'unauthorized',
    error: /X-API-Key/i,
  },
  {
    name: 'wrong API key',
    body: { request: 'r' },
    headers: { 'x-api-key': 'cok_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' },
    status: 401,
    code: 'unauthorized',
    error: /X-API-Key/i,
  },
  {
    name: 'invalid Idempotency-Key (200 characters)',
    body: { request: 'r' },
    headers: { 'idempotency-key': 'k'.repeat(200) },
    status: 400,
    code: 'bad_request',
    error: /Idempotency-Key/,
    issue: { path: 'Idempotency-Key', message: /invalid/ },
  },
  {
    name: 'invalid Idempotency-Key (contains a space)',
    body: { request: 'r' },
    headers: { 'idempotency-key': 'my key' },
    status: 400,
    code: 'bad_request',
    error: /Idempotency-Key/,
    issue: { path: 'Idempotency-Key', message: /invalid/ },
  },
];

/** Clients of its own on the stack's table and queue, to count what was written. */
interface StoreInternals {
  ddb: DynamoDBDocumentClient;
  tableName: string;
}
interface QueueInternals {
  sqs: SQSClient;
  queueUrl: string;
}

describe('POST /api/v1/orchestrate refuses malformed input without writing anything', () => {
  let stack: TestStack;
  let store: StoreInternals;
  let queue: QueueInternals;

  /** Items a submission could have written: the deployment's running counter, which the first dispatch creates, is not one. */
  const countItems = async (): Promise<number> => {
    let count = 0;
    let startKey: Record<string, unknown> | undefined;
    do {
      const out = await store.ddb.send(
        new ScanCommand({
          TableName: store.tableName,
          Select: 'COUNT',
          ConsistentRead: true,
          FilterExpression: '#pk <> :counter',
          ExpressionAttributeNames: { '#pk': PARTITION_KEY },
          ExpressionAttributeValues: { ':counter': RUNNING_COUNTER_KEY[PARTITION_KEY] },
          ...(startKey ? { ExclusiveStartKey: startKey } : {}),
        }),
      );
      count += out.Count ?? 0;
      startKey = out.LastEvaluatedKey;
    } while (startKey);
    return count;
  };

  const queuedMessages = async (): Promise<number> => {
    const out = await queue.sqs.send(
      new GetQueueAttributesCommand({
        QueueUrl: queue.queueUrl,
        AttributeNames: [
          'ApproximateNumberOfMessages',
          'ApproximateNumberOfMessagesNotVisible',
          'ApproximateNumberOfMessagesDelayed',
        ],
      }),
    );
    return Object.values(out.Attributes ?? {}).reduce((sum, v) => sum + Number(v), 0);
  };

  beforeAll(async () => {
    stack = await startTestStack();
    const clients = createAwsClients({ ...stack.dataPlane.env });
    store = { ddb: clients.ddb, tableName: stack.dataPlane.tableName };
    queue = { sqs: clients.sqs, queueUrl: stack.deps.queue.queueUrl };
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('starts from an empty tenant: only API-key items in the table, an empty queue', async () => {
    expect(await countItems()).toBe(1);
    expect(await queuedMessages()).toBe(0);
    const list = await stack.api('GET', '/api/v1/jobs');
    expect(list.status).toBe(200);
    expect(list.json.jobs).toEqual([]);
  });

  it.each(CASES)('$name → $status', async (c) => {
    const itemsBefore = await countItems();
    const submittedBefore = stack.logs.filter((l) => l.message === 'job submitted').length;

    const res = await stack.api('POST', ORCHESTRATE, {
      ...(c.body !== undefined ? { body: c.body } : {}),
      ...(c.rawBody !== undefined ? { rawBody: c.rawBody } : {}),
      ...(c.headers ? { headers: c.headers } : {}),
    });

    expect(res.status, res.text.slice(0, 500)).toBe(c.status);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(res.json).toBeTypeOf('object');
    expect(res.json.code).toBe(c.code);
    expect(res.json.error).toBeTypeOf('string');
    expect(res.json.error).toMatch(c.error);
    expect(res.json.job_id).toBeUndefined();
    if (c.issue) {
      expect(res.json).toEqual({ error: expect.any(String), code: 'bad_request', issues: expect.any(Array) });
      for (const issue of res.json.issues) {
        expect(Object.keys(issue).sort()).toEqual(['message', 'path']);
        expect(issue.path).toBeTypeOf('string');
        expect(issue.message).toBeTypeOf('string');
      }
      const match = res.json.issues.find((i: { path: string }) => i.path === c.issue?.path);
      expect(match, `no issue at ${c.issue.path}: ${JSON.stringify(res.json.issues)}`).toBeDefined();
      expect(match.message).toMatch(c.issue.message);
    }

    // No stack trace or raw exception text ever leaves the API.
    expect(res.text).not.toMatch(/at .*\.ts:\d+/);
    expect(res.text).not.toMatch(/^\s*\w*Error:/m);
    expect(res.json.error).not.toMatch(/^\s*\w*Error:/m);
    expect(res.text).not.toMatch(/node_modules|\/functions\//);

    // Nothing was written: no item, no message, no job listed, no submit logged.
    expect(await countItems()).toBe(itemsBefore);
    expect(await queuedMessages()).toBe(0);
    expect(stack.logs.filter((l) => l.message === 'job submitted')).toHaveLength(submittedBefore);
    const list = await stack.api('GET', '/api/v1/jobs');
    expect(list.status).toBe(200);
    expect(list.json.jobs).toEqual([]);
  });

  it('a body over the server limit (2 MiB) is a 413, and the next requests on the same client still work', async () => {
    // Node's fetch keeps connections alive: a half-read upload must not break the one used next.
    const big = await stack.api('POST', ORCHESTRATE, {
      rawBody: JSON.stringify({ request: 'x'.repeat(3 * 1024 * 1024) }),
    });
    expect(big.status).toBe(413);
    for (let i = 0; i < 3; i++) expect((await stack.api('GET', '/api/v1/jobs')).status).toBe(200);
  });

  it('after every refusal the table still holds only the API key', async () => {
    expect(await countItems()).toBe(1);
    expect(await queuedMessages()).toBe(0);
    expect(stack.logs.filter((l) => l.level === 'ERROR')).toEqual([]);
  });

  it('control: a valid submission is seen by the same probes (job + task item, listed)', async () => {
    const itemsBefore = await countItems();
    const res = await stack.api('POST', ORCHESTRATE, { body: { request: 'r', tasks: [{ prompt: 'p' }] } });
    expect(res.status, res.text).toBe(202);
    expect(await countItems()).toBe(itemsBefore + 2);
    const list = await stack.api('GET', '/api/v1/jobs');
    expect(list.json.jobs.map((j: { job_id: string }) => j.job_id)).toEqual([res.json.job_id]);
    expect(await stack.waitForJob(res.json.job_id)).toBe('completed');
  });
});
