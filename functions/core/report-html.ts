/**
 * `REPORT.html`: one self-contained page of a job tree, written beside
 * FINAL_RESULT.md and opened from a presigned link or from the local mirror
 * (file://). It draws the tree of workers, a timeline with one bar per
 * attempt, each worker's details on click, and the analytics when the result
 * has them. Pure: everything comes from the `JobResult` of result.json.
 *
 * Nothing is fetched: styles and the script are inline, and the page's
 * Content-Security-Policy allows no connection and only the script whose hash
 * it names, so a worker's output can never load or run anything, even if it
 * got past the escaping. The data rides in a `<script type="application/json">`
 * block with every `<` written as `\u003c`; the script builds the page with
 * DOM calls that treat every value as text (never innerHTML).
 *
 * Size is bounded: long texts and lists are cut for the page (result.json and
 * the logs keep everything), harder until the embedded data fits
 * `REPORT_DATA_MAX_BYTES`; details are built only when a worker is clicked.
 */
import { createHash } from 'node:crypto';
import { jobPrefix } from './layout.ts';
import type { AttemptTimeline, PerformanceView } from './performance.ts';
import { formatCost, formatDuration } from './report-markdown.ts';
import type { AttemptView, GitView, JobResult, TaskResultView, TreeJobView } from './result-format.ts';

/** The embedded data never exceeds this (UTF-8 bytes, as embedded), so the page stays under 5 MB. */
export const REPORT_DATA_MAX_BYTES = 4_000_000;

/** How much of each text and list the page keeps at full scale; scaled down together until the data fits. */
export const REPORT_LIMITS = {
  output: 2_000,
  prompt: 500,
  text: 400,
  request: 2_000,
  list: 50,
  path: 300,
  hunk: 1_500,
  hunks: 3,
  /** Entries of each list in the analytics (attempts, critical path steps, workers). */
  analyticsRows: 5_000,
} as const;

export type ReportLimits = { -readonly [K in keyof typeof REPORT_LIMITS]: number };

/** One attempt on the timeline, in epoch milliseconds. */
export interface AttemptBar {
  attempt: number;
  start: number;
  end: number;
  status: string;
}

/**
 * A worker as the page embeds it: texts cut to the limits, and links relative
 * to the job's folder instead of S3 keys (result.json keeps the keys).
 */
export interface ReportTask extends Omit<TaskResultView, 'log_key' | 'files_prefix'> {
  /** Relative link to the worker's log (`logs/depth_0_worker_2.log`). */
  log_href?: string;
  /** Relative folder of the worker's files (`depth_0/worker_2/`). */
  files_href?: string;
  /** Fields shortened for the page. */
  cut?: string[];
}

/** An attempt of the analytics' timeline as the page has it: a link to its log, no ISO times (the offsets say the same). */
export type ReportAttempt = Omit<
  AttemptTimeline,
  'queued_at' | 'launched_at' | 'running_at' | 'finished_at' | 'log_key'
> & { log_href?: string };

/** The analytics with their per-attempt and per-worker lists bounded like the rest of the page. */
export type ReportPerformance = Omit<PerformanceView, 'timeline'> & { timeline: ReportAttempt[] };

/** What the page's script reads. Bars are `[task index, attempt, start, end, status]`, ms after `t0`. */
export interface ReportData {
  job: Omit<JobResult, 'results' | 'jobs' | 'performance'> & {
    summary: JobResult['results']['summary'];
    performance?: ReportPerformance;
  };
  jobs: TreeJobView[];
  tasks: ReportTask[];
  bars: [number, number, number, number, string][];
  t0: number;
  t1: number;
  limits: ReportLimits;
  /** How many workers had some text or list cut. */
  cut_workers: number;
}

export function renderReportHtml(result: JobResult): string {
  const json = embeddedJson(boundedData(result));
  return page(result, json);
}

/**
 * The report data at a scale of the limits that fits `REPORT_DATA_MAX_BYTES`
 * (the smallest tried otherwise). Most of the size is cut text, so it shrinks
 * about in proportion: each try aims just under the bound.
 */
export function boundedData(result: JobResult): ReportData {
  let scale = 1;
  let data = reportData(result, limitsAt(scale));
  for (let tries = 0; tries < 8; tries += 1) {
    const bytes = Buffer.byteLength(embeddedJson(data));
    if (bytes <= REPORT_DATA_MAX_BYTES || scale <= MIN_SCALE) break;
    scale = Math.max(MIN_SCALE, scale * Math.min(0.9, (0.95 * REPORT_DATA_MAX_BYTES) / bytes));
    data = reportData(result, limitsAt(scale));
  }
  return data;
}

const MIN_SCALE = 1 / 64;

function limitsAt(scale: number): ReportLimits {
  const scaled = { ...REPORT_LIMITS } as ReportLimits;
  for (const key of Object.keys(scaled) as (keyof ReportLimits)[]) {
    scaled[key] = Math.max(key === 'hunks' ? 1 : 10, Math.floor(REPORT_LIMITS[key] * scale));
  }
  return scaled;
}

/** JSON that cannot end its `<script>` element or open a comment in it: every `<` is escaped. */
export function embeddedJson(data: unknown): string {
  return JSON.stringify(data).replaceAll('<', '\\u003c');
}

export function escapeHtml(text: string): string {
  return text
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}

// ---------------------------------------------------------------------------------------------
// The data

function reportData(result: JobResult, limits: ReportLimits): ReportData {
  const { results, jobs, ...job } = result;
  const t0 = timeOf(result.created_at) ?? 0;
  const jobEnd = timeOf(result.finished_at) ?? latestTime(result) ?? t0;
  const tasks = results.tasks.map((t) => reportTask(t, result.root_job_id, limits));
  const bars: ReportData['bars'] = [];
  let t1 = jobEnd - t0;
  results.tasks.forEach((task, i) => {
    for (const bar of attemptBars(task, jobEnd)) {
      bars.push([i, bar.attempt, bar.start - t0, bar.end - t0, bar.status]);
      t1 = Math.max(t1, bar.end - t0);
    }
  });
  return {
    job: {
      ...job,
      request: clip(job.request, limits.request).text,
      ...(job.error !== undefined && { error: clip(job.error, limits.request).text }),
      ...(job.git !== undefined && { git: clipGit(job.git, limits) }),
      ...(job.performance !== undefined && {
        performance: performanceForPage(job.performance, result.root_job_id, limits),
      }),
      summary: results.summary,
    },
    jobs: jobs.map((j) => ({
      ...j,
      request: clip(j.request, limits.prompt).text,
      ...(j.error !== undefined && { error: clip(j.error, limits.text).text }),
    })),
    tasks,
    bars,
    t0,
    t1: Math.max(1, t1),
    limits,
    cut_workers: tasks.filter((t) => t.cut !== undefined).length,
  };
}

/**
 * One bar per attempt made: an ended attempt runs from its start to its
 * record's `finished_at`. The start is the record's own `started_at` when it
 * has one; else the task's `started_at` for its latest attempt, and
 * `duration_ms` before the end for earlier ones (never before the attempt
 * ahead of it ended). An attempt without an end (still running, or
 * cancelled) ends with the task or the job.
 */
export function attemptBars(task: TaskResultView, jobEnd: number): AttemptBar[] {
  const made = Math.max(task.attempts, ...task.attempt_history.map((a) => a.attempt));
  const bars: AttemptBar[] = [];
  let previousEnd: number | undefined;
  for (let attempt = 1; attempt <= made; attempt += 1) {
    const record = task.attempt_history.find((a) => a.attempt === attempt);
    const latest = attempt === made;
    const end =
      timeOf(record?.finished_at) ?? (latest ? timeOf(task.finished_at) : undefined) ?? previousEnd ?? jobEnd;
    const start = attemptStart(task, record, latest, end, previousEnd);
    bars.push({ attempt, start, end: Math.max(start, end), status: record?.status ?? task.status });
    previousEnd = Math.max(start, end);
  }
  return bars;
}

function attemptStart(
  task: TaskResultView,
  record: AttemptView | undefined,
  latest: boolean,
  end: number,
  previousEnd: number | undefined,
): number {
  const started = timeOf(record?.started_at) ?? (latest ? timeOf(task.started_at) : undefined);
  const fromDuration = record?.duration_ms === undefined ? undefined : end - record.duration_ms;
  const start = started ?? fromDuration ?? previousEnd ?? end;
  return Math.min(end, previousEnd === undefined ? start : Math.max(start, previousEnd));
}

function timeOf(iso: string | undefined): number | undefined {
  if (iso === undefined) return undefined;
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? undefined : ms;
}

/** The last time the result mentions, for a tree still running when it was written. */
function latestTime(result: JobResult): number | undefined {
  const times = result.results.tasks.flatMap((t) => [
    timeOf(t.finished_at),
    timeOf(t.started_at),
    ...t.attempt_history.map((a) => timeOf(a.finished_at)),
  ]);
  const known = times.filter((t): t is number => t !== undefined);
  return known.length === 0 ? undefined : Math.max(...known);
}

/** Cuts texts and lists to the limits, and remembers which fields it cut. */
function clipper(limits: ReportLimits) {
  const cut = new Set<string>();
  return {
    cut,
    text(field: string, value: string, max: number): string {
      const clipped = clip(value, max);
      if (clipped.cut) cut.add(field);
      return clipped.text;
    },
    list<T>(field: string, values: T[]): T[] {
      if (values.length > limits.list) cut.add(field);
      return values.slice(0, limits.list);
    },
    path: (p: string) => clip(p, limits.path).text,
    reason: (r: string) => clip(r, limits.text).text,
  };
}

type Clipper = ReturnType<typeof clipper>;

function reportTask(task: TaskResultView, rootJobId: string, limits: ReportLimits): ReportTask {
  const c = clipper(limits);
  const { log_key, files_prefix, ...rest } = task;
  const logHref = relativeHref(rootJobId, log_key);
  const filesHref = relativeHref(rootJobId, files_prefix);
  const clipped: ReportTask = {
    ...rest,
    title: c.text('title', task.title, limits.text),
    prompt: c.text('prompt', task.prompt, limits.prompt),
    output: c.text('output', task.output, limits.output),
    files_created: c.list('files_created', task.files_created).map(c.path),
    ...(task.refused_files !== undefined && {
      refused_files: c
        .list('refused_files', task.refused_files)
        .map((r) => ({ path: c.path(r.path), reason: c.reason(r.reason) })),
    }),
    ...(task.error !== undefined && { error: c.text('error', task.error, limits.text) }),
    attempt_history: task.attempt_history.map((a) => attemptForPage(a, rootJobId, limits)),
    ...changesForPage(task, c),
    ...(logHref !== undefined && { log_href: logHref }),
    ...(filesHref !== undefined && { files_href: `${filesHref}/` }),
  };
  if (c.cut.size > 0) clipped.cut = [...c.cut];
  return clipped;
}

/** A repository worker's changed and excluded files, each list cut. */
function changesForPage(
  task: TaskResultView,
  c: Clipper,
): Pick<ReportTask, 'files_changed' | 'excluded_files'> {
  const changed = task.files_changed;
  return {
    ...(changed !== undefined && {
      files_changed: {
        added: c.list('files_changed', changed.added).map(c.path),
        modified: c.list('files_changed', changed.modified).map(c.path),
        deleted: c.list('files_changed', changed.deleted).map(c.path),
      },
    }),
    ...(task.excluded_files !== undefined && {
      excluded_files: c
        .list('excluded_files', task.excluded_files)
        .map((e) => ({ path: c.path(e.path), reason: c.reason(e.reason) })),
    }),
  };
}

/** An attempt with its error cut and, when it names its own log (issue 10 on), a link to it. */
function attemptForPage(
  a: AttemptView,
  rootJobId: string,
  limits: ReportLimits,
): AttemptView & { log_href?: string } {
  const href = a.log_key === undefined ? undefined : relativeHref(rootJobId, a.log_key);
  return {
    ...a,
    ...(a.error !== undefined && { error: clip(a.error, limits.text).text }),
    ...(href !== undefined && { log_href: href }),
  };
}

/**
 * A key of the job's prefix as a link relative to REPORT.html, which sits at
 * the top of that prefix both in S3 and in the local mirror. Undefined for a
 * key outside it or with a segment a browser would resolve (`..`).
 */
export function relativeHref(rootJobId: string, key: string): string | undefined {
  const prefix = jobPrefix(rootJobId);
  if (!key.startsWith(prefix)) return undefined;
  const segments = key.slice(prefix.length).replace(/\/$/, '').split('/');
  if (segments.some((s) => s === '' || s === '.' || s === '..')) return undefined;
  return segments.map(encodeURIComponent).join('/');
}

function clipGit(git: GitView, limits: ReportLimits): GitView {
  return {
    ...git,
    conflicts: git.conflicts.map((c) => ({
      ...c,
      files: c.files.slice(0, limits.list).map((f) => clip(f, limits.path).text),
      hunks: c.hunks.slice(0, limits.hunks).map((h) => clip(h, limits.hunk).text),
      ...(c.reason !== undefined && { reason: clip(c.reason, limits.text).text }),
    })),
    ...(git.note !== undefined && { note: clip(git.note, limits.text).text }),
  };
}

/**
 * The analytics with each list bounded and each attempt's log as a relative
 * link. Result.json files written before issue 10 have none: the page then
 * draws a per-level table of its own.
 */
function performanceForPage(
  perf: PerformanceView,
  rootJobId: string,
  limits: ReportLimits,
): ReportPerformance {
  return {
    ...perf,
    timeline: perf.timeline.slice(0, limits.analyticsRows).map((a) => attemptForTimeline(a, rootJobId)),
    critical_path: { ...perf.critical_path, steps: perf.critical_path.steps.slice(0, limits.analyticsRows) },
    resources: perf.resources.slice(0, limits.analyticsRows),
  };
}

function attemptForTimeline(a: AttemptTimeline, rootJobId: string): ReportAttempt {
  const { queued_at: _q, launched_at: _l, running_at: _r, finished_at: _f, log_key, ...rest } = a;
  // Typed as always there, but result.json is data: a page must survive one without it.
  const href = typeof log_key === 'string' ? relativeHref(rootJobId, log_key) : undefined;
  return { ...rest, ...(href !== undefined && { log_href: href }) };
}

/** The first `max` characters of `text`, never splitting a surrogate pair. */
export function clip(text: string, max: number): { text: string; cut: boolean } {
  if (text.length <= max) return { text, cut: false };
  const code = text.charCodeAt(max - 1);
  const end = code >= 0xd800 && code <= 0xdbff ? max - 1 : max;
  return { text: text.slice(0, end), cut: true };
}

// ---------------------------------------------------------------------------------------------
// The page

function page(result: JobResult, json: string): string {
  return [
    '<!doctype html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    `<meta http-equiv="Content-Security-Policy" content="${CSP}">`,
    '<meta name="referrer" content="no-referrer">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>Job ${escapeHtml(result.job_id)}: ${escapeHtml(result.status)}</title>`,
    `<style>${STYLE}</style>`,
    '</head>',
    '<body>',
    header(result),
    '<noscript><p class="note">This page draws the tree, the timeline and the details with JavaScript; result.json beside it holds the same data.</p></noscript>',
    BODY,
    `<script type="application/json" id="report-data">${json}</script>`,
    `<script>${SCRIPT}</script>`,
    '</body>',
    '</html>',
    '',
  ].join('\n');
}

/** The outcome in plain HTML, so it shows even before (or without) the script. */
function header(result: JobResult): string {
  const s = result.results.summary;
  const facts: [string, string][] = [
    ['Workers', workerCounts(s)],
    ['Jobs', `${s.jobs} over ${s.depths} level${s.depths === 1 ? '' : 's'}`],
    ['Cost', costLine(result)],
    ['Wall time', result.wall_time_ms === undefined ? 'n/a' : formatDuration(result.wall_time_ms)],
    ['Created', result.created_at],
    ['Finished', result.finished_at ?? 'not yet'],
  ];
  return [
    '<header>',
    `<h1>Job <code>${escapeHtml(result.job_id)}</code> <span class="badge st-${cssToken(result.status)}">${escapeHtml(result.status)}</span></h1>`,
    `<blockquote class="request">${escapeHtml(clip(result.request, REPORT_LIMITS.request).text)}</blockquote>`,
    result.error === undefined
      ? ''
      : `<p class="error">${escapeHtml(clip(result.error, REPORT_LIMITS.request).text)}</p>`,
    `<dl class="facts">${facts.map(([k, v]) => `<div><dt>${k}</dt><dd>${escapeHtml(v)}</dd></div>`).join('')}</dl>`,
    '</header>',
  ].join('\n');
}

function workerCounts(s: JobResult['results']['summary']): string {
  const parts = [`${s.total} in all`, `${s.succeeded} succeeded`];
  if (s.failed > 0) parts.push(`${s.failed} failed`);
  if (s.timed_out > 0) parts.push(`${s.timed_out} timed out`);
  if (s.cancelled > 0) parts.push(`${s.cancelled} cancelled`);
  if (s.running > 0) parts.push(`${s.running} not finished`);
  return parts.join(', ');
}

function costLine(result: JobResult): string {
  const c = result.cost;
  return `${formatCost(c.total_usd)} (workers ${formatCost(c.workers_usd)}, planning ${formatCost(c.planning_usd)}, steps ${formatCost(c.steps_usd)})`;
}

/** A state name as a class name; states are a fixed set, but the page must not trust that. */
function cssToken(text: string): string {
  return text.replace(/[^a-z_]/g, '');
}

const BODY = `<div class="layout">
<main>
<section id="timeline-section"><h2>Timeline</h2><p class="hint">One bar per attempt, from its start to its end; retries are separate bars on their worker's row. Click a bar or a name for the worker's details.</p><div id="legend" class="legend"></div><div id="timeline" class="timeline"></div></section>
<section id="tree-section"><h2>Workers</h2><p class="hint">Jobs and their tasks; a child job sits under the task that created it.</p><div id="tree" class="tree"></div></section>
<section id="git-section" hidden><h2>Repository</h2><div id="git"></div></section>
<section id="analytics-section"><h2>Analytics</h2><div id="analytics"></div></section>
<footer id="notes" class="notes"></footer>
</main>
<aside id="details" class="details"><p class="hint">Click a worker in the tree or on the timeline to see its output, its files or repository changes, its merge conflicts and its log.</p></aside>
</div>`;

const STYLE = `
:root{--fg:#1d2330;--muted:#5d6678;--line:#d9dde5;--bg:#fff;--panel:#f6f7f9;--sel:#fff3c4;
--ok:#2e9d5b;--rec:#1b8a8a;--fail:#d14343;--time:#e08a1e;--cancel:#8b93a1;--run:#3a74d8;--wait:#8a5cd1}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header{padding:16px 20px;border-bottom:1px solid var(--line);background:var(--panel)}
h1{font-size:20px;margin:0 0 8px}h2{font-size:16px;margin:18px 0 6px}h3{font-size:14px;margin:14px 0 4px}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
pre{white-space:pre-wrap;word-break:break-word;background:var(--panel);border:1px solid var(--line);padding:8px;border-radius:4px;max-height:50vh;overflow:auto}
.request{margin:6px 0;padding:6px 10px;border-left:3px solid var(--line);white-space:pre-wrap;max-height:8em;overflow:auto}
.facts{display:flex;flex-wrap:wrap;gap:6px 22px;margin:8px 0 0}.facts div{display:flex;gap:6px}.facts dt{color:var(--muted)}.facts dd{margin:0}
.error{color:var(--fail);white-space:pre-wrap}
.layout{display:grid;grid-template-columns:minmax(0,1fr) minmax(320px,38%);align-items:start}
main{padding:0 20px 30px;min-width:0}
.details{position:sticky;top:0;max-height:100vh;overflow:auto;padding:12px 18px;border-left:1px solid var(--line);background:var(--bg)}
.hint,.note,.notes{color:var(--muted)}.notes{margin-top:24px;font-size:12.5px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:12px;font-weight:600;vertical-align:middle;background:var(--run)}
.legend{display:flex;flex-wrap:wrap;gap:10px;margin:4px 0;font-size:12px;color:var(--muted)}
.legend span{display:inline-flex;align-items:center;gap:4px}.legend i{display:inline-block;width:12px;height:10px;border-radius:2px}
.timeline{border:1px solid var(--line);border-radius:4px;max-height:60vh;overflow:auto;position:relative}
.tl-row{display:grid;grid-template-columns:190px minmax(0,1fr);height:18px;border-bottom:1px solid #f0f1f4}
.tl-row.selected{background:var(--sel)}
.tl-axis{position:sticky;top:0;z-index:2;background:var(--bg);height:20px;border-bottom:1px solid var(--line)}
.tl-label{all:unset;cursor:pointer;font:12px ui-monospace,Menlo,Consolas,monospace;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;padding:1px 6px}
.tl-label:hover{text-decoration:underline}
.tl-track{position:relative;margin-right:8px}
.tick{position:absolute;top:0;bottom:0;border-left:1px solid var(--line);font-size:11px;color:var(--muted);padding-left:3px;white-space:nowrap}
.bar{position:absolute;top:3px;height:12px;min-width:2px;border-radius:2px;cursor:pointer;background:var(--run)}
.wait-span{position:absolute;top:8px;height:2px;cursor:pointer;background:var(--wait);opacity:.6}
.legend i.line{height:2px;width:16px;border-radius:0}.legend i.queue{background:var(--cancel)}.legend i.wait{background:var(--wait)}
.queue-span{position:absolute;top:8px;height:2px;cursor:pointer;background:var(--cancel);opacity:.5}
.big{font-size:22px;font-weight:600;margin:4px 0}
.stack{display:flex;height:14px;border-radius:3px;overflow:hidden;margin:4px 0;max-width:720px}
.b-running_ms{background:var(--ok)}.b-queueing_ms{background:var(--cancel)}.b-budget_wait_ms{background:var(--time)}
.b-launch_ms{background:var(--run)}.b-retries_ms{background:var(--fail)}.b-other_ms{background:#c9ced8}
.bar.crit{outline:2px solid #111;outline-offset:0}
.bar:hover{filter:brightness(1.15)}
.tree ul{list-style:none;margin:0;padding-left:18px}.tree>details{margin:0}
.tree summary{cursor:pointer;padding:2px 0}.tree li{margin:1px 0}
.worker{all:unset;cursor:pointer;display:inline-flex;gap:8px;align-items:baseline;padding:1px 4px;border-radius:3px}
.worker:hover{background:var(--panel)}.worker.selected{background:var(--sel)}
.worker .wid{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12.5px}.worker .meta{color:var(--muted);font-size:12px}
.dot{display:inline-block;width:9px;height:9px;border-radius:50%;background:var(--run)}
.jobline{color:var(--muted)}.jobline code{color:var(--fg)}
table{border-collapse:collapse;margin:4px 0;font-size:12.5px}th,td{border:1px solid var(--line);padding:2px 6px;text-align:left;vertical-align:top}
th{background:var(--panel)}td.num{text-align:right}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:4px 0}dl.kv dt{color:var(--muted)}dl.kv dd{margin:0;word-break:break-word}
.linklike{all:unset;cursor:pointer;color:#2456b3;text-decoration:underline}
a{color:#2456b3}
.scroll{overflow:auto;max-height:60vh}
/* Last, so a state's colour wins over the defaults of .bar, .dot and .badge. */
.st-running,.st-launching,.st-queued,.st-planning{background:var(--run)}
.st-succeeded,.st-completed{background:var(--ok)}.st-recursive_success{background:var(--rec)}
.st-failed{background:var(--fail)}.st-partial{background:var(--time)}.st-timed_out{background:var(--time)}
.st-cancelled{background:var(--cancel)}.st-waiting_on_child{background:var(--wait)}
@media (max-width:900px){.layout{grid-template-columns:1fr}.details{position:static;max-height:none;border-left:0;border-top:1px solid var(--line)}}
`;

/**
 * The page's script. It reads the embedded data and builds every element
 * with DOM calls; values only ever become text nodes or attributes.
 * Kept free of backticks and `${` so it can live in this template.
 */
const SCRIPT = String.raw`
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('report-data').textContent);
  var tasks = data.tasks;
  var job = data.job;
  var STATUSES = ['succeeded', 'recursive_success', 'failed', 'timed_out', 'cancelled', 'running', 'waiting_on_child'];
  var byWorker = new Map();
  tasks.forEach(function (t, i) { byWorker.set(t.worker_id, i); });
  var barsByTask = new Map();
  data.bars.forEach(function (b) {
    if (!barsByTask.has(b[0])) barsByTask.set(b[0], []);
    barsByTask.get(b[0]).push(b);
  });
  var signed = /[?&]X-Amz-Signature=/i.test(location.search);
  var perf = job.performance && typeof job.performance === 'object' ? job.performance : undefined;
  /** The analytics' record of each worker attempt (worker_id#attempt), when the result has them. */
  var phases = new Map();
  if (perf && Array.isArray(perf.timeline)) perf.timeline.forEach(function (e) {
    if (e && e.kind === 'work') phases.set(e.worker_id + '#' + e.attempt, e);
  });
  /** Builds the tree's closed jobs down to the given one; set once the tree is drawn. */
  var revealJob = function () {};

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) {
      var v = attrs[k];
      if (v === undefined || v === null || v === false) return;
      if (k === 'text') e.textContent = String(v);
      else if (k === 'class') e.className = v;
      else e.setAttribute(k, String(v));
    });
    (children || []).forEach(function (c) {
      if (c !== undefined && c !== null && c !== false) e.append(c);
    });
    return e;
  }
  function byId(id) { return document.getElementById(id); }
  function token(s) { return String(s).replace(/[^a-z_]/g, ''); }
  function fmtMs(ms) {
    if (ms === undefined || ms === null || !isFinite(ms)) return 'n/a';
    if (ms < 1000) return Math.round(ms) + ' ms';
    if (ms < 60000) return (ms / 1000).toFixed(1) + ' s';
    if (ms < 3600000) return joinUnits(Math.floor(ms / 60000), 'min', Math.round((ms % 60000) / 1000), 's');
    return joinUnits(Math.floor(ms / 3600000), 'h', Math.round((ms % 3600000) / 60000), 'min');
  }
  function joinUnits(big, bigUnit, small, smallUnit) {
    return big + ' ' + bigUnit + (small > 0 ? ' ' + small + ' ' + smallUnit : '');
  }
  function fmtUsd(x) { return typeof x === 'number' ? '$' + x.toFixed(4) : 'n/a'; }
  function plural(n, w) { return n + ' ' + w + (n === 1 ? '' : 's'); }
  /** A relative link built from encoded segments; anything with a scheme is refused. */
  function safeHref(href) { return typeof href === 'string' && !/^[a-z][a-z0-9+.-]*:/i.test(href) && href.indexOf('//') !== 0 ? href : undefined; }
  function fileHref(base, path) {
    var parts = String(path).split('/');
    if (!base || parts.some(function (p) { return p === '' || p === '.' || p === '..'; })) return undefined;
    return safeHref(base + parts.map(encodeURIComponent).join('/'));
  }
  function kv(pairs) {
    var dl = el('dl', { class: 'kv' });
    pairs.forEach(function (p) { if (p[1] !== undefined && p[1] !== null && p[1] !== '') dl.append(el('dt', { text: p[0] }), el('dd', null, [p[1]])); });
    return dl;
  }
  function workerLink(id) {
    var i = byWorker.get(id);
    if (i === undefined) return el('code', { text: id });
    return el('button', { class: 'linklike', 'data-i': i, type: 'button', text: id });
  }

  // ---- legend and timeline
  function legend() {
    var box = byId('legend');
    STATUSES.forEach(function (s) {
      box.append(el('span', null, [el('i', { class: 'st-' + s }), s.replace(/_/g, ' ')]));
    });
    if (phases.size > 0) box.append(el('span', null, [el('i', { class: 'line queue' }), 'waiting to start']));
    box.append(el('span', null, [el('i', { class: 'line wait' }), 'waiting on its child job']));
  }
  function tickStep(span) {
    var steps = [1e3, 2e3, 5e3, 1e4, 15e3, 3e4, 6e4, 12e4, 3e5, 6e5, 9e5, 18e5, 36e5, 72e5, 216e5, 432e5, 864e5];
    for (var k = 0; k < steps.length; k++) if (span / steps[k] <= 10) return steps[k];
    return steps[steps.length - 1];
  }
  function pct(ms) { return (ms / data.t1 * 100) + '%'; }
  function timeline() {
    var box = byId('timeline');
    var axis = el('div', { class: 'tl-row tl-axis' }, [el('span', { class: 'tl-label', text: 'worker' })]);
    var track = el('div', { class: 'tl-track' });
    var step = tickStep(data.t1);
    for (var t = 0; t <= data.t1; t += step) {
      var tick = el('span', { class: 'tick', text: t === 0 ? '0' : fmtMs(t) });
      tick.style.left = pct(t);
      track.append(tick);
    }
    axis.append(track);
    var frag = document.createDocumentFragment();
    frag.append(axis);
    tasks.forEach(function (task, i) { frag.append(timelineRow(task, i)); });
    box.append(frag);
    box.addEventListener('click', onPick);
  }
  function timelineRow(task, i) {
    var label = el('button', { class: 'tl-label', type: 'button', 'data-i': i, title: task.title, text: task.worker_id });
    label.style.paddingLeft = (6 + 10 * task.depth) + 'px';
    var track = el('div', { class: 'tl-track' });
    (barsByTask.get(i) || []).forEach(function (b) {
      var bar = el('div', {
        class: 'bar st-' + token(b[4]),
        'data-i': i,
        'data-attempt': b[1],
        title: task.worker_id + ' attempt ' + b[1] + ': ' + b[4] + ', ' + fmtMs(b[3] - b[2]) + ' (' + fmtMs(b[2]) + ' to ' + fmtMs(b[3]) + ')',
      });
      bar.style.left = pct(b[2]);
      bar.style.width = pct(b[3] - b[2]);
      var phase = phases.get(task.worker_id + '#' + b[1]);
      if (phase && phase.on_critical_path) bar.classList.add('crit');
      var queue = phase && queueSpan(phase, b, i);
      if (queue) track.append(queue);
      track.append(bar);
    });
    var wait = childWait(task, i);
    if (wait) track.append(wait);
    return el('div', { class: 'tl-row', 'data-row': i }, [label, track]);
  }

  /** Queued and launching before the bar: a thin line, so waiting for a slot is not taken for work. */
  function queueSpan(phase, b, i) {
    if (typeof phase.queued_ms !== 'number' || !(phase.queued_ms < b[2])) return undefined;
    var parts = ['queued at ' + fmtMs(phase.queued_ms)];
    if (typeof phase.launched_ms === 'number') parts.push('launched at ' + fmtMs(phase.launched_ms));
    if (phase.budget_wait_ms > 0) parts.push(fmtMs(phase.budget_wait_ms) + ' waiting for the spend budget');
    var line = el('div', { class: 'queue-span', 'data-i': i, title: 'attempt ' + b[1] + ' ' + parts.join(', ') });
    line.style.left = pct(phase.queued_ms);
    line.style.width = pct(b[2] - phase.queued_ms);
    return line;
  }
  /** A hand-off ends when its child job does: a thin line after its last bar, so the wait is not taken for work. */
  function childWait(task, i) {
    var bars = barsByTask.get(i);
    var last = bars && bars[bars.length - 1];
    var end = task.finished_at ? Date.parse(task.finished_at) - data.t0 : NaN;
    if (!task.recursive || !last || !(end > last[3])) return undefined;
    var line = el('div', { class: 'wait-span', 'data-i': i, title: task.worker_id + ' waited on child job ' + (task.child_job_id || '') + ' until ' + fmtMs(end) });
    line.style.left = pct(last[3]);
    line.style.width = pct(end - last[3]);
    return line;
  }

  // ---- tree
  function tree() {
    var tasksByJob = new Map();
    tasks.forEach(function (t, i) {
      if (!tasksByJob.has(t.job_id)) tasksByJob.set(t.job_id, []);
      tasksByJob.get(t.job_id).push(i);
    });
    var childrenOfTask = new Map();
    var jobsById = new Map();
    data.jobs.forEach(function (j) { jobsById.set(j.job_id, j); });
    function addChild(key, j) {
      if (!childrenOfTask.has(key)) childrenOfTask.set(key, []);
      if (childrenOfTask.get(key).indexOf(j) < 0) childrenOfTask.get(key).push(j);
    }
    data.jobs.forEach(function (j) {
      if (j.parent_job_id !== undefined && j.parent_task_no !== undefined) addChild(j.parent_job_id + '#' + j.parent_task_no, j);
    });
    tasks.forEach(function (t) {
      var child = t.child_job_id && jobsById.get(t.child_job_id);
      if (child && child.job_id !== job.job_id) addChild(t.job_id + '#' + t.task_no, child);
    });
    // Each job goes under the first task found to name it, from the root down (a cycle cannot form).
    var placed = new Map();
    var parentJob = new Map();
    var reached = new Set();
    function place(j) {
      reached.add(j.job_id);
      (tasksByJob.get(j.job_id) || []).forEach(function (i) {
        var key = tasks[i].job_id + '#' + tasks[i].task_no;
        var kids = (childrenOfTask.get(key) || []).filter(function (c) { return !reached.has(c.job_id); });
        kids.forEach(function (c) { reached.add(c.job_id); parentJob.set(c.job_id, j.job_id); });
        placed.set(key, kids);
        kids.forEach(place);
      });
    }
    var fills = new Map();
    /** Jobs below depth 1 start closed, and their workers are built when first opened. */
    function jobNode(j) {
      var s = j.summary;
      var node = el('details', { 'data-job': j.job_id }, [
        el('summary', { class: 'jobline' }, [
          el('span', { class: 'badge st-' + token(j.status), text: j.status }), ' job ', el('code', { text: j.job_id }),
          ' · depth ' + j.depth + ' · ' + plural(s.total, 'worker') + ' · ' + fmtUsd(s.total_cost_usd) + ' · ',
          el('span', { text: j.request.length > 140 ? j.request.slice(0, 140) + '…' : j.request }),
        ]),
      ]);
      var built = false;
      var fill = function () {
        if (built) return;
        built = true;
        node.append(jobList(j));
      };
      fills.set(j.job_id, fill);
      if (j.depth < 2) {
        node.open = true;
        fill();
      } else node.addEventListener('toggle', function () { if (node.open) fill(); });
      return node;
    }
    function jobList(j) {
      var list = el('ul');
      (tasksByJob.get(j.job_id) || []).forEach(function (i) {
        var t = tasks[i];
        var li = el('li', null, [workerButton(t, i)]);
        (placed.get(t.job_id + '#' + t.task_no) || []).forEach(function (c) {
          li.append(el('ul', null, [el('li', null, [jobNode(c)])]));
        });
        list.append(li);
      });
      return list;
    }
    revealJob = function (jobId) {
      var chain = [];
      for (var id = jobId; id !== undefined; id = parentJob.get(id)) chain.unshift(id);
      chain.forEach(function (id) { var fill = fills.get(id); if (fill) fill(); });
    };
    var box = byId('tree');
    var root = data.jobs.find(function (j) { return j.job_id === job.job_id; }) || data.jobs[0];
    if (root) {
      place(root);
      box.append(jobNode(root));
    }
    var orphans = data.jobs.filter(function (j) { return !reached.has(j.job_id); });
    if (orphans.length > 0) {
      box.append(el('h3', { text: 'Jobs whose parent is not in this tree' }));
      orphans.forEach(function (j) {
        if (reached.has(j.job_id)) return;
        place(j);
        box.append(jobNode(j));
      });
    }
    box.addEventListener('click', onPick);
  }
  function workerButton(t, i) {
    var meta = [t.status.replace(/_/g, ' ')];
    if (t.attempts > 1) meta.push(plural(t.attempts, 'attempt'));
    meta.push(fmtMs(t.duration_ms), fmtUsd(t.cost_usd));
    return el('button', { class: 'worker', type: 'button', 'data-i': i }, [
      el('span', { class: 'dot st-' + token(t.status) }),
      el('span', { class: 'wid', text: t.worker_id }),
      el('span', { text: t.title }),
      el('span', { class: 'meta', text: meta.join(' · ') }),
    ]);
  }

  // ---- details, built on demand
  function onPick(ev) {
    var target = ev.target.closest('[data-i]');
    if (!target) return;
    ev.preventDefault();
    select(Number(target.getAttribute('data-i')), true);
  }
  function select(i, reveal) {
    var t = tasks[i];
    if (!t) return;
    document.querySelectorAll('.selected').forEach(function (e) { e.classList.remove('selected'); });
    var row = document.querySelector('.tl-row[data-row="' + i + '"]');
    if (row) {
      row.classList.add('selected');
      var box = byId('timeline');
      if (row.offsetTop < box.scrollTop + 20 || row.offsetTop > box.scrollTop + box.clientHeight - 20) box.scrollTop = row.offsetTop - 60;
    }
    revealJob(t.job_id);
    var button = document.querySelector('.worker[data-i="' + i + '"]');
    if (button) {
      button.classList.add('selected');
      for (var d = button.closest('details'); d; d = d.parentElement && d.parentElement.closest('details')) d.open = true;
    }
    var panel = byId('details');
    panel.replaceChildren.apply(panel, details(t));
    panel.scrollTop = 0;
    if (reveal && history.replaceState) history.replaceState(null, '', '#' + encodeURIComponent(t.worker_id));
  }
  function details(t) {
    var out = [
      el('h2', null, [el('code', { text: t.worker_id }), ' ', el('span', { class: 'badge st-' + token(t.status), text: t.status })]),
      el('p', { text: t.title }),
      kv([
        ['Job', el('code', { text: t.job_id })],
        ['Depth', String(t.depth)],
        ['Attempts', String(t.attempts)],
        ['Duration', fmtMs(t.duration_ms)],
        ['Turns', String(t.num_turns)],
        ['Cost', fmtUsd(t.cost_usd)],
        ['Started', t.started_at],
        ['Finished', t.finished_at],
        ['Created by', t.parent_worker_id && workerLink(t.parent_worker_id)],
        ['Child job', t.child_job_id && childJobLine(t)],
        ['Error', t.error],
      ]),
      logLine(t),
    ];
    if (t.attempt_history.length > 0) out.push(el('h3', { text: 'Attempts' }), attemptsTable(t));
    out.push(el('h3', { text: 'Output' }), el('pre', { class: 'output', text: t.output || '(no output)' }));
    if (t.cut && t.cut.indexOf('output') >= 0) out.push(el('p', { class: 'note', text: 'Cut to ' + data.limits.output + ' characters for this page; the log and result.json have all of it.' }));
    if (t.output_truncated) out.push(el('p', { class: 'note', text: 'The worker\u2019s output was cut when its result was recorded; the log has all of it.' }));
    out.push.apply(out, filesSection(t));
    out.push.apply(out, changesSection(t));
    out.push.apply(out, mergeSection(t));
    out.push(el('details', null, [el('summary', { text: 'Prompt' }), el('pre', { text: t.prompt })]));
    if (t.cut) out.push(el('p', { class: 'note', text: 'Shortened for this page: ' + t.cut.join(', ') + '.' }));
    return out;
  }
  function childJobLine(t) {
    var j = data.jobs.find(function (x) { return x.job_id === t.child_job_id; });
    var parts = [el('code', { text: t.child_job_id })];
    if (j) parts.push(' ' + j.status + ', ' + plural(j.summary.total, 'worker'));
    if (t.child_results) parts.push(' (' + t.child_results.succeeded + ' of ' + t.child_results.total + ' succeeded)');
    return el('span', null, parts);
  }
  /** Each attempt's own log, when the analytics name it (older results have one log per worker). */
  function attemptLog(t, attempt) {
    var record = t.attempt_history.find(function (a) { return a.attempt === attempt; });
    var phase = phases.get(t.worker_id + '#' + attempt);
    var href = (record && safeHref(record.log_href)) || (phase && safeHref(phase.log_href));
    return href ? el('a', { href: href, target: '_blank', rel: 'noopener noreferrer', text: 'log' }) : '';
  }
  /** result.json names the latest attempt's log (issue 10 on) or the worker's only one (before). */
  function latestLog(t) {
    return safeHref(t.log_href);
  }
  function logLine(t) {
    var href = latestLog(t);
    if (!href) return el('p', { class: 'note', text: 'No log for this worker.' });
    var p = el('p', null, ['Log: ', el('a', { class: 'log-link', href: href, target: '_blank', rel: 'noopener noreferrer', text: href })]);
    if (signed) p.append(el('span', { class: 'note', text: ' (this page came from a signed link: the log needs its own, which GET /api/v1/jobs/{id}/report lists)' }));
    return p;
  }
  function attemptsTable(t) {
    var bars = barsByTask.get(tasks.indexOf(t)) || [];
    var rows = t.attempt_history.map(function (a) {
      var b = bars.find(function (x) { return x[1] === a.attempt; });
      return el('tr', null, [
        el('td', { class: 'num', text: a.attempt }), el('td', { text: a.status }),
        el('td', { text: b ? fmtMs(b[2]) : '' }), el('td', { text: b ? fmtMs(b[3]) : '' }),
        el('td', { class: 'num', text: fmtMs(a.duration_ms) }), el('td', { class: 'num', text: fmtUsd(a.cost_usd) }),
        el('td', { text: a.error || (a.exit_code !== undefined ? 'exit ' + a.exit_code : '') }),
        el('td', null, [attemptLog(t, a.attempt)]),
      ]);
    });
    var head = el('tr', null, ['#', 'status', 'start', 'end', 'duration', 'cost', 'error', 'log'].map(function (h) { return el('th', { text: h }); }));
    return el('table', null, [el('thead', null, [head]), el('tbody', null, rows)]);
  }
  function fileList(paths, base) {
    return el('ul', null, paths.map(function (p) {
      var href = fileHref(base, p);
      return el('li', null, [href ? el('a', { href: href, target: '_blank', rel: 'noopener noreferrer', text: p }) : el('code', { text: p })]);
    }));
  }
  function filesSection(t) {
    var out = [];
    if (t.files_created.length > 0) out.push(el('h3', { text: 'Files created (' + t.files_created.length + ')' }), fileList(t.files_created, t.files_href));
    if (t.refused_files && t.refused_files.length > 0) {
      out.push(el('h3', { text: 'Files refused (' + (t.refused_count || t.refused_files.length) + ')' }));
      out.push(el('ul', null, t.refused_files.map(function (r) { return el('li', null, [el('code', { text: r.path }), ': ' + r.reason]); })));
    }
    return out;
  }
  function changesSection(t) {
    var fc = t.files_changed;
    if (!fc && !t.commit) return [];
    var out = [el('h3', { text: 'Repository changes' }), kv([
      ['Commit', t.commit && el('code', { text: t.commit })],
      ['Lines', t.insertions !== undefined ? '+' + t.insertions + ' \u2212' + (t.deletions || 0) : undefined],
    ])];
    if (fc) [['Added', fc.added], ['Modified', fc.modified], ['Deleted', fc.deleted]].forEach(function (g) {
      if (g[1].length > 0) out.push(el('p', { text: g[0] + ' (' + g[1].length + ')' }), fileList(g[1], undefined));
    });
    if (t.excluded_files && t.excluded_files.length > 0) {
      out.push(el('p', { text: 'Left out of the commit' }));
      out.push(el('ul', null, t.excluded_files.map(function (e) { return el('li', null, [el('code', { text: e.path }), ': ' + e.reason]); })));
    }
    return out;
  }
  function mergeSection(t) {
    var git = job.git;
    if (!git) return [];
    var out = [];
    var merged = git.merged.find(function (m) { return m.worker_id === t.worker_id; });
    if (merged) out.push(el('h3', { text: 'Merge' }), el('p', { text: 'Commit ' + merged.commit.slice(0, 12) + ': ' + merged.outcome.replace('_', ' ') + ', +' + merged.insertions + ' \u2212' + merged.deletions + ' in ' + plural(merged.files_changed, 'file') }));
    var conflicts = git.conflicts.filter(function (c) { return c.workers.indexOf(t.worker_id) >= 0; });
    if (conflicts.length > 0) {
      out.push(el('h3', { class: 'conflicts', text: 'Merge conflicts (' + conflicts.length + ')' }));
      conflicts.forEach(function (c) { out.push(conflictBlock(c)); });
    }
    return out;
  }
  function conflictBlock(c) {
    var box = el('div', { class: 'conflict' }, [kv([
      ['Workers', el('span', null, c.workers.map(function (w, k) { return k === 0 ? workerLink(w) : el('span', null, [', ', workerLink(w)]); }))],
      ['Files', c.files.join(', ')],
      ['Resolution', c.resolution.replace('_', ' ')],
      ['Why', c.reason],
    ])]);
    c.hunks.forEach(function (h) { box.append(el('pre', { text: h })); });
    return box;
  }

  // ---- repository summary
  function gitSection() {
    var git = job.git;
    if (!git) return;
    byId('git-section').hidden = false;
    var box = byId('git');
    box.append(kv([
      ['State', git.state], ['Branch', git.branch], ['Base', git.base_commit], ['Head', git.head_commit],
      ['Changes', '+' + git.insertions + ' \u2212' + git.deletions + ' in ' + plural(git.files_changed, 'file')],
      ['Pushed to', git.pushed_to], ['Note', git.note],
    ]));
    if (job.steps && job.steps.length > 0) {
      box.append(el('h3', { text: 'Steps' }), objectTable(job.steps.map(function (st) {
        return { step: st.kind, status: st.status, attempts: st.attempts, cost_usd: st.cost_usd, error: st.error };
      })));
    }
    if (git.conflicts.length > 0) {
      box.append(el('h3', { text: 'Conflicts (' + git.conflicts.length + ')' }));
      git.conflicts.forEach(function (c) { box.append(conflictBlock(c)); });
    }
    box.addEventListener('click', onPick);
  }

  // ---- analytics: whatever the result's performance field holds; a per-depth table without it
  function humanize(key) { return String(key).replace(/_/g, ' ').replace(/^./, function (c) { return c.toUpperCase(); }); }
  function fmtValue(key, v) {
    if (typeof v === 'number') {
      if (/(^|_)ms$/.test(key)) return fmtMs(v);
      if (/usd$/.test(key)) return fmtUsd(v);
      if (/_mb$/.test(key)) return v.toFixed(0) + ' MB';
      if (/(efficiency|ratio|share|fraction|utilization)$/.test(key) && v <= 1.5) return (v * 100).toFixed(1) + '%';
      return Number.isInteger(v) ? String(v) : v.toFixed(3);
    }
    if (typeof v === 'string' && byWorker.has(v)) return workerLink(v);
    if (v === null || v === undefined) return '';
    if (typeof v === 'object') return el('code', { text: JSON.stringify(v).slice(0, 200) });
    return String(v);
  }
  function isPlain(v) { return v === null || typeof v !== 'object'; }
  function valueNode(key, v) {
    if (Array.isArray(v)) {
      if (v.length === 0) return el('p', { class: 'note', text: 'none' });
      if (v.every(isPlain)) return el('p', null, v.slice(0, 200).reduce(function (acc, x, k) { if (k > 0) acc.push(' \u2192 '); acc.push(fmtValue(key, x)); return acc; }, []));
      return objectTable(v);
    }
    if (v && typeof v === 'object') {
      var plain = Object.keys(v).filter(function (k) { return isPlain(v[k]); });
      var box = el('div', null, [kv(plain.map(function (k) { return [humanize(k), fmtValue(k, v[k])]; }))]);
      Object.keys(v).filter(function (k) { return !isPlain(v[k]); }).forEach(function (k) {
        box.append(el('h3', { text: humanize(k) }), valueNode(k, v[k]));
      });
      return box;
    }
    return el('p', null, [fmtValue(key, v)]);
  }
  function objectTable(rows) {
    var cols = [];
    rows.slice(0, 2000).forEach(function (r) { if (r && typeof r === 'object') Object.keys(r).forEach(function (k) { if (cols.indexOf(k) < 0) cols.push(k); }); });
    var shown = rows.slice(0, 300);
    var body = shown.map(function (r) { return el('tr', null, cols.map(function (c) { return el('td', null, [fmtValue(c, r ? r[c] : undefined)]); })); });
    var table = el('table', null, [el('thead', null, [el('tr', null, cols.map(function (c) { return el('th', { text: humanize(c.replace(/_(ms|usd|mb)$/, '')) }); }))]), el('tbody', null, body)]);
    var wrap = el('div', { class: 'scroll' }, [table]);
    if (rows.length > shown.length) wrap.append(el('p', { class: 'note', text: (rows.length - shown.length) + ' more rows in result.json.' }));
    return wrap;
  }
  function analytics() {
    var box = byId('analytics');
    box.addEventListener('click', onPick);
    if (!perf) {
      box.append(el('p', { class: 'note', text: 'This result has no performance analytics; per level, from the workers:' }), depthTable());
      return;
    }
    var known = {
      timeline: timelineNote, efficiency: efficiencySection, critical_path: criticalSection,
      bottleneck: bottleneckSection, resources: resourcesSection, cost_by_depth: objectTable,
    };
    Object.keys(perf).forEach(function (k) {
      if (k === 'origin' || k === 'wall_time_ms') return;
      var node;
      // A section whose shape is not the one expected falls back to the plain view, never breaks the page.
      try { node = known[k] ? known[k](perf[k]) : undefined; } catch (e) { node = undefined; }
      box.append(el('h3', { text: humanize(k) }), node || valueNode(k, perf[k]));
    });
  }
  function timelineNote(v) {
    if (!Array.isArray(v)) return undefined;
    return el('p', { class: 'note', text: plural(v.length, 'attempt') + ', planners and repository steps included. On the chart, the thin grey line before a bar is its attempt waiting to start (queued, launching); bars outlined in black are on the critical path.' });
  }
  function efficiencySection(v) {
    if (typeof v.busy_ms !== 'number') return undefined;
    return el('div', null, [
      el('p', { class: 'big', text: v.parallel_efficiency === null ? 'n/a' : fmtValue('efficiency', v.parallel_efficiency) }),
      kv([
        ['Busy worker time', fmtMs(v.busy_ms)], ['Wall time', fmtMs(v.wall_time_ms)],
        ['Max workers', String(v.max_workers)], ['Peak concurrency', String(v.peak_concurrency)],
      ]),
      el('p', { class: 'note', text: 'Busy time over wall time \u00d7 max workers; child jobs have slots of their own, so a tree can go above 100%.' }),
    ]);
  }
  var BUCKETS = ['running_ms', 'queueing_ms', 'budget_wait_ms', 'launch_ms', 'retries_ms', 'other_ms'];
  function criticalSection(v) {
    if (!Array.isArray(v.steps) || typeof v.total_ms !== 'number') return undefined;
    var stack = el('div', { class: 'stack' });
    var key = el('div', { class: 'legend' });
    BUCKETS.forEach(function (b) {
      if (!(v[b] > 0)) return;
      var name = humanize(b.replace(/_ms$/, ''));
      var part = el('span', { class: 'b-' + b, title: name + ': ' + fmtMs(v[b]) });
      part.style.width = (v[b] / Math.max(1, v.total_ms) * 100) + '%';
      stack.append(part);
      key.append(el('span', null, [el('i', { class: 'b-' + b }), name + ' ' + fmtMs(v[b])]));
    });
    var rows = v.steps.map(function (s) {
      return {
        worker_id: s.worker_id, attempt: s.attempt, status: s.status, start_ms: s.start_ms, end_ms: s.end_ms,
        queue_ms: s.queue_ms, budget_wait_ms: s.budget_wait_ms, launch_ms: s.launch_ms, run_ms: s.run_ms, retry: s.retry,
      };
    });
    return el('div', null, [
      el('p', { text: 'Wall time ' + fmtMs(v.total_ms) + ' along ' + plural(v.steps.length, 'step') + ':' }),
      stack, key, objectTable(rows),
    ]);
  }
  function bottleneckSection(v) {
    if (typeof v.worker_id !== 'string') return undefined;
    var lost = v.lost || {};
    return el('div', null, [
      el('p', null, [
        workerLink(v.worker_id), ' attempt ' + v.attempt + ' ran ' + fmtMs(v.run_ms) + ' (' + fmtValue('share', v.share) +
        ' of the wall time), the longest on the critical path; most of the path\u2019s time went to ' + String(v.cause).replace(/_/g, ' ') + '.',
      ]),
      kv(Object.keys(lost).map(function (k) { return ['Lost to ' + humanize(k.replace(/_ms$/, '')).toLowerCase(), fmtMs(lost[k])]; })),
    ]);
  }
  function resourcesSection(v) {
    if (!Array.isArray(v)) return undefined;
    var rows = v.slice().sort(function (a, b) { return (b.cost_usd || 0) - (a.cost_usd || 0); });
    return el('div', null, [el('p', { class: 'note', text: 'Every task that ran, the most expensive first.' }), objectTable(rows)]);
  }
  function depthTable() {
    var depths = new Map();
    tasks.forEach(function (t) {
      var d = depths.get(t.depth) || { workers: 0, attempts: 0, cost: 0, ms: 0 };
      d.workers += 1; d.attempts += t.attempts; d.cost += t.cost_usd; d.ms += t.duration_ms;
      depths.set(t.depth, d);
    });
    var rows = Array.from(depths.keys()).sort(function (a, b) { return a - b; }).map(function (k) {
      var d = depths.get(k);
      return { depth: k, workers: d.workers, attempts: d.attempts, cost_usd: d.cost, worker_time_ms: d.ms };
    });
    return objectTable(rows);
  }

  function notes() {
    var box = byId('notes');
    var l = data.limits;
    box.append(el('p', { text: 'Generated from result.json. For this page, outputs are cut to ' + l.output + ' characters, prompts to ' + l.prompt + ', lists to ' + l.list + ' entries' + (data.cut_workers > 0 ? ' (' + plural(data.cut_workers, 'worker') + ' affected)' : '') + '; result.json and each worker\u2019s log have everything.' }));
    if (signed) box.append(el('p', { text: 'Opened from a signed link: links to logs and files are relative to the job\u2019s folder and need their own signed links (GET /api/v1/jobs/{id}/report lists them); the local copy that run makes has them all.' }));
  }

  try {
    legend();
    timeline();
    tree();
    gitSection();
    analytics();
    notes();
    byId('details').addEventListener('click', onPick);
    var wanted = location.hash.slice(1);
    try { wanted = decodeURIComponent(wanted); } catch (e) { wanted = ''; }
    if (byWorker.has(wanted)) select(byWorker.get(wanted), false);
    document.body.dataset.rendered = '1';
  } catch (err) {
    document.body.prepend(el('p', { class: 'error', text: 'The report could not be drawn: ' + (err && err.message) }));
    document.body.dataset.rendered = 'error';
  }
})();
`;

const CSP = [
  "default-src 'none'",
  `script-src 'sha256-${createHash('sha256').update(SCRIPT).digest('base64')}'`,
  "style-src 'unsafe-inline'",
  "img-src 'none'",
  "connect-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
].join('; ');
