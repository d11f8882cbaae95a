/**
 * The embedded emulators behave as AWS does for every feature the system
 * relies on: conditional writes, number-set ADD, GSI paging, SQS visibility
 * and redrive configuration, S3 prefixes and presigned PUT.
 */
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import {
  ChangeMessageVisibilityCommand,
  DeleteMessageCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
} from '@aws-sdk/client-sqs';
import { GetCommand, PutCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AwsClients, createAwsClients } from '../../functions/adapters/aws-clients.ts';
import { ensureResources, type ProvisionedResources } from '../../functions/adapters/provision.ts';
import { LISTING_INDEX } from '../../functions/adapters/table-schema.ts';
import { type Emulators, startEmulators } from '../../functions/local/emulators.ts';
import { type Backend, EXTERNAL, resourceName, startBackend } from '../support/backend.ts';

const NAMES = {
  tableName: resourceName('fleet-test'),
  queueName: resourceName('fleet-work'),
  deadLetterQueueName: resourceName('fleet-work-dlq'),
  bucketName: resourceName('fleet-artifacts'),
  maxReceiveCount: 3,
  visibilityTimeoutSec: 30,
};

function portRefuses(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname, port: Number(port) });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

describe('embedded emulators', () => {
  let backend: Backend;
  let clients: AwsClients;
  let res: ProvisionedResources;

  beforeAll(async () => {
    backend = await startBackend();
    clients = createAwsClients({ ...backend.env });
    res = await ensureResources(clients, NAMES);
  });

  afterAll(async () => {
    clients?.ddb.destroy();
    clients?.sqs.destroy();
    clients?.s3.destroy();
    await backend?.stop();
  });

  it('provisions idempotently with the redrive policy and visibility timeout', async () => {
    const again = await ensureResources(clients, NAMES);
    expect(again).toEqual(res);
    const { Attributes } = await clients.sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: res.queueUrl, AttributeNames: ['All'] }),
    );
    expect(Attributes?.VisibilityTimeout).toBe('30');
    const redrive = JSON.parse(Attributes?.RedrivePolicy ?? '{}');
    expect(Number(redrive.maxReceiveCount)).toBe(3);
    expect(redrive.deadLetterTargetArn.endsWith(`:${NAMES.deadLetterQueueName}`)).toBe(true);

    // A changed setting converges instead of failing with QueueNameExists.
    await ensureResources(clients, { ...NAMES, visibilityTimeoutSec: 45 });
    const after = await clients.sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: res.queueUrl, AttributeNames: ['VisibilityTimeout'] }),
    );
    expect(after.Attributes?.VisibilityTimeout).toBe('45');
    await ensureResources(clients, NAMES);
  });

  it('conditional PutItem fails on an existing key', async () => {
    const item = { PK: 'JOB#cond', SK: 'META', status: 'queued' };
    const put = () =>
      clients.ddb.send(
        new PutCommand({
          TableName: res.tableName,
          Item: item,
          ConditionExpression: 'attribute_not_exists(PK)',
        }),
      );
    await put();
    await expect(put()).rejects.toMatchObject({ name: 'ConditionalCheckFailedException' });
  });

  it('UpdateItem ADD on a number set is idempotent and returns a Set', async () => {
    const add = (values: number[]) =>
      clients.ddb.send(
        new UpdateCommand({
          TableName: res.tableName,
          Key: { PK: 'JOB#set', SK: 'META' },
          UpdateExpression: 'ADD done :d',
          ExpressionAttributeValues: { ':d': new Set(values) },
          ReturnValues: 'ALL_NEW',
        }),
      );
    await add([1, 2]);
    const { Attributes } = await add([2, 1]);
    const done = Attributes?.done;
    expect(done).toBeInstanceOf(Set);
    expect([...(done as Set<number>)].sort()).toEqual([1, 2]);
    for (const v of done as Set<number>) expect(typeof v).toBe('number');

    const { Item } = await clients.ddb.send(
      new GetCommand({ TableName: res.tableName, Key: { PK: 'JOB#set', SK: 'META' } }),
    );
    expect(Item?.done).toEqual(new Set([1, 2]));
  });

  it('GSI query returns newest first and paginates with ExclusiveStartKey', async () => {
    const tenant = 'TENANT#acme';
    for (let i = 0; i < 5; i++) {
      const createdAt = `2024-01-0${i + 1}T00:00:00.000Z`;
      await clients.ddb.send(
        new PutCommand({
          TableName: res.tableName,
          Item: { PK: `JOB#j${i}`, SK: 'META', GSI1PK: tenant, GSI1SK: `${createdAt}#j${i}`, n: i },
        }),
      );
    }
    const seen: number[] = [];
    let startKey: Record<string, unknown> | undefined;
    let pages = 0;
    do {
      const page = await clients.ddb.send(
        new QueryCommand({
          TableName: res.tableName,
          IndexName: LISTING_INDEX,
          KeyConditionExpression: 'GSI1PK = :t',
          ExpressionAttributeValues: { ':t': tenant },
          ScanIndexForward: false,
          Limit: 2,
          ExclusiveStartKey: startKey,
        }),
      );
      seen.push(...(page.Items ?? []).map((it) => it.n as number));
      startKey = page.LastEvaluatedKey;
      pages++;
    } while (startKey && pages < 10);
    expect(seen).toEqual([4, 3, 2, 1, 0]);
    expect(pages).toBeGreaterThanOrEqual(3);
  });

  it('SQS send/receive/delete, and an undeleted message reappears after its visibility timeout', async () => {
    await clients.sqs.send(new SendMessageCommand({ QueueUrl: res.queueUrl, MessageBody: 'first' }));
    const got = await clients.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: res.queueUrl, MaxNumberOfMessages: 1, WaitTimeSeconds: 1 }),
    );
    const msg = got.Messages?.[0];
    expect(msg?.Body).toBe('first');

    // Hidden while in flight.
    const hidden = await clients.sqs.send(new ReceiveMessageCommand({ QueueUrl: res.queueUrl }));
    expect(hidden.Messages ?? []).toHaveLength(0);

    // Make it visible again, as an expired visibility timeout would.
    await clients.sqs.send(
      new ChangeMessageVisibilityCommand({
        QueueUrl: res.queueUrl,
        ReceiptHandle: msg?.ReceiptHandle,
        VisibilityTimeout: 0,
      }),
    );
    const again = await clients.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: res.queueUrl,
        WaitTimeSeconds: 1,
        MessageSystemAttributeNames: ['ApproximateReceiveCount'],
      }),
    );
    const redelivered = again.Messages?.[0];
    expect(redelivered?.Body).toBe('first');
    expect(redelivered?.Attributes?.ApproximateReceiveCount).toBe('2');

    // A 1 s per-receive visibility timeout expires on its own.
    const short = await clients.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: res.queueUrl, VisibilityTimeout: 1, WaitTimeSeconds: 0 }),
    );
    expect(short.Messages ?? []).toHaveLength(0); // still in flight from the receive above
    await clients.sqs.send(
      new ChangeMessageVisibilityCommand({
        QueueUrl: res.queueUrl,
        ReceiptHandle: redelivered?.ReceiptHandle,
        VisibilityTimeout: 1,
      }),
    );
    const started = Date.now();
    const third = await clients.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: res.queueUrl, WaitTimeSeconds: 3 }),
    );
    expect(third.Messages?.[0]?.Body).toBe('first');
    expect(Date.now() - started).toBeGreaterThanOrEqual(500);

    await clients.sqs.send(
      new DeleteMessageCommand({ QueueUrl: res.queueUrl, ReceiptHandle: third.Messages?.[0]?.ReceiptHandle }),
    );
    const empty = await clients.sqs.send(
      new GetQueueAttributesCommand({
        QueueUrl: res.queueUrl,
        AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
      }),
    );
    expect(empty.Attributes?.ApproximateNumberOfMessages).toBe('0');
    expect(empty.Attributes?.ApproximateNumberOfMessagesNotVisible).toBe('0');
  });

  it('a message received maxReceiveCount times without deletion moves to the DLQ', async () => {
    await clients.sqs.send(new SendMessageCommand({ QueueUrl: res.queueUrl, MessageBody: 'poison' }));
    for (let i = 0; i < NAMES.maxReceiveCount; i++) {
      const got = await clients.sqs.send(
        new ReceiveMessageCommand({ QueueUrl: res.queueUrl, WaitTimeSeconds: 1 }),
      );
      const msg = got.Messages?.[0];
      expect(msg?.Body).toBe('poison');
      await clients.sqs.send(
        new ChangeMessageVisibilityCommand({
          QueueUrl: res.queueUrl,
          ReceiptHandle: msg?.ReceiptHandle,
          VisibilityTimeout: 0,
        }),
      );
    }
    const gone = await clients.sqs.send(new ReceiveMessageCommand({ QueueUrl: res.queueUrl }));
    expect(gone.Messages ?? []).toHaveLength(0);
    const dead = await clients.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: res.deadLetterQueueUrl, WaitTimeSeconds: 1 }),
    );
    expect(dead.Messages?.[0]?.Body).toBe('poison');
    await clients.sqs.send(
      new DeleteMessageCommand({
        QueueUrl: res.deadLetterQueueUrl,
        ReceiptHandle: dead.Messages?.[0]?.ReceiptHandle,
      }),
    );
  });

  it('S3 put/get/list by prefix and a presigned PUT', async () => {
    const Bucket = res.bucketName;
    for (const Key of ['jobs/a/log.txt', 'jobs/a/out.json', 'jobs/b/log.txt']) {
      await clients.s3.send(new PutObjectCommand({ Bucket, Key, Body: `body of ${Key}` }));
    }
    const listed = await clients.s3.send(new ListObjectsV2Command({ Bucket, Prefix: 'jobs/a/' }));
    expect((listed.Contents ?? []).map((o) => o.Key).sort()).toEqual(['jobs/a/log.txt', 'jobs/a/out.json']);
    const dirs = await clients.s3.send(new ListObjectsV2Command({ Bucket, Prefix: 'jobs/', Delimiter: '/' }));
    expect((dirs.CommonPrefixes ?? []).map((p) => p.Prefix).sort()).toEqual(['jobs/a/', 'jobs/b/']);

    const got = await clients.s3.send(new GetObjectCommand({ Bucket, Key: 'jobs/a/log.txt' }));
    expect(await got.Body?.transformToString()).toBe('body of jobs/a/log.txt');

    // fauxqs itself verifies neither signatures nor checksums (the gate in front of it checks
    // presigned signatures: see below). With the SDK default
    // requestChecksumCalculation 'WHEN_SUPPORTED' this URL carries x-amz-checksum-crc32 of an
    // empty body (AAAAAA==), which real S3 rejects for any non-empty upload (aws-sdk-js-v3#6994);
    // the presigning S3 client needs requestChecksumCalculation: 'WHEN_REQUIRED'.
    const url = await getSignedUrl(
      clients.s3,
      new PutObjectCommand({ Bucket, Key: 'uploads/in.txt', ContentType: 'text/plain' }),
      { expiresIn: 60 },
    );
    const put = await fetch(url, {
      method: 'PUT',
      body: 'uploaded',
      headers: { 'content-type': 'text/plain' },
    });
    expect(put.status).toBe(200);
    await put.arrayBuffer();
    const uploaded = await clients.s3.send(new GetObjectCommand({ Bucket, Key: 'uploads/in.txt' }));
    expect(await uploaded.Body?.transformToString()).toBe('uploaded');
  });

  it.skipIf(EXTERNAL)('stop() closes both ports and is safe to call twice', async () => {
    const emulators = backend.emulators as Emulators;
    const { dynamodb, sqs } = emulators.endpoints;
    await emulators.stop();
    await emulators.stop();
    expect(await portRefuses(dynamodb)).toBe(true);
    expect(await portRefuses(sqs)).toBe(true);
  });
});

describe('the gate in front of the embedded emulators', () => {
  let emulators: Emulators;
  let clients: AwsClients;
  let res: ProvisionedResources;
  /** The emulators' env without the secret: what a worker that found the ports would have at best. */
  let withoutSecret: Record<string, string>;
  const Bucket = 'gate-artifacts';

  beforeAll(async () => {
    emulators = await startEmulators();
    clients = createAwsClients({ ...emulators.env });
    res = await ensureResources(clients, {
      ...NAMES,
      tableName: 'gate-table',
      queueName: 'gate-work',
      deadLetterQueueName: 'gate-work-dlq',
      bucketName: Bucket,
    });
    const { ORCHESTRATOR_EMULATOR_SECRET: _secret, ...rest } = emulators.env;
    withoutSecret = rest;
  });
  afterAll(async () => {
    clients?.ddb.destroy();
    clients?.sqs.destroy();
    clients?.s3.destroy();
    await emulators?.stop();
  });

  const refused = { $metadata: { httpStatusCode: 403 } };
  const object = async (Key: string) => {
    try {
      const out = await clients.s3.send(new GetObjectCommand({ Bucket, Key }));
      return await out.Body?.transformToString();
    } catch (err) {
      if ((err as Error).name === 'NoSuchKey') return undefined;
      throw err;
    }
  };
  const put = async (url: string, init: RequestInit = {}) => {
    try {
      const r = await fetch(url, { method: 'PUT', ...init, signal: AbortSignal.timeout(10_000) });
      return { status: r.status, text: await r.text() };
    } catch (err) {
      // A refused upload's connection is closed: a client still sending may see it reset.
      return { status: 0, text: (err as Error).message };
    }
  };

  it('answers only the orchestrator: without its secret header DynamoDB, SQS and S3 refuse with 403 and change nothing', async () => {
    for (const env of [withoutSecret, { ...withoutSecret, ORCHESTRATOR_EMULATOR_SECRET: 'a'.repeat(64) }]) {
      const other = createAwsClients(env);
      try {
        await expect(
          other.ddb.send(new PutCommand({ TableName: res.tableName, Item: { PK: 'KEY#x', SK: 'META' } })),
        ).rejects.toMatchObject({ name: 'AccessDeniedException', ...refused });
        await expect(
          other.sqs.send(new SendMessageCommand({ QueueUrl: res.queueUrl, MessageBody: 'forged' })),
        ).rejects.toMatchObject(refused);
        await expect(
          other.s3.send(new PutObjectCommand({ Bucket, Key: 'jobs/x/FINAL_RESULT.md', Body: 'forged' })),
        ).rejects.toMatchObject({ name: 'AccessDenied', ...refused });
      } finally {
        other.ddb.destroy();
        other.sqs.destroy();
        other.s3.destroy();
      }
    }
    const { Item } = await clients.ddb.send(
      new GetCommand({ TableName: res.tableName, Key: { PK: 'KEY#x', SK: 'META' } }),
    );
    expect(Item).toBeUndefined();
    expect(await object('jobs/x/FINAL_RESULT.md')).toBeUndefined();
    const { Messages } = await clients.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: res.queueUrl, WaitTimeSeconds: 0 }),
    );
    expect(Messages ?? []).toEqual([]);

    // Shaped as each service answers, so an SDK reports it as what it is.
    const ddb = await fetch(emulators.endpoints.dynamodb, {
      method: 'POST',
      headers: {
        'x-amz-target': 'DynamoDB_20120810.ListTables',
        'content-type': 'application/x-amz-json-1.0',
      },
      body: '{}',
    });
    expect(ddb.status).toBe(403);
    expect(await ddb.json()).toMatchObject({ __type: 'com.amazon.coral.service#AccessDeniedException' });
    const s3 = await fetch(`${emulators.endpoints.s3}/${Bucket}?list-type=2`);
    expect(s3.status).toBe(403);
    expect(await s3.text()).toMatch(/<Error><Code>AccessDenied<\/Code>/);
  });

  it('a presigned URL carries no secret, and a genuine presigned PUT, GET and HEAD work', async () => {
    const body = 'exactly these bytes';
    const url = await getSignedUrl(
      clients.s3,
      new PutObjectCommand({ Bucket, Key: 'jobs/p/out.txt', ContentLength: Buffer.byteLength(body) }),
      { expiresIn: 60, signableHeaders: new Set(['host', 'content-length']) },
    );
    expect(url).not.toContain(emulators.env.ORCHESTRATOR_EMULATOR_SECRET);
    expect(url).not.toContain(emulators.env.AWS_SECRET_ACCESS_KEY);
    expect(new URL(url).searchParams.get('X-Amz-SignedHeaders')).toBe('content-length;host');
    expect((await put(url, { body })).status).toBe(200);
    expect(await object('jobs/p/out.txt')).toBe(body);

    const get = await getSignedUrl(clients.s3, new GetObjectCommand({ Bucket, Key: 'jobs/p/out.txt' }), {
      expiresIn: 60,
    });
    const got = await fetch(get);
    expect(got.status).toBe(200);
    expect(await got.text()).toBe(body);
    const head = await getSignedUrl(clients.s3, new HeadObjectCommand({ Bucket, Key: 'jobs/p/out.txt' }), {
      expiresIn: 60,
    });
    const headed = await fetch(head, { method: 'HEAD' });
    expect(headed.status).toBe(200);
    expect(headed.headers.get('content-length')).toBe(String(Buffer.byteLength(body)));
  });

  it('refuses a presigned PUT that was changed, and stores nothing', async () => {
    const body = 'mine';
    const Key = 'jobs/q/worker_1/mine.txt';
    const url = new URL(
      await getSignedUrl(
        clients.s3,
        new PutObjectCommand({ Bucket, Key, ContentLength: Buffer.byteLength(body) }),
        { expiresIn: 60, signableHeaders: new Set(['host', 'content-length']) },
      ),
    );
    await clients.s3.send(
      new PutObjectCommand({ Bucket, Key: 'jobs/victim/FINAL_RESULT.md', Body: 'original' }),
    );
    const changed = (edit: (u: URL) => void) => {
      const u = new URL(url);
      edit(u);
      return u.toString();
    };
    const attempts: [string, string, RequestInit][] = [
      [
        'another key',
        changed((u) => {
          u.pathname = `/${Bucket}/jobs/victim/FINAL_RESULT.md`;
        }),
        { body },
      ],
      [
        'another bucket',
        changed((u) => {
          u.pathname = `/other-bucket/${Key}`;
        }),
        { body },
      ],
      [
        'a forged signature',
        changed((u) => {
          u.searchParams.set('X-Amz-Signature', 'f'.repeat(64));
        }),
        { body },
      ],
      [
        'no signature',
        changed((u) => {
          u.searchParams.delete('X-Amz-Signature');
        }),
        { body },
      ],
      [
        'a longer life',
        changed((u) => {
          u.searchParams.set('X-Amz-Expires', '604800');
        }),
        { body },
      ],
      [
        'a later date',
        changed((u) => {
          u.searchParams.set('X-Amz-Date', '20991231T000000Z');
        }),
        { body },
      ],
      [
        'another operation',
        changed((u) => {
          u.searchParams.set('uploads', '');
        }),
        { body },
      ],
      [
        'fewer signed headers',
        changed((u) => {
          u.searchParams.set('X-Amz-SignedHeaders', 'host');
        }),
        { body },
      ],
      ['a bigger body', url.toString(), { body: `${body} and much more` }],
      ['a smaller body', url.toString(), { body: 'mi' }],
      [
        'an unsigned copy source',
        url.toString(),
        { body, headers: { 'x-amz-copy-source': `${Bucket}/jobs/victim/FINAL_RESULT.md` } },
      ],
      ['another method', url.toString(), { method: 'POST', body }],
      ['DELETE', url.toString(), { method: 'DELETE' }],
    ];
    for (const [what, target, init] of attempts) {
      const r = await put(target, init);
      expect([0, 403], `${what}: ${r.status} ${r.text}`).toContain(r.status);
    }
    expect(await object(Key)).toBeUndefined();
    expect(await object('jobs/victim/FINAL_RESULT.md')).toBe('original');
    expect((await put(url.toString(), { body })).status).toBe(200);
    expect(await object(Key)).toBe(body);
  });

  it("refuses an expired link, and one signed with keys other than the orchestrator's", async () => {
    const url = await getSignedUrl(clients.s3, new PutObjectCommand({ Bucket, Key: 'jobs/e/late.txt' }), {
      expiresIn: 1,
    });
    await new Promise((r) => setTimeout(r, 2_100));
    const late = await put(url, { body: 'late' });
    expect(late.status).toBe(403);
    expect(late.text).toMatch(/Request has expired/);

    for (const credentials of [
      { accessKeyId: 'local', secretAccessKey: 'local' },
      { accessKeyId: emulators.env.AWS_ACCESS_KEY_ID as string, secretAccessKey: 'guessed' },
    ]) {
      const s3 = new S3Client({
        region: emulators.env.AWS_REGION,
        endpoint: emulators.endpoints.s3,
        forcePathStyle: true,
        credentials,
      });
      const forged = await getSignedUrl(s3, new PutObjectCommand({ Bucket, Key: 'jobs/e/forged.txt' }), {
        expiresIn: 60,
      });
      s3.destroy();
      expect((await put(forged, { body: 'forged' })).status).toBe(403);
    }
    expect(await object('jobs/e/late.txt')).toBeUndefined();
    expect(await object('jobs/e/forged.txt')).toBeUndefined();
  });
});

describe.skipIf(EXTERNAL)('emulators with a dataDir', () => {
  /** Starts the emulators on `dataDir` twice in a row, running `round` against each start. */
  async function twoStarts(
    round: (n: 1 | 2, clients: AwsClients, dir: string) => Promise<void>,
  ): Promise<void> {
    const dir = await mkdtemp(join(tmpdir(), 'fleet-emulators-'));
    try {
      for (const n of [1, 2] as const) {
        const emulators = await startEmulators({ dataDir: dir });
        const clients = createAwsClients({ ...emulators.env });
        try {
          await ensureResources(clients, NAMES);
          await round(n, clients, dir);
        } finally {
          clients.ddb.destroy();
          clients.sqs.destroy();
          clients.s3.destroy();
          await emulators.stop();
        }
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
  it('keeps DynamoDB data across a restart', async () => {
    const key = { PK: 'JOB#persist', SK: 'META' };
    await twoStarts(async (round, clients) => {
      if (round === 1) {
        await clients.ddb.send(new PutCommand({ TableName: NAMES.tableName, Item: { ...key, v: 7 } }));
      } else {
        const { Item } = await clients.ddb.send(new GetCommand({ TableName: NAMES.tableName, Key: key }));
        expect(Item?.v).toBe(7);
      }
    });
  });

  it('keeps S3 objects across a restart, as last written, and no half-written one', async () => {
    const Bucket = NAMES.bucketName;
    const seen: Record<string, { body: string; etag?: string | undefined; modified?: Date | undefined }> = {};
    await twoStarts(async (round, clients, dir) => {
      if (round === 1) {
        await clients.s3.send(new PutObjectCommand({ Bucket, Key: 'jobs/a/one.txt', Body: 'first' }));
        await clients.s3.send(new PutObjectCommand({ Bucket, Key: 'jobs/a/one.txt', Body: 'second' }));
        await clients.s3.send(new PutObjectCommand({ Bucket, Key: 'jobs/a/gone.txt', Body: 'x' }));
        await clients.s3.send(new DeleteObjectCommand({ Bucket, Key: 'jobs/a/gone.txt' }));
        await clients.s3.send(
          new PutObjectCommand({
            Bucket,
            Key: 'jobs/a/b/#odd name?.md',
            Body: 'odd',
            ContentType: 'text/markdown',
          }),
        );
        for (const Key of ['jobs/a/one.txt', 'jobs/a/b/#odd name?.md']) {
          const head = await clients.s3.send(new HeadObjectCommand({ Bucket, Key }));
          const got = await clients.s3.send(new GetObjectCommand({ Bucket, Key }));
          seen[Key] = {
            body: await (got.Body as { transformToString(): Promise<string> }).transformToString(),
            etag: head.ETag,
            modified: head.LastModified,
          };
        }
        // What a crash mid-write leaves: a body no object names, and a temporary file.
        const bucketDir = join(dir, 's3', Bucket);
        await writeFile(join(bucketDir, `${'0'.repeat(64)}.abc.body`), 'orphan');
        await writeFile(join(bucketDir, 'x.json.tmp-1'), '{');
      } else {
        const listed = await clients.s3.send(new ListObjectsV2Command({ Bucket, Prefix: 'jobs/a/' }));
        expect((listed.Contents ?? []).map((o) => o.Key).sort()).toEqual([
          'jobs/a/b/#odd name?.md',
          'jobs/a/one.txt',
        ]);
        for (const [Key, before] of Object.entries(seen)) {
          const head = await clients.s3.send(new HeadObjectCommand({ Bucket, Key }));
          const got = await clients.s3.send(new GetObjectCommand({ Bucket, Key }));
          expect(await (got.Body as { transformToString(): Promise<string> }).transformToString()).toBe(
            before.body,
          );
          expect(head.ETag).toBe(before.etag);
          expect(head.LastModified?.toISOString()).toBe(before.modified?.toISOString());
        }
        expect(
          (await clients.s3.send(new HeadObjectCommand({ Bucket, Key: 'jobs/a/b/#odd name?.md' })))
            .ContentType,
        ).toBe('text/markdown');
        const files = await readdir(join(dir, 's3', Bucket));
        expect(files.filter((f) => !f.endsWith('.json') && !f.endsWith('.body'))).toEqual([]);
        expect(files.filter((f) => f.endsWith('.body'))).toHaveLength(2);
      }
    });
  });
});
