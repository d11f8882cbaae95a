/**
 * The REPORT.html phase of `npm run bench` (alone: `npx tsx bench/report-html-bench.ts`):
 * the page of a synthetic tree shaped like `npm run test:load`'s (10 x 10 x 10 =
 * 1,110 tasks, 3,000-character outputs, every tenth leaf retried). Prints its
 * size, the time to render it in node, and the time Chromium takes from
 * navigating to the file:// page to its script's "rendered" mark, the median
 * of BENCH_REPORT_RUNS (3) fresh pages. Targets: < 5 MB, < 2 s in the browser.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { renderReportHtml } from '../functions/core/report-html.ts';
import { syntheticTreeResult } from '../test/browser/fixture.ts';
import { percentile, table } from './common.ts';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const RUNS = Number(process.env.BENCH_REPORT_RUNS ?? 3) || 3;

export interface ReportHtmlPhase {
  tasks: number;
  bytes: number;
  renderMs: number;
  /** Undefined without a Chromium to measure with. */
  browserMs: number | undefined;
}

export async function reportHtmlPhase(): Promise<ReportHtmlPhase> {
  const result = syntheticTreeResult();
  const started = performance.now();
  const html = renderReportHtml(result);
  const renderMs = performance.now() - started;
  const bytes = Buffer.byteLength(html);
  const browserMs = existsSync(CHROMIUM) ? await browserRender(html) : undefined;
  const phase = { tasks: result.results.tasks.length, bytes, renderMs, browserMs };
  printPhase(phase);
  return phase;
}

/** Median over fresh pages of one browser: from `goto` to the page's `data-rendered` mark, as node sees it. */
async function browserRender(html: string): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'report-bench-'));
  const file = join(dir, 'REPORT.html');
  await writeFile(file, html);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  try {
    const times: number[] = [];
    for (let i = 0; i < RUNS; i += 1) {
      const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
      const wall = performance.now();
      await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
      await page.locator('body[data-rendered="1"]').waitFor({ state: 'attached', timeout: 30_000 });
      times.push(performance.now() - wall);
      await page.close();
    }
    return percentile(times, 50);
  } finally {
    await browser.close();
    await rm(dir, { recursive: true, force: true });
  }
}

function printPhase(p: ReportHtmlPhase): void {
  console.log(`\nREPORT.html of a ${p.tasks.toLocaleString('en')}-task tree (10 x 10 x 10, synthetic)`);
  console.log(
    table(
      ['measure', 'value', 'target'],
      [
        ['size', `${(p.bytes / 1e6).toFixed(2)} MB`, p.bytes < 5e6 ? '< 5 MB: met' : '< 5 MB: MISSED'],
        ['render in node (renderReportHtml)', `${p.renderMs.toFixed(0)} ms`, ''],
        [
          `Chromium: navigate to file:// until rendered, median of ${RUNS}`,
          p.browserMs === undefined ? `no ${CHROMIUM}` : `${p.browserMs.toFixed(0)} ms`,
          p.browserMs === undefined ? '-' : p.browserMs < 2_000 ? '< 2 s: met' : '< 2 s: MISSED',
        ],
      ],
    ),
  );
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await reportHtmlPhase();
  process.exit(0);
}
