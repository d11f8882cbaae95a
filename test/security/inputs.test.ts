/**
 * Attacks through what the API takes in: a planner's or a merge step's task
 * token used to create child jobs, degenerate numbers that once reached the
 * store (`max_budget_usd: 1e-300` answered 500 and left task items behind),
 * and worker-chosen names and titles that tried to become markdown in the
 * report. Each is refused, and the job it came from still ends as it would
 * have: nothing written, lost or leaked.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import MarkdownIt from 'markdown-it';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobPrefix } from '../../functions/core/layout.ts';
import { jobIdFor } from '../../functions/core/tokens.ts';
import { type HeldWorker, type HostileStack, startHostileStack } from '../support/hostile-worker.ts';
import { bundleOf, sampleRepo, uploadSource } from '../support/repos.ts';

/** The tenant of the hostile stack's own API key (see startTestStack). */
const TENANT = 'tenant-a';

const md = new MarkdownIt({ html: true, linkify: true });
md.linkify.set({ fuzzyLink: false, fuzzyEmail: false });

describe('hostile inputs', () => {
  let hostile: HostileStack;
  let scratch: string;

  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'inputs-'));
    hostile = await startHostileStack('recursion: {enable: true, max_depth: 2}\nworkers: {max_workers: 5}');
  });
  afterAll(async () => {
    await hostile?.stop();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  /** Every object key of a job tree. */
  async function keysOf(rootJobId: string): Promise<string[]> {
    return (await hostile.deps.artifacts.list(jobPrefix(rootJobId))).map((o) => o.key);
  }

  /** A child job request as a worker would send it, with the token only. */
  function createChild(w: HeldWorker, mode: 'handoff' | 'wait') {
    return hostile.withToken(
      w.token,
      'POST',
      '/api/v1/orchestrate',
      { request: 'take over', tasks: [{ prompt: 'part a' }, { prompt: 'part b' }] },
      { 'x-child-mode': mode },
    );
  }

  it.each(['handoff', 'wait'] as const)(
    "attack: a planner's task token creates a child job (%s mode), which would end its planning as recursive_success",
    async (mode) => {
      const planner = await hostile.capture({
        request: `Write three notes [[hold_plan:planner-${mode}]]`,
        config: { enable_recursion: true, max_retries: 0 },
      });
      expect(planner.taskNo).toBe(0);
      const before = await hostile.deps.store.getJob(planner.jobId);

      const res = await createChild(planner, mode);
      expect(res.status, res.text).toBe(403);
      expect(res.json.error).toMatch(/planner's task token cannot create child jobs/);

      // Nothing written: no child job, no reservation, no link, and the planner still plans.
      expect(await hostile.deps.tree.listDescendants(planner.jobId)).toEqual([]);
      expect((await hostile.deps.store.getJob(planner.jobId))?.budget).toEqual(before?.budget);
      const plan = await hostile.deps.store.getTask(planner.jobId, 0);
      expect(plan).toMatchObject({ state: 'running', attempt: 1 });
      expect(plan?.childJobId).toBeUndefined();
      expect((await keysOf(planner.jobId)).filter((k) => k.includes('_recursive/'))).toEqual([]);

      // Nothing lost: the job plans and completes as if nothing had happened.
      await planner.release();
      expect(await hostile.waitForJob(planner.jobId, 60_000)).toBe('completed');
      const result = (await hostile.api('GET', `/api/v1/jobs/${planner.jobId}`)).json;
      expect(result.planning).toMatchObject({ status: 'succeeded', attempts: 1 });
      expect(result.error).toBeUndefined();
      expect(result.results.summary).toMatchObject({ total: 3, succeeded: 3 });
      expect(result.jobs).toHaveLength(1);
    },
  );

  it("attack: a merge step's conflict session uses the step's token to create a child job", async () => {
    const origin = join(scratch, 'origin');
    await sampleRepo(origin, { 'notes.txt': 'one\ntwo\nthree\n' });
    const bundleId = await uploadSource(
      hostile,
      await readFile(await bundleOf(origin, join(scratch, 'b.bundle'))),
    );
    const submitted = await hostile.api('POST', '/api/v1/orchestrate', {
      body: {
        request: 'Two workers change the same line',
        source: { bundle_id: bundleId },
        config: { enable_recursion: true, max_retries: 0 },
        tasks: [
          { title: 'Hello', prompt: 'x [[edit_line:notes.txt:2:two, hello]]' },
          { title: 'Goodbye', prompt: 'y [[edit_line:notes.txt:2:two, goodbye]] [[hold_merge:merger]]' },
        ],
      },
    });
    expect(submitted.status, submitted.text).toBe(202);
    const jobId = submitted.json.job_id as string;
    const merger = await hostile.held('merger', jobId, 60_000);
    const step = await hostile.deps.store.getTask(jobId, merger.taskNo);
    expect(step?.kind).toBe('merge');

    for (const mode of ['handoff', 'wait'] as const) {
      const res = await createChild(merger, mode);
      expect(res.status, res.text).toBe(403);
      expect(res.json.error).toMatch(/merge step's task token cannot create child jobs/);
    }
    expect(await hostile.deps.tree.listDescendants(jobId)).toEqual([]);
    expect((await hostile.deps.store.getTask(jobId, merger.taskNo))?.state).toBe('running');

    await merger.release();
    expect(await hostile.waitForJob(jobId, 60_000)).toBe('completed');
    const result = (await hostile.api('GET', `/api/v1/jobs/${jobId}`)).json;
    expect(result.git.conflicts).toEqual([expect.objectContaining({ resolution: 'resolved' })]);
    expect(result.jobs).toHaveLength(1);
  });

  /** Submits `config` under a fresh Idempotency-Key; the job id that key would have made. */
  async function submitWith(config: unknown, label: string, rawBody?: string) {
    const key = `degenerate-${label}-${Math.random().toString(36).slice(2)}`;
    const res = await hostile.api('POST', '/api/v1/orchestrate', {
      ...(rawBody !== undefined
        ? { rawBody, headers: { 'content-type': 'application/json', 'idempotency-key': key } }
        : { body: { request: 'spend nothing', config }, headers: { 'idempotency-key': key } }),
    });
    return { res, jobId: jobIdFor(TENANT, key, Buffer.alloc(16)) };
  }

  /** Nothing of a refused submission is in the store. */
  async function expectNothingStored(jobId: string) {
    expect(await hostile.deps.store.getJob(jobId)).toBeUndefined();
    expect(await hostile.deps.store.listTasks(jobId)).toEqual([]);
  }

  it.each([
    ['1e-300 (underflows the store)', 1e-300, /at least 0\.01/],
    ['0', 0, /at least 0\.01/],
    ['a negative amount', -5, /at least 0\.01/],
    ['1e308', 1e308, /at most 25/],
    ['a fraction of a cent', 0.015, /whole cents/],
    ['a string', 'NaN', /number/],
    ['null', null, /number/],
  ])(
    'attack: max_budget_usd of %s, to make submit answer 500 and leave task items behind',
    async (label, value, reason) => {
      const { res, jobId } = await submitWith({ max_budget_usd: value }, label.replace(/\W+/g, '-'));
      expect(res.status, res.text).toBe(400);
      const issue = (res.json.issues as { path: string; message: string }[]).find(
        (i) => i.path === 'config.max_budget_usd',
      );
      expect(issue?.message, res.text).toMatch(reason);
      await expectNothingStored(jobId);
    },
  );

  it('attack: max_budget_usd of 1e999 (Infinity once parsed), to make submit answer 500 and leave task items behind', async () => {
    const { res, jobId } = await submitWith(
      undefined,
      'infinity',
      '{"request":"spend nothing","config":{"max_budget_usd":1e999}}',
    );
    expect(res.status, res.text).toBe(400);
    expect(res.json.issues).toEqual([{ path: 'config.max_budget_usd', message: expect.any(String) }]);
    await expectNothingStored(jobId);
  });

  it.each([
    ['max_workers', 1e308],
    ['max_workers', 2.5],
    ['max_workers', 0],
    ['default_timeout', 1e-300],
    ['default_timeout', 1e308],
    ['max_retries', -1],
    ['max_retries', 0.5],
    ['max_recursion_depth', 1e308],
  ])(
    'attack: config.%s of %s, to make submit answer 500 and leave task items behind',
    async (field, value) => {
      const { res, jobId } = await submitWith({ [field]: value }, field);
      expect(res.status, res.text).toBe(400);
      expect(new Set((res.json.issues as { path: string }[]).map((i) => i.path))).toEqual(
        new Set([`config.${field}`]),
      );
      await expectNothingStored(jobId);
    },
  );

  it('a budget in whole cents is taken as given', async () => {
    const { res, jobId } = await submitWith({ max_budget_usd: 0.07 }, 'cents');
    expect(res.status, res.text).toBe(202);
    expect((await hostile.deps.store.getJob(jobId))?.config.maxBudgetUsd).toBe(0.07);
    expect(await hostile.waitForJob(jobId, 60_000)).toMatch(/completed|partial|failed/);
  });

  it('attack: a worker hands off with x-decide-cost-usd 1e-300, to break the hand-off after the child exists', async () => {
    const w = await hostile.capture({
      request: 'split me',
      config: { enable_recursion: true, max_retries: 0 },
      tasks: [{ prompt: 'big part [[hold:tiny-cost]]' }],
    });
    const res = await hostile.withToken(
      w.token,
      'POST',
      '/api/v1/orchestrate',
      { request: 'the parts', tasks: [{ prompt: 'part a' }, { prompt: 'part b' }] },
      { 'x-child-mode': 'handoff', 'x-decide-cost-usd': '1e-300' },
    );
    expect(res.status, res.text).toBe(202);
    const parent = await hostile.deps.store.getTask(w.jobId, w.taskNo);
    expect(parent?.state).toBe('waiting_on_child');
    expect(parent?.attempts.at(-1)?.costUsd).toBe(0);
    await w.release();
    expect(await hostile.waitForJob(w.jobId, 60_000)).toBe('completed');
    expect((await hostile.deps.store.getTask(w.jobId, w.taskNo))?.state).toBe('recursive_success');
  });

  it('attack: a worker names its files and titles so that GET /report renders a heading, a link, an image or HTML', async () => {
    const names = [
      '# Owned.md',
      '[click](javascript:alert(1)).md',
      '![pixel](x).png',
      '<img src=x onerror=alert(1)>.html',
      'x](https:evil.example) [y.txt',
    ];
    const title = '[t](https://evil.example) <img src=x onerror=alert(1)>';
    const w = await hostile.capture({
      request: 'names',
      config: { enable_recursion: false, max_retries: 0 },
      tasks: [{ title, prompt: 'write hostile names [[hold:names]]' }],
    });
    // What Claude could write into its own folder: these files are uploaded as the worker's.
    for (const name of names) await writeFile(join(w.cwd, name), 'x\n');
    await w.release();
    expect(await hostile.waitForJob(w.jobId, 60_000)).toBe('completed');

    const res = await hostile.api('GET', `/api/v1/jobs/${w.jobId}/report`);
    expect(res.status).toBe(200);
    const html = md.render(res.text);
    const prefix = jobPrefix(w.jobId);
    const objects = (await keysOf(w.jobId)).map((k) => k.slice(prefix.length));
    for (const name of names) expect(objects).toContain(`depth_0/worker_1/${name}`);

    // No image, no HTML a worker wrote; every link is the report's own or one artifact link per object.
    expect(html).not.toMatch(/<img|<script|<iframe/i);
    const links = [...html.matchAll(/<a href="([^"]*)">(.*?)<\/a>/g)].map((m) => ({
      href: m[1],
      text: m[2],
    }));
    const artifactLinks = links.filter((l) => /^https?:/.test(l.href ?? ''));
    const htmlText = (t: string) =>
      t.replaceAll('&lt;', '<').replaceAll('&gt;', '>').replaceAll('&quot;', '"').replaceAll('&amp;', '&');
    expect(artifactLinks.map((l) => htmlText(l.text ?? '')).sort()).toEqual([...objects].sort());
    expect(links.filter((l) => !/^https?:/.test(l.href ?? '')).map((l) => l.href)).toEqual([
      'depth_0/LEVEL_0_REPORT.md',
      'result.json',
    ]);
    for (const l of artifactLinks) expect(l.href).toMatch(/X-Amz-Signature=/);
    // Headings are the report's own; the worker's title is text inside one.
    const headings = [...html.matchAll(/<h(\d)>(.*?)<\/h\1>/g)].map((m) => m[2] ?? '');
    expect(headings.filter((h) => /Owned|pixel|click/.test(h))).toEqual([]);
    expect(headings.at(-1)).toMatch(/^Artifact links/);
  });
});
