/**
 * The markdown both reports are written in (LEVEL_<depth>_REPORT.md and
 * FINAL_RESULT.md): tables, numbers, escaping, fences, links to stored
 * objects, and the phrases both reports use. Titles, prompts, outputs and file
 * names are written by Claude, so they are escaped for tables, fenced with a
 * fence longer than any they contain, and never trusted to be well-formed
 * markdown. Pure.
 */
import type { AttemptTimeline } from './performance.ts';
import type { JobResult, TaskResultView, TaskSummary, TreeJobView } from './result-format.ts';

/** `$0.0125`: dollars with four decimals. */
export function formatCost(usd: number): string {
  return `$${usd.toFixed(4)}`;
}

/** `850ms`, `42s`, `1m 05s`, `2h 03m 04s`. */
export function formatDuration(ms: number): string {
  if (ms < 1_000) return `${Math.max(0, Math.round(ms))}ms`;
  const total = Math.round(ms / 1_000);
  if (total < 60) return `${total}s`;
  const s = String(total % 60).padStart(2, '0');
  const minutes = Math.floor(total / 60);
  if (minutes < 60) return `${minutes}m ${s}s`;
  return `${Math.floor(minutes / 60)}h ${String(minutes % 60).padStart(2, '0')}m ${s}s`;
}

/** Makes text safe inside a markdown table cell: pipes escaped, line breaks as `<br>`. */
export function escapeTableCell(text: string): string {
  return text.replaceAll('|', '\\|').replace(/\r\n|\r|\n/g, '<br>');
}

export function table(headers: string[], align: ('l' | 'r')[], rows: string[][]): string[] {
  const row = (cells: string[]) => `| ${cells.map(escapeTableCell).join(' | ')} |`;
  return [row(headers), `|${align.map((a) => (a === 'r' ? '---:' : '---')).join('|')}|`, ...rows.map(row)];
}

export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

export function capitalize(text: string): string {
  return text.length === 0 ? text : `${text.charAt(0).toUpperCase()}${text.slice(1)}`;
}

/** Collapses line breaks, for text placed in a heading or list item. */
function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, ' ').trim();
}

/**
 * Text written by a worker or a caller (titles, errors, file names), placed in
 * running markdown: on one line, and unable to open a link, an image, HTML, an
 * autolink or a code span, or to escape the markup around it. Pipes are left
 * to `escapeTableCell`.
 */
export function markdownText(text: string): string {
  return escapeInline(oneLine(text));
}

const WORD_CHAR = /[\p{L}\p{N}]/u;

export function escapeInline(text: string): string {
  return (
    text
      // An underscore inside a word (`worker_2_1`) can neither open nor close emphasis: left as written.
      .replace(/[\\`*_~[\]<>&#]/g, (c, at: number) =>
        c === '_' && WORD_CHAR.test(text[at - 1] ?? '') && WORD_CHAR.test(text[at + 1] ?? '') ? c : `\\${c}`,
      )
      // GFM turns bare `https://…` and `www.…` into links; an escaped character breaks the match.
      .replace(/:\/\//g, '\\://')
      .replace(/\b(www)\./gi, '$1\\.')
  );
}

/**
 * A link destination with every character outside a plain URL's set
 * percent-encoded, so that spaces, brackets, parentheses, quotes and
 * non-ASCII can neither end the link early nor open another construct.
 * Existing `%xx` escapes are kept.
 */
export function linkTarget(url: string): string {
  return url.replace(/%(?![0-9A-Fa-f]{2})|[^A-Za-z0-9\-._~:/?#@!$&*+,;=%]/gu, (c) => {
    try {
      // encodeURIComponent leaves ' ( ) as they are, and parentheses end a link.
      return encodeURIComponent(c).replace(/['()]/g, (p) => `%${p.charCodeAt(0).toString(16).toUpperCase()}`);
    } catch {
      return '%EF%BF%BD'; // a lone surrogate has no UTF-8 form
    }
  });
}

/**
 * A relative link to a stored object: every segment percent-encoded, `#`,
 * `?` and `:` included, so a worker's file name is always a path, never a
 * fragment, a query or a scheme.
 */
export function pathTarget(relativePath: string): string {
  return relativePath
    .split('/')
    .map((segment) =>
      segment === '..' ? segment : segment.replace(/[^A-Za-z0-9\-._~!$&*+,;=@]/gu, encodeChar),
    )
    .join('/');
}

function encodeChar(c: string): string {
  try {
    const encoded = encodeURIComponent(c);
    // encodeURIComponent leaves ' ( ) as they are; parentheses end a markdown link.
    return encoded === c ? `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}` : encoded;
  } catch {
    return '%EF%BF%BD'; // a lone surrogate has no UTF-8 form
  }
}

/** A line that starts a block (heading, list, quote, fence, HTML, table, setext underline) when it comes first. */
const BLOCK_START = /^( {0,3})([-+*=_>#`~|<]|\d{1,9}(?=[.)]))/;

/** Quoted text, each line escaped so that it stays a paragraph of plain text. */
export function blockquote(text: string): string {
  return text
    .split(/\r\n|\r|\n/)
    .map((line) => {
      if (line.length === 0) return '>';
      const escaped = escapeInline(line).replace(BLOCK_START, (_m, pad: string, mark: string) =>
        /\d/.test(mark) ? `${pad}${mark}\\` : `${pad}\\${mark}`,
      );
      return `> ${escaped}`;
    })
    .join('\n');
}

/** The first `max` characters, not splitting a surrogate pair, with `…` when cut. */
export function excerpt(text: string, max: number): { text: string; cut: boolean } {
  if (text.length <= max) return { text, cut: false };
  let end = max;
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end -= 1;
  return { text: `${text.slice(0, end)}…`, cut: true };
}

function longestRun(text: string, char: string): number {
  let longest = 0;
  let current = 0;
  for (const c of text) {
    current = c === char ? current + 1 : 0;
    longest = Math.max(longest, current);
  }
  return longest;
}

/** A fenced code block whose fence is longer than any backtick run in the text. */
export function fenced(text: string): string {
  const fence = '`'.repeat(Math.max(3, longestRun(text, '`') + 1));
  return `${fence}text\n${text.endsWith('\n') ? text : `${text}\n`}${fence}`;
}

/** An inline code span that survives backticks and line breaks in the text. */
export function inlineCode(text: string): string {
  const flat = oneLine(text);
  const ticks = '`'.repeat(longestRun(flat, '`') + 1);
  const pad = flat.startsWith('`') || flat.endsWith('`') ? ' ' : '';
  return `${ticks}${pad}${flat}${pad}${ticks}`;
}

/**
 * The path from the report at `fromKey` to the object at `toKey`, both keys
 * under the same job prefix: the same link works in S3 and in the local copy
 * (`<workspace>/job_<id>/`), which keeps the paths below the prefix.
 */
export function relativeHref(fromKey: string, toKey: string): string {
  const from = fromKey.split('/').slice(0, -1);
  const to = toKey.split('/');
  let common = 0;
  while (common < from.length && common < to.length - 1 && from[common] === to[common]) common += 1;
  return [...Array<string>(from.length - common).fill('..'), ...to.slice(common)].join('/');
}

/** Both keys under the same `jobs/<root>/` prefix: a report links only inside its own job's folder. */
function sameJob(fromKey: string, toKey: string): boolean {
  const root = fromKey.split('/').slice(0, 2).join('/');
  return toKey.startsWith(`${root}/`);
}

/** A stored file as a link relative to the report at `fromKey`, shown as `label` (its path by default). */
export function fileLink(fromKey: string, key: string, label?: string): string {
  const href = relativeHref(fromKey, key);
  if (!sameJob(fromKey, key)) return inlineCode(label ?? key);
  return `[${escapeInline(oneLine(label ?? href))}](${pathTarget(href)})`;
}

/** A log as a relative link when its worker reported (it uploads its log first), else only its name. */
export function logRef(fromKey: string, key: string, reported: boolean): string {
  const href = relativeHref(fromKey, key);
  return reported && sameJob(fromKey, key)
    ? `[${escapeInline(href)}](${pathTarget(href)})`
    : inlineCode(href);
}

/** `[attempt 1](../logs/…log), attempt 2 (no log: …)`: each attempt's own log. */
export function logLinks(fromKey: string, attempts: readonly AttemptTimeline[]): string {
  return attempts
    .map((a) =>
      a.reported && sameJob(fromKey, a.log_key)
        ? `[attempt ${a.attempt}](${pathTarget(relativeHref(fromKey, a.log_key))})`
        : `attempt ${a.attempt} (${inlineCode(relativeHref(fromKey, a.log_key))}, if uploaded: the worker did not report)`,
    )
    .join(', ');
}

// Phrases both reports use.

/** `5 (3 succeeded, 1 failed, 1 timed out)`, with cancelled and running when there are any. */
export function workerCounts(s: TaskSummary): string {
  const parts = [`${s.succeeded} succeeded`, `${s.failed} failed`, `${s.timed_out} timed out`];
  if (s.cancelled > 0) parts.push(`${s.cancelled} cancelled`);
  if (s.running > 0) parts.push(`${s.running} running`);
  return `${s.total} (${parts.join(', ')})`;
}

/** `created by **worker_2** of job `p` in handoff mode`, or `the root job`. */
export function createdBy(job: TreeJobView): string {
  if (job.parent_worker_id === undefined && job.parent_job_id === undefined) return 'the root job';
  const worker = job.parent_worker_id === undefined ? 'a worker' : `**${job.parent_worker_id}**`;
  const parent = job.parent_job_id === undefined ? '' : ` of job ${inlineCode(job.parent_job_id)}`;
  const mode = job.child_mode === undefined ? '' : ` in ${job.child_mode} mode`;
  return `created by ${worker}${parent}${mode}`;
}

/** The timeline entries of one worker's attempts, in order. */
export function attemptsOf(result: JobResult, t: TaskResultView): AttemptTimeline[] {
  return (result.performance?.timeline ?? []).filter(
    (a) =>
      a.job_id === t.job_id &&
      a.task_no === t.task_no &&
      (a.running_ms !== undefined || a.finished_ms !== undefined),
  );
}

export function treeDepths(result: JobResult): number[] {
  return [...new Set(result.jobs.map((j) => j.depth))].sort((a, b) => a - b);
}
