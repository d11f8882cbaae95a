/**
 * REPORT.html in a real browser (Debian's chromium through playwright-core),
 * opened from a folder laid out as the local mirror lays out a job's prefix.
 * One browser for the file; UPDATE_SCREENSHOT=1 rewrites docs/report-screenshot.png.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobPrefix } from '../../functions/core/layout.ts';
import { renderReportHtml } from '../../functions/core/report-html.ts';
import { buildTreeResult, type JobResult } from '../../functions/core/result-format.ts';
import { makeAttempt, makeJob, makeTask } from '../support/records.ts';
import {
  fixtureResult,
  ROOT,
  samplePerformance,
  syntheticTreeResult,
  withoutPerformance,
  XSS_OUTPUT,
} from './fixture.ts';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SCREENSHOT = fileURLToPath(new URL('../../docs/report-screenshot.png', import.meta.url));

/** What a page did that it must not: console errors, uncaught errors, dialogs, requests off file://. */
interface Watch {
  errors: string[];
  requests: string[];
  dialogs: string[];
}

describe.skipIf(!existsSync(CHROMIUM))('REPORT.html in chromium', () => {
  let browser: Browser;
  let workspace: string;
  let result: JobResult;
  let page: Page;
  let watch: Watch;

  beforeAll(async () => {
    workspace = await mkdtemp(join(tmpdir(), 'report-html-'));
    result = fixtureResult();
    await writeMirror(workspace, result);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    ({ page, watch } = await open(browser, join(workspace, `job_${ROOT}`, 'REPORT.html')));
  });
  afterAll(async () => {
    await browser?.close();
    if (workspace) await rm(workspace, { recursive: true, force: true });
  });

  it('renders with no console or page error and requests nothing but file://', async () => {
    expect(await page.locator('body').getAttribute('data-rendered')).toBe('1');
    expect(watch.errors).toEqual([]);
    expect(watch.requests.length).toBeGreaterThan(0);
    expect(watch.requests.filter((u) => !u.startsWith('file://'))).toEqual([]);
  });

  it('draws exactly one timeline bar per attempt, a retry as its own bar', async () => {
    const made = result.results.tasks.reduce((sum, t) => sum + t.attempts, 0);
    expect(await page.locator('#timeline .bar').count()).toBe(made);
    const i = result.results.tasks.findIndex((t) => t.worker_id === 'worker_1');
    const retried = page.locator(`#timeline .bar[data-i="${i}"]`);
    expect(await retried.count()).toBe(2);
    const [first, second] = await Promise.all([retried.nth(0).boundingBox(), retried.nth(1).boundingBox()]);
    expect((first?.x ?? 0) + (first?.width ?? 0)).toBeLessThanOrEqual(second?.x ?? 0);
    expect(await retried.nth(0).getAttribute('class')).toContain('st-failed');
  });

  it('nests the child job under the task that created it, and shows a worker’s output on click', async () => {
    const child = page.locator(
      '#tree li:has(> .worker .wid:text-is("worker_2")) details[data-job="job-child"]',
    );
    expect(await child.count()).toBe(1);
    await child.locator('.worker', { hasText: 'worker_2_1' }).click();
    expect(await page.locator('#details pre.output').textContent()).toBe('Post 1 written.');
    const bar = page.locator('#timeline .bar[data-attempt="1"]').first();
    await bar.click();
    expect(await page.locator('#details h2 code').textContent()).toBe('worker_1');
    expect(await page.locator('#details pre.output').textContent()).toBe('Wrote the landing page.');
  });

  it('links the log to a file that exists in the local folder', async () => {
    await page.locator('.worker', { hasText: 'worker_1' }).first().click();
    const href = await page.locator('#details a.log-link').getAttribute('href');
    const latest = result.results.tasks[0]?.log_key as string;
    expect(href).toBe(latest.slice(jobPrefix(ROOT).length));
    const target = fileURLToPath(new URL(href as string, page.url()));
    expect(await readFile(target, 'utf8')).toBe('log of worker_1\n');
    const file = await page.locator('#details a', { hasText: 'css/site.css' }).getAttribute('href');
    expect(existsSync(fileURLToPath(new URL(file as string, page.url())))).toBe(true);
  });

  it('shows a hostile output as text and runs none of it; the conflict shows with the worker', async () => {
    await page.locator('.worker', { hasText: 'worker_3' }).click();
    expect(await page.locator('#details pre.output').textContent()).toBe(XSS_OUTPUT);
    expect(await page.locator('#details .worker, #details p').first().textContent()).toContain('<script>');
    expect(await page.locator('script').count()).toBe(2);
    expect(await page.locator('img').count()).toBe(0);
    expect(await page.locator('#details h3.conflicts').textContent()).toBe('Merge conflicts (1)');
    expect(await page.locator('#details .conflict pre').textContent()).toContain('<<<<<<< worker_1');
    expect(await page.locator('#git').textContent()).toContain('merge');
    expect(watch.dialogs).toEqual([]);
    expect(watch.errors).toEqual([]);
    if (process.env.UPDATE_SCREENSHOT === '1') {
      await page.setViewportSize({ width: 1400, height: 900 });
      await page.screenshot({ path: SCREENSHOT });
    }
  });

  it('renders the analytics when the result has them, a per-level table without them', async () => {
    // result.json has analytics from issue 10 on; the fixture has them once buildTreeResult makes them.
    const analytics = (await page.locator('#analytics').textContent()) as string;
    expect(analytics.includes('no performance analytics')).toBe(!('performance' in result));
    const without = await open(browser, await writeReport(workspace, 'before', withoutPerformance(result)));
    expect(await without.page.locator('#analytics').textContent()).toContain('no performance analytics');
    expect(await without.page.locator('#timeline .bar').count()).toBe(6);
    expect(without.watch.errors).toEqual([]);
    await without.page.close();

    const sample = { ...result, performance: samplePerformance() } as unknown as JobResult;
    const other = await open(browser, join(await writeMirrorAt(workspace, 'sample', sample), 'REPORT.html'));
    const text = await other.page.locator('#analytics').textContent();
    expect(text).toContain('30.0%');
    expect(text).toContain('ran 50.0 s (25.0% of the wall time)');
    expect(await other.page.locator('#analytics .stack span').count()).toBe(6);
    const i = result.results.tasks.findIndex((t) => t.worker_id === 'worker_1');
    expect(await other.page.locator(`#timeline .bar.crit[data-i="${i}"]`).count()).toBe(1);
    expect(await other.page.locator(`#timeline .queue-span[data-i="${i}"]`).count()).toBe(2);
    await other.page.locator('#analytics .linklike', { hasText: 'worker_1' }).first().click();
    const attemptLog = other.page.locator('#details table a', { hasText: 'log' }).nth(1);
    const href = await attemptLog.getAttribute('href');
    expect(href).toBe('logs/depth_0_worker_1.attempt-2.log');
    expect(existsSync(fileURLToPath(new URL(href as string, other.page.url())))).toBe(true);
    expect(other.watch.errors).toEqual([]);
    await other.page.close();
  });

  it('renders a job that failed before any worker ran', async () => {
    const failed = buildTreeResult(
      [
        {
          job: makeJob({
            jobId: 'job-empty',
            status: 'failed',
            error: 'planning failed: <b>no plan</b>',
            totalTasks: 0,
          }),
          tasks: [
            makeTask(0, {
              jobId: 'job-empty',
              state: 'failed',
              attempts: [makeAttempt(1, { state: 'failed' })],
            }),
          ],
        },
      ],
      { bucket: 'artifacts', now: '2025-03-01T10:05:00.000Z' },
    );
    const empty = await open(browser, await writeReport(workspace, 'empty', failed));
    expect(await empty.page.locator('body').getAttribute('data-rendered')).toBe('1');
    expect(await empty.page.locator('#timeline .bar').count()).toBe(0);
    expect(await empty.page.locator('header .error').textContent()).toBe('planning failed: <b>no plan</b>');
    expect(empty.watch.errors).toEqual([]);
    await empty.page.close();
  });

  it('renders the 1,110-task tree within the bound', async () => {
    const file = await writeReport(workspace, 'big', syntheticTreeResult());
    const started = Date.now();
    const big = await open(browser, file);
    const ms = Date.now() - started;
    expect(await big.page.locator('#timeline .bar').count()).toBe(1_210);
    // Depth-2 jobs start closed and unbuilt; picking one of their workers on the timeline builds and opens them.
    expect(await big.page.locator('#tree .worker').count()).toBe(110);
    await big.page.locator('#timeline .tl-label', { hasText: 'worker_3_4_5' }).click();
    expect(await big.page.locator('#details pre.output').textContent()).toMatch(/^Section 3_4_5: lorem/);
    expect(await big.page.locator('#tree .worker.selected .wid').textContent()).toBe('worker_3_4_5');
    expect(await big.page.locator('#tree .worker.selected').isVisible()).toBe(true);
    expect(big.watch.errors).toEqual([]);
    // The bench measures it (target < 2 s: 1.7-2.3 s alone on the slow 2-core machine). Inside the
    // suite, three test files at once on that machine, it took 7 s; this bound only catches a page
    // that stops scaling with the tree, not a busy machine.
    expect(ms).toBeLessThan(20_000);
    await big.page.close();
  });
});

/** The job's folder as mirror.ts writes it: REPORT.html at the top, logs/ and depth_N/worker_X/ below. */
async function writeMirror(workspace: string, result: JobResult): Promise<string> {
  return writeMirrorAt(workspace, `job_${result.root_job_id}`, result);
}

async function writeMirrorAt(workspace: string, folder: string, result: JobResult): Promise<string> {
  const dir = join(workspace, folder);
  const prefix = jobPrefix(result.root_job_id);
  const put = async (key: string, body: string) => {
    const path = join(dir, key.slice(prefix.length));
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, body);
  };
  for (const t of result.results.tasks) {
    // Every attempt's log: one per worker before issue 10, one per attempt (`.attempt-2.log`) after.
    const logs = new Set([t.log_key, ...t.attempt_history.map((a) => a.log_key)]);
    for (let n = 2; n <= t.attempts; n += 1)
      logs.add(t.log_key.replace(/(\.attempt-\d+)?\.log$/, `.attempt-${n}.log`));
    logs.add(t.log_key.replace(/\.attempt-\d+\.log$/, '.log'));
    for (const key of logs) if (key !== undefined) await put(key, `log of ${t.worker_id}\n`);
    for (const f of t.files_created) await put(`${t.files_prefix}${f}`, `file ${f}\n`);
  }
  await put(`${prefix}REPORT.html`, renderReportHtml(result));
  return dir;
}

async function writeReport(workspace: string, name: string, result: JobResult): Promise<string> {
  const file = join(workspace, name, 'REPORT.html');
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, renderReportHtml(result));
  return file;
}

/** Opens a report from disk and waits for its script's marker. */
async function open(browser: Browser, file: string): Promise<{ page: Page; watch: Watch }> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const watch: Watch = { errors: [], requests: [], dialogs: [] };
  page.on('console', (m) => {
    if (m.type() === 'error') watch.errors.push(m.text());
  });
  page.on('pageerror', (e) => watch.errors.push(e.message));
  page.on('request', (r) => watch.requests.push(r.url()));
  page.on('dialog', (d) => {
    watch.dialogs.push(d.message());
    void d.dismiss();
  });
  // Anything but file:// fails here even if the page's policy were gone.
  await page.route(/^(?!file:)/, (route) => route.abort());
  await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
  await page.locator('body[data-rendered]').waitFor({ state: 'attached' });
  return { page, watch };
}
