/**
 * Repository sources through the real local stack: `POST /api/v1/sources`
 * hands out a presigned upload for a bounded size; a submit naming an upload
 * (or a git URL) is checked before anything is written: unknown or foreign
 * ids, files that are not complete bundles, oversized uploads and unsafe URLs
 * or refs are refused with the field named. The worker result route checks a
 * `git` report against its task's kind.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAwsClients } from '../../functions/adapters/aws-clients.ts';
import type { LaunchRequest } from '../../functions/adapters/launcher.ts';
import { EXTERNAL } from '../support/backend.ts';
import { startTestStack, type TestStack } from '../support/harness.ts';
import { bundleOf, git, sampleRepo, uploadSource } from '../support/repos.ts';

const ORCHESTRATE = '/api/v1/orchestrate';
const SOURCES = '/api/v1/sources';
const MAX_SOURCE_BYTES = 1024 * 1024;
/** A well-formed bundle id nobody was given. */
const UNKNOWN_BUNDLE = `src_${'0'.repeat(32)}`;

interface Issue {
  path: string;
  message: string;
}

describe('repository sources: uploads, submit checks, git results', () => {
  let stack: TestStack;
  let keyB: string;
  let dir: string;
  let tip: string;
  let feature: string;
  /** `git bundle create … main`: the whole history, tip of main. */
  let fullBundle: Buffer;
  /** `base..main`: needs the base commit, which it does not contain. */
  let incrementalBundle: Buffer;
  /** Two branches, neither of them main: the caller must name one. */
  let ambiguousBundle: Buffer;
  /** Launch requests of every worker this stack started, tokens included. */
  const launches: LaunchRequest[] = [];
  /** Every job this file creates, awaited before the stack stops. */
  const created: string[] = [];

  const submit = (body: unknown, apiKey?: string) =>
    stack.api('POST', ORCHESTRATE, { body, ...(apiKey ? { headers: { 'x-api-key': apiKey } } : {}) });

  /** A submission on `source` that must be refused with `status`, an issue at `path`, and no job. */
  async function expectRefused(source: unknown, status: number, path: string, message?: RegExp) {
    const submittedBefore = stack.logs.filter((l) => l.message === 'job submitted').length;
    const res = await submit({ request: 'change the repo', source, tasks: [{ prompt: 'p' }] });
    expect(res.status, res.text).toBe(status);
    expect(res.json.job_id).toBeUndefined();
    const issue = (res.json.issues as Issue[] | undefined)?.find((i) => i.path === path);
    expect(issue, `no issue at ${path}: ${res.text}`).toBeDefined();
    if (message) expect(issue?.message).toMatch(message);
    expect(res.text).not.toMatch(/at .*\.ts:\d+|node_modules/);
    expect(stack.logs.filter((l) => l.message === 'job submitted')).toHaveLength(submittedBefore);
    return res;
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'orch-sources-'));
    const repo = join(dir, 'repo');
    const base = await sampleRepo(repo, { 'README.md': '# Sample\n', 'src/a.ts': 'export const a = 1;\n' });
    await writeFile(join(repo, 'README.md'), '# Sample\n\nSecond.\n');
    await git(repo, 'commit', '--quiet', '-am', 'Second');
    tip = await git(repo, 'rev-parse', 'HEAD');
    await git(repo, 'branch', 'feature', base);
    await git(repo, 'branch', 'other', tip);
    feature = base;
    fullBundle = await readFile(await bundleOf(repo, join(dir, 'full.bundle')));
    incrementalBundle = await readFile(
      await bundleOf(repo, join(dir, 'incremental.bundle'), `${base}..main`),
    );
    await git(repo, 'bundle', 'create', '--quiet', join(dir, 'ambiguous.bundle'), 'feature', 'other');
    ambiguousBundle = await readFile(join(dir, 'ambiguous.bundle'));

    stack = await startTestStack(`limits: {max_source_mb: 1}`);
    keyB = await stack.createApiKey('tenant-b');
    // Keep every launch request: its task token is what a worker presents.
    const launch = stack.launcher.launch.bind(stack.launcher);
    stack.launcher.launch = (request) => {
      launches.push(request);
      return launch(request);
    };
  });
  afterAll(async () => {
    if (stack) {
      await Promise.all(created.map((id) => stack.waitForJob(id).catch(() => undefined)));
      await stack.stop();
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  describe('POST /api/v1/sources', () => {
    it('answers 201 with a bundle id, a presigned PUT that signs content-length, and max_bytes', async () => {
      const res = await stack.api('POST', SOURCES, { body: { size_bytes: 12_345 } });
      expect(res.status, res.text).toBe(201);
      expect(res.json).toEqual({
        bundle_id: expect.stringMatching(/^src_[0-9a-f]{32}$/),
        upload: { method: 'PUT', url: expect.any(String), headers: { 'content-length': '12345' } },
        expires_in: expect.any(Number),
        max_bytes: MAX_SOURCE_BYTES,
      });
      const url = new URL(res.json.upload.url);
      const signed = (url.searchParams.get('X-Amz-SignedHeaders') ?? '').split(';');
      expect(signed).toContain('content-length');
      expect(signed).toContain('host');
      // The tenant is part of the key, never the caller's choice.
      expect(url.pathname).toMatch(new RegExp(`/sources/[0-9a-f]{16}/${res.json.bundle_id}\\.bundle$`));
      expect(res.json.expires_in).toBeGreaterThan(0);
    });

    it('gives a new id every time', async () => {
      const ids = new Set<string>();
      for (let i = 0; i < 3; i++)
        ids.add((await stack.api('POST', SOURCES, { body: { size_bytes: 1 } })).json.bundle_id);
      expect(ids.size).toBe(3);
    });

    it('takes exactly limits.max_source_mb', async () => {
      const res = await stack.api('POST', SOURCES, { body: { size_bytes: MAX_SOURCE_BYTES } });
      expect(res.status, res.text).toBe(201);
    });

    it('refuses a size over limits.max_source_mb with 413 too_large naming the limit', async () => {
      const res = await stack.api('POST', SOURCES, { body: { size_bytes: MAX_SOURCE_BYTES + 1 } });
      expect(res.status, res.text).toBe(413);
      expect(res.json).toMatchObject({
        code: 'too_large',
        limit: 'max_source_mb',
        allowed: MAX_SOURCE_BYTES,
        requested: MAX_SOURCE_BYTES + 1,
      });
      expect(res.json.error).toMatch(/limits\.max_source_mb/);
      expect(res.json.issues).toEqual([{ path: 'size_bytes', message: `at most ${MAX_SOURCE_BYTES}` }]);
    });

    it.each([
      ['missing', {}],
      ['a fraction', { size_bytes: 1.5 }],
      ['a string', { size_bytes: '100' }],
      ['zero', { size_bytes: 0 }],
      ['negative', { size_bytes: -5 }],
      ['null', { size_bytes: null }],
    ])('refuses a size_bytes that is %s with 400 naming size_bytes', async (_what, body) => {
      const res = await stack.api('POST', SOURCES, { body });
      expect(res.status, res.text).toBe(400);
      expect(res.json.code).toBe('bad_request');
      expect(res.json.issues.map((i: Issue) => i.path)).toContain('size_bytes');
    });

    it('refuses unknown fields', async () => {
      const res = await stack.api('POST', SOURCES, { body: { size_bytes: 10, name: 'repo' } });
      expect(res.status).toBe(400);
      expect(res.json.issues[0].message).toMatch(/unknown field.*name/);
    });

    it('needs an API key', async () => {
      const res = await stack.api('POST', SOURCES, {
        body: { size_bytes: 10 },
        headers: { 'x-api-key': '' },
      });
      expect(res.status).toBe(401);
    });
  });

  describe('submit with source.bundle_id', () => {
    let neverUploaded: { status: number; json: unknown };

    it('refuses an id that was never uploaded, naming source.bundle_id', async () => {
      neverUploaded = await expectRefused(
        { bundle_id: UNKNOWN_BUNDLE },
        400,
        'source.bundle_id',
        /nothing was uploaded/,
      );
      // An id handed out but never uploaded to is the same.
      const handedOut = (await stack.api('POST', SOURCES, { body: { size_bytes: 100 } })).json.bundle_id;
      const res = await expectRefused({ bundle_id: handedOut }, 400, 'source.bundle_id');
      expect(res.json).toEqual(neverUploaded.json);
    });

    it("refuses another tenant's uploaded bundle exactly like one that does not exist", async () => {
      const asB = {
        api: (method: string, path: string, init: Parameters<TestStack['api']>[2] = {}) =>
          stack.api(method, path, { ...init, headers: { ...init.headers, 'x-api-key': keyB } }),
      };
      const idOfB = await uploadSource(asB, fullBundle);
      const res = await expectRefused({ bundle_id: idOfB }, 400, 'source.bundle_id');
      expect(res.json).toEqual(neverUploaded.json);
    });

    it('refuses a malformed bundle id', async () => {
      await expectRefused(
        { bundle_id: 'src_../../etc/passwd' },
        400,
        'source.bundle_id',
        /POST \/api\/v1\/sources/,
      );
    });

    it('refuses an upload that is not a git bundle', async () => {
      const id = await uploadSource(stack, randomBytes(4096));
      await expectRefused({ bundle_id: id }, 400, 'source.bundle_id', /not a git bundle/);
    });

    it('refuses an incremental bundle, saying to bundle the whole history', async () => {
      const id = await uploadSource(stack, incrementalBundle);
      await expectRefused({ bundle_id: id }, 400, 'source.bundle_id', /bundle the whole history/);
    });

    it('refuses a bundle with several refs and no source.ref, naming them', async () => {
      const id = await uploadSource(stack, ambiguousBundle);
      await expectRefused(
        { bundle_id: id },
        400,
        'source.bundle_id',
        /several refs \(refs\/heads\/(feature|other), refs\/heads\/(feature|other)\); name one with source\.ref/,
      );
      await expectRefused({ bundle_id: id, ref: 'main' }, 400, 'source.ref', /no ref main/);
      await expectRefused({ bundle_id: id, ref: '-x' }, 400, 'source.ref', /must not start with -/);
    });

    // Known bug: services/sources.ts resolveJobSource copies the upload to jobs/<new id>/git/base.bundle
    // before reading its header, and leaves the copy behind when it refuses the bundle, for a job that is
    // never created. Flip to `it` once fixed.
    it('leaves no copy under jobs/ for the bundles it refused', async () => {
      const copies = (await stack.deps.artifacts.list('jobs/')).filter((o) =>
        o.key.endsWith('/git/base.bundle'),
      );
      const orphans: string[] = [];
      for (const copy of copies) {
        const jobId = copy.key.split('/')[1] as string;
        if (!(await stack.deps.jobs.getJob(jobId))) orphans.push(copy.key);
      }
      expect(orphans).toEqual([]);
    });

    it.skipIf(EXTERNAL)('refuses an upload larger than the limit with 413 at submit', async () => {
      // The URL is signed for 100 bytes: the embedded S3's gate, like S3, refuses any other size.
      const createdSource = await stack.api('POST', SOURCES, { body: { size_bytes: 100 } });
      expect(createdSource.status).toBe(201);
      const oversized = Buffer.concat([fullBundle, Buffer.alloc(MAX_SOURCE_BYTES)]);
      const put = await fetch(createdSource.json.upload.url, { method: 'PUT', body: oversized });
      expect(put.status).toBe(403);
      // Submit still checks the size (a store that took it anyway): plant it with the orchestrator's own client.
      const key = decodeURIComponent(
        new URL(createdSource.json.upload.url).pathname.split('/').slice(2).join('/'),
      );
      const { s3 } = createAwsClients(stack.dataPlane.env);
      await s3.send(new PutObjectCommand({ Bucket: stack.deps.artifacts.bucket, Key: key, Body: oversized }));
      s3.destroy();
      const res = await expectRefused({ bundle_id: createdSource.json.bundle_id }, 413, 'size_bytes');
      expect(res.json).toMatchObject({
        code: 'too_large',
        limit: 'max_source_mb',
        allowed: MAX_SOURCE_BYTES,
        requested: fullBundle.length + MAX_SOURCE_BYTES,
      });
    });

    it('starts a job from a valid bundle: 202, and result.git.base_commit is the bundle tip', async () => {
      const id = await uploadSource(stack, fullBundle);
      const res = await submit({
        request: 'change the repo',
        source: { bundle_id: id },
        // The test double writes nothing, so the job has no branch.
        tasks: [{ prompt: 'Look only [[no_files]]' }],
      });
      expect(res.status, res.text).toBe(202);
      const jobId = res.json.job_id as string;
      created.push(jobId);
      const result = await stack.api('GET', `/api/v1/jobs/${jobId}`);
      expect(result.status).toBe(200);
      expect(result.json.git).toMatchObject({
        source: { kind: 'bundle', ref: 'refs/heads/main' },
        base_commit: tip,
      });
      expect(await stack.waitForJob(jobId)).toBe('completed');
      // The worker changed nothing: there is no branch to download.
      for (const suffix of ['patch', 'bundle']) {
        const none = await stack.api('GET', `/api/v1/jobs/${jobId}/${suffix}`);
        expect(none.status, none.text).toBe(404);
        expect(none.json.error).toBe(`job ${jobId} changed nothing in the repository`);
      }
    });

    it('takes the ref named by source.ref from a bundle with several refs', async () => {
      const id = await uploadSource(stack, ambiguousBundle);
      const res = await submit({
        request: 'change the repo',
        source: { bundle_id: id, ref: 'feature' },
        tasks: [{ prompt: 'Add a file [[create:added.txt:hello]]' }],
      });
      expect(res.status, res.text).toBe(202);
      const jobId = res.json.job_id as string;
      created.push(jobId);
      const result = await stack.api('GET', `/api/v1/jobs/${jobId}`);
      expect(result.json.git).toMatchObject({
        source: { kind: 'bundle', ref: 'refs/heads/feature' },
        base_commit: feature,
      });
      expect(await stack.waitForJob(jobId)).toBe('completed');
      // The worker's change is a branch on top of that ref: its patch and bundle are there.
      const bundle = await stack.api('GET', `/api/v1/jobs/${jobId}/bundle`);
      expect(bundle.status, bundle.text).toBe(200);
      expect(bundle.json).toMatchObject({ job_id: jobId, branch: `fleet/${jobId}`, base_commit: feature });
      expect(bundle.json.head_commit).toMatch(/^[0-9a-f]{40}$/);
      expect(bundle.json.head_commit).not.toBe(feature);
      const patch = await stack.api('GET', `/api/v1/jobs/${jobId}/patch`);
      expect(patch.status, patch.text).toBe(200);
      expect(patch.headers.get('content-type')).toMatch(/^text\/x-diff/);
      expect(patch.text).toContain('+++ b/added.txt');
      expect(patch.text).toContain('+hello');
    });
  });

  describe('submit with source.git', () => {
    it.each([
      ['both git and bundle_id', { git: { url: 'https://example.com/r.git' }, bundle_id: UNKNOWN_BUNDLE }],
      ['neither', {}],
      ['only a ref', { ref: 'main' }],
    ])('refuses %s, naming source', async (_what, source) => {
      await expectRefused(source, 400, 'source', /exactly one of git or bundle_id/);
    });

    it.each([
      ['http:// (not allowed by default)', 'http://example.com/r.git', /https:\/\//],
      ['file://', 'file:///tmp/x', /https:\/\//],
      ['credentials in the URL', 'https://user:pw@example.com/x', /credentials/],
      ['ext:: (a command)', 'ext::sh -c id', /https:\/\//],
      ['scp-like ssh', 'git@example.com:org/repo.git', /absolute https:\/\//],
      ['a quote', 'https://example.com/r".git', /quotes/],
    ])('refuses %s, naming source.git.url', async (_what, url, message) => {
      await expectRefused({ git: { url } }, 400, 'source.git.url', message);
    });

    it.each([
      ['-x', /must not start with -/],
      ['a..b', /not a valid git ref/],
      ['a b', /character/],
    ])('refuses the ref %j, naming source.git.ref', async (ref, message) => {
      await expectRefused({ git: { url: 'https://example.com/r.git', ref } }, 400, 'source.git.ref', message);
    });

    it('refuses source.ref next to git, pointing at git.ref', async () => {
      await expectRefused(
        { git: { url: 'https://example.com/r.git' }, ref: 'main' },
        400,
        'source.ref',
        /git\.ref/,
      );
    });

    it('refuses unknown fields in source and source.git', async () => {
      await expectRefused({ bundle_id: UNKNOWN_BUNDLE, sha: 'abc' }, 400, 'source', /unknown field.*sha/);
      await expectRefused(
        { git: { url: 'https://example.com/r.git', depth: 1 } },
        400,
        'source.git',
        /depth/,
      );
    });
  });

  describe('a job without a repository', () => {
    it('has no patch and no bundle (404)', async () => {
      const res = await submit({ request: 'no repo', tasks: [{ prompt: 'p' }] });
      expect(res.status, res.text).toBe(202);
      const jobId = res.json.job_id as string;
      created.push(jobId);
      for (const suffix of ['patch', 'bundle']) {
        const none = await stack.api('GET', `/api/v1/jobs/${jobId}/${suffix}`);
        expect(none.status, none.text).toBe(404);
        expect(none.json).toEqual({ error: `job ${jobId} has no repository`, code: 'not_found' });
      }
      expect(await stack.waitForJob(jobId)).toBe('completed');
      expect((await stack.api('GET', `/api/v1/jobs/${jobId}`)).json.git).toBeUndefined();
    });

    it("is a 404 like any unknown job for another tenant's patch", async () => {
      const jobId = created[created.length - 1] as string;
      const res = await stack.api('GET', `/api/v1/jobs/${jobId}/patch`, { headers: { 'x-api-key': keyB } });
      expect(res.status).toBe(404);
      expect(res.json).toEqual({ error: `job ${jobId} not found`, code: 'not_found' });
    });
  });

  describe('with a task token', () => {
    let jobId: string;
    let token: string;
    const asWorker = (method: string, path: string, body: unknown) =>
      stack.api(method, path, { body, headers: { 'x-api-key': '', 'x-task-token': token } });

    beforeAll(async () => {
      const res = await submit({ request: 'token holder', tasks: [{ prompt: 'p' }] });
      expect(res.status, res.text).toBe(202);
      jobId = res.json.job_id;
      created.push(jobId);
      // The token stays genuine after the attempt ends (auth.ts); each route checks the rest.
      expect(await stack.waitForJob(jobId)).toBe('completed');
      const launch = launches.find((l) => l.jobId === jobId && l.taskNo === 1);
      expect(launch, JSON.stringify(launches)).toBeDefined();
      token = (launch as LaunchRequest).taskToken;
      expect(token).toMatch(new RegExp(`^tt1\\.${jobId}\\.1\\.1\\.`));
    });

    it('cannot create a source (403)', async () => {
      const res = await asWorker('POST', SOURCES, { size_bytes: 100 });
      expect(res.status, res.text).toBe(403);
      expect(res.json).toEqual({ error: 'this route needs an API key', code: 'forbidden' });
    });

    it('cannot report a git result that does not fit a work task', async () => {
      const result = `/api/v1/jobs/${jobId}/tasks/1/result`;
      const base = { attempt: 1, status: 'succeeded', output: 'forged' };
      const res = await asWorker('POST', result, { ...base, git: { commit: 'nothx' } });
      expect(res.status, res.text).toBe(400);
      expect(res.json.code).toBe('bad_request');
      const paths = (res.json.issues as Issue[]).map((i) => i.path);
      expect(paths).toEqual(
        expect.arrayContaining(['git.commit', 'git.files', 'git.insertions', 'git.deletions']),
      );
      expect((res.json.issues as Issue[]).find((i) => i.path === 'git.commit')?.message).toBe(
        'a full git object id',
      );

      // A merge step's report on a work task: unknown fields, named.
      const merge = await asWorker('POST', result, {
        ...base,
        git: { branch: 'fleet/x', base_commit: 'a'.repeat(40), head_commit: 'b'.repeat(40) },
      });
      expect(merge.status, merge.text).toBe(400);
      expect(merge.json.issues).toEqual(
        expect.arrayContaining([{ path: 'git', message: expect.stringMatching(/unknown field.*branch/) }]),
      );
      expect((await stack.api('GET', `/api/v1/jobs/${jobId}`)).text).not.toContain('forged');
    });
  });
});
