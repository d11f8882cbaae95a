/**
 * Attacks through what the API takes in: a planner's or a merge step's task
 * token used to create child jobs, degenerate numbers that once reached the
 * store (`max_budget_usd: 1e-300` answered 500 and left task items behind),
 * and worker-chosen names and titles that tried to become markdown in the
 * report. Each is refused, and the job it came from still ends as it would
 * have: nothing written, lost or leaked.
 */
import { spawn } from 'node:child_process';
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import MarkdownIt from 'markdown-it';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobPrefix } from '../../functions/core/layout.ts';
import { jobIdFor } from '../../functions/core/tokens.ts';
import { CLAUDE_DOUBLE } from '../support/harness.ts';
import { type HeldWorker, type HostileStack, startHostileStack } from '../support/hostile-worker.ts';
import { bundleOf, sampleRepo, uploadSource } from '../support/repos.ts';
import { BIN, type BinRun } from '../support/run-bin.ts';

/** How long a held session or a job may take on a machine busy with the whole suite. */
const SLOW_MS = 120_000;
/** The time of a test that runs a job to its end. */
const JOB_TEST_MS = 2 * SLOW_MS + 30_000;

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
      const planner = await hostile.capture(
        {
          request: `Write three notes [[hold_plan:planner-${mode}]]`,
          config: { enable_recursion: true, max_retries: 0 },
        },
        undefined,
        undefined,
        SLOW_MS,
      );
      expect(planner.taskNo).toBe(0);
      const before = await hostile.deps.jobs.getJob(planner.jobId);

      const res = await createChild(planner, mode);
      expect(res.status, res.text).toBe(403);
      expect(res.json.error).toMatch(/planner's task token cannot create child jobs/);

      // Nothing written: no child job, no reservation, no link, and the planner still plans.
      expect(await hostile.deps.jobs.listDescendants(planner.jobId)).toEqual([]);
      expect((await hostile.deps.jobs.getJob(planner.jobId))?.budget).toEqual(before?.budget);
      const plan = await hostile.deps.tasks.getTask(planner.jobId, 0);
      expect(plan).toMatchObject({ state: 'running', attempt: 1 });
      expect(plan?.childJobId).toBeUndefined();
      expect((await keysOf(planner.jobId)).filter((k) => k.includes('_recursive/'))).toEqual([]);

      // Nothing lost: the job plans and completes as if nothing had happened.
      await planner.release();
      expect(await hostile.waitForJob(planner.jobId, SLOW_MS)).toBe('completed');
      const result = (await hostile.api('GET', `/api/v1/jobs/${planner.jobId}`)).json;
      expect(result.planning).toMatchObject({ status: 'succeeded', attempts: 1 });
      expect(result.error).toBeUndefined();
      expect(result.results.summary).toMatchObject({ total: 3, succeeded: 3 });
      expect(result.jobs).toHaveLength(1);
    },
    JOB_TEST_MS,
  );

  it(
    "attack: a merge step's conflict session uses the step's token to create a child job",
    async () => {
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
      const merger = await hostile.held('merger', jobId, SLOW_MS);
      const step = await hostile.deps.tasks.getTask(jobId, merger.taskNo);
      expect(step?.kind).toBe('merge');

      for (const mode of ['handoff', 'wait'] as const) {
        const res = await createChild(merger, mode);
        expect(res.status, res.text).toBe(403);
        expect(res.json.error).toMatch(/merge step's task token cannot create child jobs/);
      }
      expect(await hostile.deps.jobs.listDescendants(jobId)).toEqual([]);
      expect((await hostile.deps.tasks.getTask(jobId, merger.taskNo))?.state).toBe('running');

      await merger.release();
      expect(await hostile.waitForJob(jobId, SLOW_MS)).toBe('completed');
      const result = (await hostile.api('GET', `/api/v1/jobs/${jobId}`)).json;
      expect(result.git.conflicts).toEqual([expect.objectContaining({ resolution: 'resolved' })]);
      expect(result.jobs).toHaveLength(1);
    },
    JOB_TEST_MS,
  );

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
    expect(await hostile.deps.jobs.getJob(jobId)).toBeUndefined();
    expect(await hostile.deps.tasks.listTasks(jobId)).toEqual([]);
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

  it(
    'a budget in whole cents is taken as given',
    async () => {
      const { res, jobId } = await submitWith({ max_budget_usd: 0.07 }, 'cents');
      expect(res.status, res.text).toBe(202);
      expect((await hostile.deps.jobs.getJob(jobId))?.config.maxBudgetUsd).toBe(0.07);
      expect(await hostile.waitForJob(jobId, SLOW_MS)).toMatch(/completed|partial|failed/);
    },
    JOB_TEST_MS,
  );

  it(
    'attack: a worker hands off with x-decide-cost-usd 1e-300, to break the hand-off after the child exists',
    async () => {
      const w = await hostile.capture(
        {
          request: 'split me',
          config: { enable_recursion: true, max_retries: 0 },
          tasks: [{ prompt: 'big part [[hold:tiny-cost]]' }],
        },
        undefined,
        undefined,
        SLOW_MS,
      );
      const res = await hostile.withToken(
        w.token,
        'POST',
        '/api/v1/orchestrate',
        { request: 'the parts', tasks: [{ prompt: 'part a' }, { prompt: 'part b' }] },
        { 'x-child-mode': 'handoff', 'x-decide-cost-usd': '1e-300' },
      );
      expect(res.status, res.text).toBe(202);
      const parent = await hostile.deps.tasks.getTask(w.jobId, w.taskNo);
      expect(parent?.state).toBe('waiting_on_child');
      expect(parent?.attempts.at(-1)?.costUsd).toBe(0);
      await w.release();
      expect(await hostile.waitForJob(w.jobId, SLOW_MS)).toBe('completed');
      expect((await hostile.deps.tasks.getTask(w.jobId, w.taskNo))?.state).toBe('recursive_success');
    },
    JOB_TEST_MS,
  );

  it(
    'attack: a worker names its files and titles so that GET /report renders a heading, a link, an image or HTML',
    async () => {
      const names = [
        '# Owned.md',
        '[click](javascript:alert(1)).md',
        '![pixel](x).png',
        '<img src=x onerror=alert(1)>.html',
        'x](https:evil.example) [y.txt',
      ];
      const title = '[t](https://evil.example) <img src=x onerror=alert(1)>';
      const w = await hostile.capture(
        {
          request: 'names',
          config: { enable_recursion: false, max_retries: 0 },
          tasks: [{ title, prompt: 'write hostile names [[hold:names]]' }],
        },
        undefined,
        undefined,
        SLOW_MS,
      );
      // What Claude could write into its own folder: these files are uploaded as the worker's.
      for (const name of names) await writeFile(join(w.cwd, name), 'x\n');
      await w.release();
      expect(await hostile.waitForJob(w.jobId, SLOW_MS)).toBe('completed');

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
      // The report's own links are relative paths to this job's objects: a hostile name is encoded
      // whole (`#` and `?` too), so it can be neither a fragment, a query, a scheme nor markup.
      const relative = links.filter((l) => !/^https?:/.test(l.href ?? '')).map((l) => l.href ?? '');
      expect(relative).toEqual(expect.arrayContaining(['depth_0/LEVEL_0_REPORT.md', 'result.json']));
      for (const href of relative) {
        expect(href).toMatch(/^[A-Za-z0-9\-._~!$&*+,;=@%/]+$/);
        expect(objects).toContain(decodeURIComponent(href));
      }
      for (const name of names)
        expect(relative.map((h) => decodeURIComponent(h))).toContain(`depth_0/worker_1/${name}`);
      for (const l of artifactLinks) expect(l.href).toMatch(/X-Amz-Signature=/);
      // Headings are the report's own; the worker's title is text inside one.
      const headings = [...html.matchAll(/<h(\d)>(.*?)<\/h\1>/g)].map((m) => m[2] ?? '');
      expect(headings.filter((h) => /Owned|pixel|click/.test(h))).toEqual([]);
      expect(headings.at(-1)).toMatch(/^Artifact links/);
    },
    JOB_TEST_MS,
  );

  it(
    'attack: a worker stores both a and a/b, and links are planted where run mirrors the job, to break run or write outside',
    async () => {
      const ws = join(scratch, 'mirror-ws');
      const victim = join(scratch, 'victim.txt');
      const victimDir = join(scratch, 'victim-dir');
      await mkdir(victimDir, { recursive: true });
      await writeFile(victim, 'the user file\n');
      const wrapper = join(scratch, 'hostile-claude.mjs');
      await writeFile(wrapper, hostileClaude());
      await chmod(wrapper, 0o755);

      // As soon as run names the job, links go where its folder will be: what a worker without a
      // sandbox (or anything else on the machine) can do before the mirror.
      const run = await runPlanting(
        ['run', 'Write one note [[plan:1]]', '--claude-command', wrapper, '--workspace', ws, '--no-repo'],
        async (jobId) => {
          const dir = join(ws, `job_${jobId}`);
          await mkdir(dir, { recursive: true });
          await symlink(victim, join(dir, 'FINAL_RESULT.md'));
          await symlink(victimDir, join(dir, 'logs'));
        },
      );

      // run ends normally and prints its summary, naming what it did not copy and the links it removed.
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).toMatch(/Job [0-9a-f]{20}: COMPLETED/);
      expect(run.stdout).toContain('"depth_0/worker_1/a/b": depth_0/worker_1/a is a file of this job');
      expect(run.stdout).toMatch(/removed symbolic links .*not followed.*"FINAL_RESULT\.md"/);
      expect(run.stdout).toMatch(/removed symbolic links .*not followed.*"logs"/);

      // Nothing written outside: the link targets are as they were.
      expect(await readFile(victim, 'utf8')).toBe('the user file\n');
      expect(await readdir(victimDir)).toEqual([]);

      // Everything else is mirrored, as real files.
      const reportPath = /report: (.+FINAL_RESULT\.md)/.exec(run.stdout)?.[1] as string;
      expect((await lstat(reportPath)).isFile()).toBe(true);
      expect(await readFile(reportPath, 'utf8')).toMatch(/^# Final result: job/);
      const jobDir = reportPath.replace(/FINAL_RESULT\.md$/, '');
      expect(await readFile(join(jobDir, 'depth_0/worker_1/a'), 'utf8')).toBe('hello\n');
      expect(await readFile(join(jobDir, 'logs/depth_0_worker_1.log'), 'utf8')).not.toBe('');
      expect(await readFile(join(jobDir, 'result.json'), 'utf8')).toMatch(/"status": "completed"/);
    },
    JOB_TEST_MS,
  );
});

/** Runs the bin like runBin, calling `plant` with the job id as soon as run prints it. */
function runPlanting(args: string[], plant: (jobId: string) => Promise<void>): Promise<BinRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: tmpdir(),
      env: { ...process.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let planted: Promise<void> | undefined;
    child.stdout.on('data', (c) => {
      stdout += c;
    });
    child.stderr.on('data', (c) => {
      stderr += c;
      const id = /job ([0-9a-f]{20}) submitted/.exec(stderr)?.[1];
      if (id && !planted) planted = plant(id);
    });
    child.on('close', (code) => {
      if (!planted) return reject(new Error(`run never named its job: ${stderr}`));
      planted.then(() => resolve({ code, stdout, stderr }), reject);
    });
  });
}

/**
 * A `claude` for `orchestrator run` that, in a work session, stores both `a` and `a/b` through
 * the upload API with its own token (as a prompt-injected agent could), then runs the test double.
 */
function hostileClaude(): string {
  return `#!/usr/bin/env node
import { spawn } from 'node:child_process';
const args = process.argv.slice(2);
let prompt = '';
if (args.includes('-p')) for await (const chunk of process.stdin) prompt += chunk;
const work = args.includes('-p') && !args.includes('--json-schema') && !/ORCHESTRATOR-(DECIDE|MERGE)/.test(prompt);
if (work) {
  const [jobId, taskNo, attempt] = (process.env.TASK_ID ?? '').split('/');
  const res = await fetch(process.env.API_URL + '/api/v1/jobs/' + jobId + '/tasks/' + taskNo + '/uploads', {
    method: 'POST',
    headers: { 'x-task-token': process.env.TASK_TOKEN ?? '', 'content-type': 'application/json' },
    body: JSON.stringify({ attempt: Number(attempt), files: [{ path: 'a', size_bytes: 6 }, { path: 'a/b', size_bytes: 6 }] }),
  });
  const body = await res.json();
  for (const f of body.files ?? []) {
    const put = await fetch(f.url, { method: 'PUT', body: 'hello\\n' });
    process.stderr.write('hostile upload ' + f.path + ': ' + put.status + '\\n');
  }
  process.stderr.write('hostile uploads: ' + res.status + '\\n');
}
const child = spawn(process.execPath, [${JSON.stringify(CLAUDE_DOUBLE)}, ...args], { stdio: ['pipe', 'inherit', 'inherit'] });
child.stdin.end(prompt);
child.on('exit', (code) => process.exit(code ?? 1));
`;
}
