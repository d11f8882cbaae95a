/**
 * Local containment: what a hostile local worker holds and can reach. Its
 * environment is an allow-list (no orchestrator key, AWS settings or
 * Anthropic credential); the emulators on the shared loopback answer only
 * the orchestrator's secret header, or for S3 objects a URL the orchestrator
 * presigned for exactly that method, key and size; and on Linux each worker
 * runs in bubblewrap, seeing its own scratch folder read-write and system
 * folders read-only, never the user's home or repository, another worker's
 * checkout or the orchestrator's process.
 *
 * The stack requires bubblewrap (`orchestrator.sandbox: bwrap`): without it
 * it does not start, and these tests fail instead of passing unsandboxed.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, realpathSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { basename, dirname, join, sep } from 'node:path';
import { DynamoDBClient, ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { PurgeQueueCommand, ReceiveMessageCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiKeyStore } from '../../functions/adapters/api-key-store.ts';
import { finalReportKey, workerFilesPrefix } from '../../functions/core/layout.ts';
import { formatApiKey, sha256Hex } from '../../functions/core/tokens.ts';
import { PACKAGE_ROOT } from '../../functions/local/sandbox.ts';
import { type HeldWorker, type HostileStack, startHostileStack } from '../support/hostile-worker.ts';
import { git } from '../support/repos.ts';

/** Secrets in the orchestrator's own environment, as a user's shell would hold them. */
const ORCHESTRATOR_SECRETS: Record<string, string> = {
  ORCHESTRATOR_API_KEY: formatApiKey(randomBytes(24)),
  ANTHROPIC_API_KEY: `sk-ant-api03-${randomBytes(16).toString('hex')}`,
  ANTHROPIC_AUTH_TOKEN: `sk-ant-oat-${randomBytes(16).toString('hex')}`,
  AWS_ACCESS_KEY_ID: 'AKIAORCHESTRATORTEST',
  AWS_SECRET_ACCESS_KEY: randomBytes(30).toString('base64'),
  AWS_SESSION_TOKEN: randomBytes(30).toString('base64'),
  GITHUB_TOKEN: `ghp_${randomBytes(18).toString('hex')}`,
  GIT_TOKEN: `git-${randomBytes(12).toString('hex')}`,
  ORCHESTRATOR_GIT_TOKEN: `git-${randomBytes(12).toString('hex')}`,
  NODE_OPTIONS: '--max-old-space-size=4096',
};

/** A user's repository with a private file, outside anything a worker is given. */
const USER_REPO = join(tmpdir(), `fleet-user-repo-${randomBytes(4).toString('hex')}`);
const USER_SECRET = join(USER_REPO, 'private-notes.txt');
const USER_SECRET_TEXT = `the user's own notes ${randomBytes(8).toString('hex')}`;
/** Where the worker tries to write in the user's home; never created. */
const HOME_TARGET = join(homedir(), `.fleet-attack-${randomBytes(4).toString('hex')}`);
/** In the directory the orchestrator was started from (a repository, for `run`). */
const CWD_TARGET = join(process.cwd(), `fleet-attack-${randomBytes(4).toString('hex')}.txt`);

/** A probe path's `${NAME}`: the held session puts its own $NAME there. */
const sessionVar = (name: string): string => `$${'{'}${name}}`;

async function status(url: string, init: RequestInit = {}): Promise<{ status: number; text: string }> {
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(15_000) });
    return { status: res.status, text: await res.text() };
  } catch (err) {
    // The gate closes a refused upload's connection: a client still sending may see a reset.
    return { status: 0, text: (err as Error).message };
  }
}

describe('local containment', () => {
  let hostile: HostileStack;
  const saved: Record<string, string | undefined> = {};
  const jobs: string[] = [];

  beforeAll(async () => {
    for (const [k, v] of Object.entries(ORCHESTRATOR_SECRETS)) {
      saved[k] = process.env[k];
      process.env[k] = v;
    }
    await mkdir(USER_REPO, { recursive: true });
    await git(USER_REPO, 'init', '--quiet');
    await writeFile(USER_SECRET, USER_SECRET_TEXT);
    hostile = await startHostileStack(
      'orchestrator: {sandbox: bwrap}\nworkers: {max_workers: 4}',
      {},
      {
        writeTargets: [
          join(USER_REPO, 'pwned.txt'),
          HOME_TARGET,
          CWD_TARGET,
          // Next to its own folder: where the other workers' folders are on the host.
          `${sessionVar('WORKSPACE_DIR')}/../pwned-by-worker.txt`,
          `${sessionVar('FLEET_SHARED_OBJECTS')}/../pwned-by-worker.txt`,
        ],
        readTargets: [USER_SECRET, `/proc/${process.pid}/environ`, `/proc/${process.ppid}/environ`],
        listTargets: [
          `${sessionVar('WORKSPACE_DIR')}/..`,
          `${sessionVar('FLEET_SHARED_OBJECTS')}/..`,
          USER_REPO,
          homedir(),
        ],
      },
    );
    // The key `serve` registers from ORCHESTRATOR_API_KEY: one a worker would list and cancel jobs with.
    await hostile.createApiKey('tenant-a', 'serve', ORCHESTRATOR_SECRETS.ORCHESTRATOR_API_KEY);
  });

  afterAll(async () => {
    if (hostile) {
      await Promise.all(jobs.map((id) => hostile.waitForJob(id, 120_000).catch(() => undefined)));
      await hostile.stop();
    }
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    await rm(USER_REPO, { recursive: true, force: true });
    // Only if an attack got through; the assertions below report it.
    await rm(HOME_TARGET, { force: true });
    await rm(CWD_TARGET, { force: true });
  });

  const capture = async (label: string, prompt = 'a held worker'): Promise<HeldWorker> => {
    const w = await hostile.capture(
      { request: `containment: ${label}`, tasks: [{ prompt: `${prompt} [[hold:${label}]]` }] },
      undefined,
      undefined,
      120_000,
    );
    jobs.push(w.jobId);
    return w;
  };

  /** A completed job of the same tenant, and its FINAL_RESULT.md as stored. */
  const victim = async (): Promise<{ jobId: string; report: string }> => {
    const res = await hostile.api('POST', '/api/v1/orchestrate', {
      body: { request: 'a victim job', tasks: [{ prompt: 'the victim works' }] },
    });
    expect(res.status).toBe(202);
    const jobId = res.json.job_id as string;
    expect(await hostile.waitForJob(jobId, 120_000)).toBe('completed');
    const report = await hostile.deps.artifacts.getText(finalReportKey(jobId));
    expect(report).toBeDefined();
    return { jobId, report: report as string };
  };

  /** A presigned PUT the worker asks for its own file, as its session would. */
  const ownUploadLink = async (w: HeldWorker, path: string, size: number): Promise<string> => {
    const res = await hostile.withToken(
      w.token,
      'POST',
      `/api/v1/jobs/${w.jobId}/tasks/${w.taskNo}/uploads`,
      {
        attempt: w.attempt,
        files: [{ path, size_bytes: size }],
      },
    );
    expect(res.status, res.text).toBe(200);
    return res.json.files[0].url as string;
  };

  const dataPlane = () => hostile.dataPlane.env;
  const region = () => dataPlane().AWS_REGION as string;

  it('attack: worker reads ORCHESTRATOR_API_KEY from its env', async () => {
    const w = await capture('env');
    const seen = JSON.stringify(w.env);
    for (const [name, value] of Object.entries(ORCHESTRATOR_SECRETS)) {
      expect(w.env[name], name).toBeUndefined();
      expect(seen.includes(value), `${name}'s value`).toBe(false);
    }
    // Nor what reaches the emulators: their secret and the orchestrator's signing keys.
    for (const name of ['ORCHESTRATOR_EMULATOR_SECRET', 'AWS_SECRET_ACCESS_KEY', 'AWS_ACCESS_KEY_ID']) {
      expect(seen.includes(dataPlane()[name] as string), name).toBe(false);
    }
    expect(Object.keys(w.env).filter((k) => k.startsWith('AWS_') || k.startsWith('VITEST'))).toEqual([]);
    expect(w.probes.secrets).toEqual({});
    // What it does hold: its own token, the API, and that it is sandboxed.
    expect(w.env.TASK_TOKEN).toBe(w.token);
    expect(w.env.IS_SANDBOX).toBe('1');
    // The key it would have used still works for the user, and the worker's job is untouched by it.
    const list = await hostile.api('GET', '/api/v1/jobs', {
      headers: { 'x-api-key': ORCHESTRATOR_SECRETS.ORCHESTRATOR_API_KEY as string },
    });
    expect(list.status).toBe(200);
    await w.release();
    expect(await hostile.waitForJob(w.jobId, 120_000)).toBe('completed');
  });

  it("attack: worker reads the orchestrator's environment through /proc", async () => {
    const w = await capture('proc');
    const reads = w.probes.reads ?? [];
    expect(reads.map((r) => r.path)).toEqual([
      USER_SECRET,
      `/proc/${process.pid}/environ`,
      `/proc/${process.ppid}/environ`,
    ]);
    // Its own pid namespace: the orchestrator's processes do not exist in there.
    for (const r of reads.slice(1)) {
      expect(r.read, r.path).toBe(false);
      for (const value of Object.values(ORCHESTRATOR_SECRETS))
        expect((r.text ?? '').includes(value)).toBe(false);
    }
    await w.release();
  });

  it('attack: worker mints an API key in local DynamoDB', async () => {
    const w = await capture('dynamodb');
    const minted = formatApiKey(randomBytes(24));
    const sha256 = sha256Hex(minted);
    const record = {
      sha256,
      keyId: sha256.slice(0, 12),
      tenant: 'tenant-a',
      name: 'minted',
      createdAt: new Date().toISOString(),
    };
    const endpoint = dataPlane().AWS_ENDPOINT_URL_DYNAMODB as string;
    // Any credentials, as before; then even the orchestrator's own keys, without its secret header.
    for (const credentials of [
      { accessKeyId: 'local', secretAccessKey: 'local' },
      {
        accessKeyId: dataPlane().AWS_ACCESS_KEY_ID as string,
        secretAccessKey: dataPlane().AWS_SECRET_ACCESS_KEY as string,
      },
    ]) {
      const raw = new DynamoDBClient({ region: region(), endpoint, credentials, maxAttempts: 1 });
      const keys = new ApiKeyStore(DynamoDBDocumentClient.from(raw), hostile.dataPlane.tableName);
      await expect(keys.putApiKey(record)).rejects.toMatchObject({
        name: 'AccessDeniedException',
        $metadata: { httpStatusCode: 403 },
      });
      await expect(raw.send(new ListTablesCommand({}))).rejects.toMatchObject({
        $metadata: { httpStatusCode: 403 },
      });
      raw.destroy();
    }
    expect(await hostile.deps.keys.getApiKey(sha256)).toBeUndefined();
    const use = await hostile.api('GET', '/api/v1/jobs', { headers: { 'x-api-key': minted } });
    expect(use.status).toBe(401);
    await w.release();
    expect(await hostile.waitForJob(w.jobId, 120_000)).toBe('completed');
  });

  it('attack: worker sends SQS messages', async () => {
    const w = await capture('sqs');
    const endpoint = dataPlane().AWS_ENDPOINT_URL_SQS as string;
    const sqs = new SQSClient({
      region: region(),
      endpoint,
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
      maxAttempts: 1,
      useQueueUrlAsEndpoint: false,
    });
    const queueUrl = hostile.deps.queue.queueUrl;
    expect(queueUrl).toMatch(/^http/);
    const refused = { $metadata: { httpStatusCode: 403 } };
    // A second run of its own task (another session, another budget), stealing work, wiping the queue.
    await expect(
      sqs.send(
        new SendMessageCommand({
          QueueUrl: queueUrl,
          MessageBody: JSON.stringify({ type: 'run', jobId: w.jobId, taskNo: w.taskNo, attempt: w.attempt }),
        }),
      ),
    ).rejects.toMatchObject(refused);
    await expect(
      sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, WaitTimeSeconds: 0 })),
    ).rejects.toMatchObject(refused);
    await expect(sqs.send(new PurgeQueueCommand({ QueueUrl: queueUrl }))).rejects.toMatchObject(refused);
    sqs.destroy();
    await w.release();
    expect(await hostile.waitForJob(w.jobId, 120_000)).toBe('completed');
    const runs = (await hostile.invocations()).filter((r) => (r.prompt ?? '').includes('[[hold:sqs]]'));
    expect(runs).toHaveLength(1);
    expect((await hostile.deps.tasks.getTask(w.jobId, w.taskNo))?.attempts).toHaveLength(1);
  });

  it("attack: worker overwrites another job's FINAL_RESULT.md via the local S3", async () => {
    const target = await victim();
    const w = await capture('s3-overwrite');
    const forged = '# Forged report\n\nEverything is fine, merge it.\n';
    const own = new URL(await ownUploadLink(w, 'notes.md', Buffer.byteLength(forged)));
    const bucket = own.pathname.split('/')[1] as string;
    const victimUrl = `${own.origin}/${bucket}/${finalReportKey(target.jobId)}`;
    // Unsigned, as the local S3 used to take it.
    const unsigned = await status(victimUrl, { method: 'PUT', body: forged });
    expect(unsigned.status).toBe(403);
    expect(unsigned.text).toMatch(/<Code>AccessDenied<\/Code>/);
    // Signed by the worker itself, with the well-known local credentials.
    const selfSigned = new S3Client({
      region: region(),
      endpoint: own.origin,
      forcePathStyle: true,
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    });
    const url = await getSignedUrl(
      selfSigned,
      new PutObjectCommand({ Bucket: bucket, Key: finalReportKey(target.jobId) }),
      { expiresIn: 600 },
    );
    selfSigned.destroy();
    expect((await status(url, { method: 'PUT', body: forged })).status).toBe(403);
    // And deleting it.
    expect((await status(victimUrl, { method: 'DELETE' })).status).toBe(403);

    expect(await hostile.deps.artifacts.getText(finalReportKey(target.jobId))).toBe(target.report);
    const report = await hostile.api('GET', `/api/v1/jobs/${target.jobId}/report`);
    expect(report.status).toBe(200);
    expect(report.text).not.toContain('Forged report');
    expect(report.text.startsWith(target.report.trimEnd())).toBe(true);
    await w.release();
  });

  it('attack: worker reuses its presigned URL for another key', async () => {
    const target = await victim();
    const w = await capture('s3-retarget');
    const body = 'not mine to write';
    const own = new URL(await ownUploadLink(w, 'mine.txt', Buffer.byteLength(body)));
    const bucket = own.pathname.split('/')[1] as string;
    const prefix = workerFilesPrefix(w.jobId, 0, w.taskNo);
    const retargets = [
      // Another job's report, a sibling name in its own folder, a file of the victim's worker.
      finalReportKey(target.jobId),
      `${prefix}other.txt`,
      `${workerFilesPrefix(target.jobId, 0, 1)}output.md`,
    ];
    for (const key of retargets) {
      const moved = new URL(own);
      moved.pathname = `/${bucket}/${key}`;
      const res = await status(moved.toString(), { method: 'PUT', body });
      expect(res.status, key).toBe(403);
      expect(res.text).toMatch(/SignatureDoesNotMatch/);
    }
    // The same link with its own key but another method, a longer life, or another operation.
    const asGet = await status(own.toString(), { method: 'GET' });
    expect(asGet.status).toBe(403);
    const longer = new URL(own);
    longer.searchParams.set('X-Amz-Expires', '604800');
    expect((await status(longer.toString(), { method: 'PUT', body })).status).toBe(403);
    const extra = new URL(own);
    extra.searchParams.set('x-id', 'CopyObject');
    expect((await status(extra.toString(), { method: 'PUT', body })).status).toBe(403);

    expect(await hostile.deps.artifacts.getText(finalReportKey(target.jobId))).toBe(target.report);
    expect(await hostile.deps.artifacts.size(`${prefix}other.txt`)).toBeUndefined();
    // The genuine use of the link still works.
    expect((await status(own.toString(), { method: 'PUT', body })).status).toBe(200);
    expect(await hostile.deps.artifacts.getText(`${prefix}mine.txt`)).toBe(body);
    await w.release();
  });

  it("attack: worker turns its upload link into a copy of another job's report", async () => {
    const target = await victim();
    const w = await capture('s3-copy');
    const own = new URL(await ownUploadLink(w, 'copy.md', 0));
    const bucket = own.pathname.split('/')[1] as string;
    // An unsigned x-amz-* header would make the PUT a server-side copy of the victim's report.
    const res = await status(own.toString(), {
      method: 'PUT',
      headers: { 'x-amz-copy-source': `${bucket}/${finalReportKey(target.jobId)}` },
      body: '',
    });
    expect(res.status).toBe(403);
    expect(res.text).toMatch(/not signed/);
    expect(
      await hostile.deps.artifacts.size(`${workerFilesPrefix(w.jobId, 0, w.taskNo)}copy.md`),
    ).toBeUndefined();
    await w.release();
  });

  it('attack: worker replays an expired upload link', async () => {
    const w = await capture('s3-expired');
    const key = `${workerFilesPrefix(w.jobId, 0, w.taskNo)}late.txt`;
    const url = await hostile.deps.artifacts.presignPut(key, 1, 4);
    await new Promise((r) => setTimeout(r, 2_100));
    const res = await status(url, { method: 'PUT', body: 'late' });
    expect(res.status).toBe(403);
    expect(res.text).toMatch(/expired/);
    expect(await hostile.deps.artifacts.size(key)).toBeUndefined();
    await w.release();
  });

  it("attack: worker writes to the user's repository / home", async () => {
    const w = await capture('writes');
    const writes = new Map((w.probes.writes ?? []).map((x) => [x.path, x]));
    // Outside its sandbox nothing of these exists: the user's repository, home and working folder.
    expect(existsSync(join(USER_REPO, 'pwned.txt'))).toBe(false);
    expect(existsSync(HOME_TARGET)).toBe(false);
    expect(existsSync(CWD_TARGET)).toBe(false);
    // The home and the orchestrator's folder are read-only in there; the repository is not even shown.
    expect(writes.get(HOME_TARGET)?.written).toBe(false);
    expect(writes.get(CWD_TARGET)).toMatchObject({ written: false, error: 'EROFS' });
    expect(await git(USER_REPO, 'status', '--porcelain')).toBe('?? private-notes.txt');
    await w.release();
    expect(await hostile.waitForJob(w.jobId, 120_000)).toBe('completed');
  });

  it("attack: worker reads the user's repository", async () => {
    const w = await capture('reads');
    const read = (w.probes.reads ?? []).find((r) => r.path === USER_SECRET);
    expect(read).toMatchObject({ read: false, error: 'ENOENT' });
    // In its private /tmp the repository's folder holds only what the worker itself wrote there,
    // and the user's home is not shown at all (its own HOME is elsewhere).
    const listings = new Map((w.probes.listings ?? []).map((l) => [l.path, l]));
    expect(listings.get(USER_REPO)?.entries).toEqual(['pwned.txt']);
    // Only the way to what it must run (Node, the orchestrator's code), when those live in the home.
    const shown = listings.get(homedir())?.entries ?? [];
    const runtime = [PACKAGE_ROOT, dirname(dirname(realpathSync(process.execPath)))];
    expect(shown.filter((name) => !runtime.some((p) => p.startsWith(join(homedir(), name, sep))))).toEqual(
      [],
    );
    expect(w.env.HOME).not.toBe(homedir());
    expect(JSON.stringify(w.probes)).not.toContain(USER_SECRET_TEXT);
    await w.release();
  });

  it("attack: worker reads another worker's checkout", async () => {
    const a = await capture('checkout-a');
    // What A has in its folder, as a session would leave it.
    const secret = `worker a's work ${randomBytes(6).toString('hex')}`;
    await writeFile(join(a.cwd, 'draft.md'), secret);
    const b = await capture('checkout-b');
    const own = basename(b.env.WORKSPACE_DIR as string);
    const other = basename(a.env.WORKSPACE_DIR as string);
    expect(own).not.toBe(other);
    // On the host both folders are side by side ...
    expect(existsSync(join(dirname(b.env.WORKSPACE_DIR as string), other))).toBe(true);
    // ... but B sees only its own folder, the shared object store, and the file it wrote itself.
    const listing = (b.probes.listings ?? []).find((l) => l.path === `${b.env.WORKSPACE_DIR}/..`);
    expect(listing?.entries?.sort()).toEqual(['.objects', own, 'pwned-by-worker.txt'].sort());
    expect(JSON.stringify(b.probes)).not.toContain(secret);
    // A write next to its folder stays in B's private /tmp.
    expect(existsSync(join(dirname(b.env.WORKSPACE_DIR as string), 'pwned-by-worker.txt'))).toBe(false);
    expect(await readFile(join(a.cwd, 'draft.md'), 'utf8')).toBe(secret);
    await a.release();
    await b.release();
    expect(await hostile.waitForJob(a.jobId, 120_000)).toBe('completed');
    expect(await hostile.waitForJob(b.jobId, 120_000)).toBe('completed');
  });

  it("attack: worker plants objects in another job's shared git object store", async () => {
    const a = await capture('objects-a');
    const b = await capture('objects-b');
    expect(a.jobId).not.toBe(b.jobId);
    // Both jobs' stores sit side by side on the host ...
    const objects = dirname(b.env.FLEET_SHARED_OBJECTS as string);
    expect(b.env.FLEET_SHARED_OBJECTS).toBe(join(objects, b.jobId));
    expect(existsSync(join(objects, a.jobId))).toBe(true);
    // ... but B may write only its own job's: A's is not shown, and a write beside it stays private.
    const stores = (b.probes.listings ?? []).find((l) => l.path === `${b.env.FLEET_SHARED_OBJECTS}/..`);
    expect(stores?.entries?.sort()).toEqual([b.jobId, 'pwned-by-worker.txt'].sort());
    expect(existsSync(join(objects, 'pwned-by-worker.txt'))).toBe(false);
    expect(await readdir(join(objects, a.jobId))).toEqual([]);
    await a.release();
    await b.release();
  });

  it('a normal job completes inside the sandbox, its files stored and its report written', async () => {
    const res = await hostile.api('POST', '/api/v1/orchestrate', {
      body: {
        request: 'a normal job',
        tasks: [{ prompt: 'write things [[files:2]]' }, { prompt: 'and more' }],
      },
    });
    expect(res.status).toBe(202);
    const jobId = res.json.job_id as string;
    expect(await hostile.waitForJob(jobId, 120_000)).toBe('completed');
    const view = (await hostile.api('GET', `/api/v1/jobs/${jobId}`)).json;
    expect(view.results.tasks.map((t: { status: string }) => t.status)).toEqual(['succeeded', 'succeeded']);
    const files = (await hostile.deps.artifacts.list(workerFilesPrefix(jobId, 0, 1))).map((o) =>
      o.key.slice(workerFilesPrefix(jobId, 0, 1).length),
    );
    expect(files).toEqual(expect.arrayContaining(['file_1.txt', 'file_2.txt', 'notes/summary.md']));
    expect(await hostile.deps.artifacts.getText(finalReportKey(jobId))).toMatch(/a normal job|Task/);
    const sessions = (await hostile.invocations()).filter((r) => (r.prompt ?? '').includes('write things'));
    expect(sessions[0]?.envKeys).toEqual(expect.arrayContaining(['IS_SANDBOX', 'CLAUDE_CODE_BUBBLEWRAP']));
  });
});
