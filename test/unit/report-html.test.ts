import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { reportHtmlKey, workerLogKey } from '../../functions/core/layout.ts';
import {
  attemptBars,
  boundedData,
  clip,
  embeddedJson,
  REPORT_DATA_MAX_BYTES,
  relativeHref,
  renderReportHtml,
} from '../../functions/core/report-html.ts';
import type { JobResult, TaskResultView } from '../../functions/core/result-format.ts';
import {
  at,
  fixtureResult,
  ROOT,
  samplePerformance,
  syntheticTreeResult,
  withoutPerformance,
  XSS_OUTPUT,
} from '../browser/fixture.ts';

const task = (result: JobResult, workerId: string): TaskResultView =>
  result.results.tasks.find((t) => t.worker_id === workerId) as TaskResultView;

/** The page's embedded data, read back the way its script reads it. */
function embedded(html: string) {
  const json = /<script type="application\/json" id="report-data">([\s\S]*?)<\/script>/.exec(html)?.[1];
  return JSON.parse(json as string);
}

describe('REPORT.html renderer', () => {
  it('sits beside FINAL_RESULT.md', () => {
    expect(reportHtmlKey('j1')).toBe('jobs/j1/REPORT.html');
  });

  it('embeds data no output can break out of: every < is escaped, and it parses back unchanged', () => {
    const data = { output: '</script><script>alert(1)</script><!-- x', n: 1 };
    const json = embeddedJson(data);
    expect(json).not.toContain('<');
    expect(JSON.parse(json)).toEqual(data);
  });

  it('writes untrusted text only escaped: the page has its own two scripts and no other tag from the data', () => {
    const html = renderReportHtml(fixtureResult());
    expect(html.match(/<script/g)).toHaveLength(2);
    expect(html).not.toContain('<b>now</b>');
    expect(html).toContain('&lt;b&gt;now&lt;/b&gt;');
    expect(html).not.toContain('alert(1)</script>');
    expect(html).not.toContain('<img');
    const output = embedded(html).tasks.find((t: { worker_id: string }) => t.worker_id === 'worker_3').output;
    expect(output).toBe(XSS_OUTPUT);
  });

  it('lets the browser run only its own script: the policy names its hash and allows no connection', () => {
    const html = renderReportHtml(fixtureResult());
    const csp = /http-equiv="Content-Security-Policy" content="([^"]+)"/.exec(html)?.[1] as string;
    const script = /<script>([\s\S]*?)<\/script>/.exec(html)?.[1] as string;
    const hash = createHash('sha256').update(script).digest('base64');
    expect(csp).toContain(`script-src 'sha256-${hash}'`);
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("connect-src 'none'");
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
  });

  it('draws one bar per attempt; a retry is its own bar after the failed one', () => {
    const result = fixtureResult();
    const end = Date.parse(at(200));
    const bars = attemptBars(task(result, 'worker_1'), end);
    expect(bars).toEqual([
      { attempt: 1, start: Date.parse(at(10)), end: Date.parse(at(30)), status: 'failed' },
      { attempt: 2, start: Date.parse(at(50)), end: Date.parse(at(100)), status: 'succeeded' },
    ]);
    const data = boundedData(result);
    const made = result.results.tasks.reduce((sum, t) => sum + t.attempts, 0);
    expect(data.bars).toHaveLength(made);
    expect(made).toBe(6);
  });

  it('ends an attempt without a record with its task, and starts it no earlier than the one before', () => {
    const running: TaskResultView = {
      ...task(fixtureResult(), 'worker_1'),
      status: 'cancelled',
      attempts: 2,
      attempt_history: [{ attempt: 1, status: 'failed', finished_at: at(30) }],
      started_at: at(40),
      finished_at: at(45),
    };
    expect(attemptBars(running, Date.parse(at(200)))).toEqual([
      { attempt: 1, start: Date.parse(at(30)), end: Date.parse(at(30)), status: 'failed' },
      { attempt: 2, start: Date.parse(at(40)), end: Date.parse(at(45)), status: 'cancelled' },
    ]);
  });

  it('uses an attempt record’s own start when it has one', () => {
    const t = task(fixtureResult(), 'worker_1');
    const withStart = {
      ...t,
      attempt_history: t.attempt_history.map((a) => (a.attempt === 1 ? { ...a, started_at: at(5) } : a)),
    };
    expect(attemptBars(withStart, 0)[0]?.start).toBe(Date.parse(at(5)));
  });

  it('links logs and files relative to the job folder, refusing keys outside it or with dot segments', () => {
    expect(relativeHref(ROOT, workerLogKey(ROOT, 1, 1, '2'))).toBe('logs/depth_1_worker_2_1.log');
    expect(relativeHref(ROOT, `jobs/${ROOT}/depth_0/worker_1/`)).toBe('depth_0/worker_1');
    expect(relativeHref(ROOT, 'jobs/other/logs/x.log')).toBeUndefined();
    expect(relativeHref(ROOT, `jobs/${ROOT}/../x`)).toBeUndefined();
    expect(relativeHref(ROOT, `jobs/${ROOT}/a b/#c`)).toBe('a%20b/%23c');
    const result = fixtureResult();
    const data = boundedData(result);
    expect(data.tasks[0]).toMatchObject({
      log_href: result.results.tasks[0]?.log_key.slice(`jobs/${ROOT}/`.length),
      files_href: 'depth_0/worker_1/',
    });
    expect(data.tasks[0]?.log_href).toMatch(/^logs\/depth_0_worker_1(\.attempt-2)?\.log$/);
  });

  it('cuts without splitting a surrogate pair', () => {
    expect(clip('ab😀cd', 3)).toEqual({ text: 'ab', cut: true });
    expect(clip('abc', 3)).toEqual({ text: 'abc', cut: false });
  });

  it('keeps the 1,110-task tree under 5 MB, cutting long outputs and saying so', () => {
    const result = syntheticTreeResult();
    expect(result.results.tasks).toHaveLength(1_110);
    const html = renderReportHtml(result);
    expect(Buffer.byteLength(html)).toBeLessThan(5_000_000);
    const data = embedded(html);
    expect(data.tasks).toHaveLength(1_110);
    expect(data.bars).toHaveLength(1_110 + 100);
    expect(data.cut_workers).toBe(1_000);
    expect(data.tasks.at(-1).cut).toContain('output');
  });

  it('cuts harder until the data fits, however large and awkward the outputs', () => {
    const result = syntheticTreeResult(7, 0);
    for (const t of result.results.tasks) {
      // Each character here takes 3 to 6 bytes once escaped and encoded.
      t.output = '\u0001<\u4e2d'.repeat(2_000);
      t.files_created = Array.from({ length: 100 }, (_, i) => `dir/<${'x'.repeat(300)}${i}`);
    }
    const html = renderReportHtml(result);
    expect(Buffer.byteLength(html)).toBeLessThan(5_000_000);
    const data = embedded(html);
    expect(Buffer.byteLength(embeddedJson(data))).toBeLessThanOrEqual(REPORT_DATA_MAX_BYTES);
    expect(data.limits.output).toBeLessThan(2_000);
    expect(data.tasks[0].output).toBe(result.results.tasks[0]?.output.slice(0, data.limits.output));
  });

  it('embeds the analytics when the result has them, and renders without them', () => {
    const plain = embedded(renderReportHtml(withoutPerformance(fixtureResult())));
    expect(plain.job.performance).toBeUndefined();
    const performance = samplePerformance();
    const data = embedded(renderReportHtml({ ...fixtureResult(), performance } as unknown as JobResult));
    expect(data.job.performance.efficiency.parallel_efficiency).toBe(0.3);
    // Each attempt links its own log; the ISO times go (the ms offsets say the same).
    expect(data.job.performance.timeline[2]).toMatchObject({
      attempt: 2,
      log_href: 'logs/depth_0_worker_1.attempt-2.log',
    });
    expect(data.job.performance.timeline[1].queued_at).toBeUndefined();
  });
});
