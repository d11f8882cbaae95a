/**
 * Markdown reports of a job: `LEVEL_<depth>_REPORT.md` for each depth and
 * `FINAL_RESULT.md` for the root job, plus `result.json`. Pure; every number
 * comes from `buildJobResult`, so the reports and result.json always agree.
 * Titles, prompts, outputs and file names are written by Claude, so they are
 * escaped for tables, fenced with a fence longer than any they contain, and
 * never trusted to be well-formed markdown.
 */
import { jobPrefix, levelReportKey } from './layout.ts';
import type { JobRecord, TaskRecord } from './model.ts';
import { buildJobResult, type JobResult, type ResultContext, type TaskResultView } from './result-format.ts';

/** How much of a prompt the level report quotes. */
export const PROMPT_EXCERPT_CHARS = 1_000;
/** How much of a worker's output the level report shows. */
export const OUTPUT_EXCERPT_CHARS = 2_000;

/** The level report of one job: every worker at the job's depth, in detail. */
export function renderLevelReport(job: JobRecord, tasks: TaskRecord[], ctx: ResultContext): string {
  const result = buildJobResult(job, tasks, ctx);
  const { summary } = result.results;
  const lines: string[] = [
    `# Level ${job.depth} report: job ${inlineCode(job.jobId)}`,
    '',
    `**Status:** ${result.status} · **Workers:** ${workerCounts(result)} · **Cost:** ${formatCost(summary.total_cost_usd)} · **Turns:** ${summary.total_turns}`,
  ];
  if (result.parent_job_id !== undefined) {
    lines.push(
      '',
      `Child of job ${inlineCode(result.parent_job_id)} (root ${inlineCode(result.root_job_id)}).`,
    );
  }
  lines.push('', '## Request', '', blockquote(result.request));
  if (result.error !== undefined) lines.push('', '## Job error', '', blockquote(result.error));

  lines.push('', '## Workers', '');
  const { tasks: views } = result.results;
  if (views.length === 0) {
    lines.push('_No workers ran at this level._');
  } else {
    lines.push(
      ...table(
        ['Worker', 'Title', 'Status', 'Attempts', 'Duration', 'Turns', 'Cost', 'Files'],
        ['l', 'l', 'l', 'r', 'r', 'r', 'r', 'r'],
        views.map((t) => [
          t.worker_id,
          t.title,
          t.status,
          String(t.attempts),
          formatDuration(t.duration_ms),
          String(t.num_turns),
          formatCost(t.cost_usd),
          String(t.files_created.length),
        ]),
      ),
    );
  }
  for (const view of views) lines.push('', ...workerSection(view, ctx));
  return `${lines.join('\n')}\n`;
}

/** The final report of a job: outcome, totals, every worker, their files and failures, and links. */
export function renderFinalReport(job: JobRecord, tasks: TaskRecord[], ctx: ResultContext): string {
  const result = buildJobResult(job, tasks, ctx);
  const { summary, tasks: views } = result.results;
  const planningCost = result.planning?.cost_usd ?? 0;
  const running = summary.running > 0 || result.status === 'running' || result.status === 'planning';

  const lines: string[] = [
    `# Final result: job ${inlineCode(job.jobId)}`,
    '',
    `**Status:** ${result.status} · ${statusSentence(result)}`,
    '',
    '## Request',
    '',
    blockquote(result.request),
  ];
  if (result.error !== undefined) lines.push('', '## Job error', '', blockquote(result.error));

  lines.push(
    '',
    '## Totals',
    '',
    `- Workers: ${workerCounts(result)}`,
    `- Total cost: ${formatCost(summary.total_cost_usd + planningCost)} (workers ${formatCost(summary.total_cost_usd)}, planning ${formatCost(planningCost)})`,
    `- Total turns: ${summary.total_turns}`,
    `- Worker time: ${formatDuration(summary.total_duration_ms)}`,
    `- Wall time: ${result.wall_time_ms === undefined ? 'unknown' : formatDuration(result.wall_time_ms)}${running ? ' (so far)' : ''}`,
  );

  lines.push('', '## Planning', '');
  if (result.planning === undefined) {
    lines.push('The caller gave the tasks; there was no planning step.');
  } else {
    const p = result.planning;
    lines.push(
      `Planner: ${p.status} after ${plural(p.attempts, 'attempt')}, ${formatCost(p.cost_usd)}${p.error === undefined ? '' : ` (${oneLine(p.error)})`}.`,
    );
  }

  lines.push('', '## Workers', '');
  if (views.length === 0) {
    lines.push('_No workers ran._');
  } else {
    lines.push(
      ...table(
        ['Worker', 'Title', 'Depth', 'Status', 'Attempts', 'Cost', 'Files'],
        ['l', 'l', 'r', 'l', 'r', 'r', 'r'],
        views.map((t) => [
          t.worker_id,
          t.title,
          String(t.depth),
          t.status,
          String(t.attempts),
          formatCost(t.cost_usd),
          String(t.files_created.length),
        ]),
      ),
    );
  }

  lines.push('', '## Files', '');
  const withFiles = views.filter((t) => t.files_created.length > 0);
  if (withFiles.length === 0) lines.push('_No files were created._');
  for (const t of withFiles) {
    lines.push(`- **${t.worker_id}** (${oneLine(t.title)})`);
    for (const file of t.files_created) lines.push(`  - ${inlineCode(`${t.files_prefix}${file}`)}`);
  }

  lines.push('', '## Failures', '');
  const failures = views.filter((t) => t.status === 'failed' || t.status === 'timed_out');
  if (failures.length === 0) lines.push('_No worker failed._');
  for (const t of failures) {
    lines.push(
      `- **${t.worker_id}** (${oneLine(t.title)}): ${t.status} after ${plural(t.attempts, 'attempt')}: ${oneLine(t.error ?? 'no reason recorded')}`,
    );
    for (const a of t.attempt_history) {
      if (a.error !== undefined) lines.push(`  - attempt ${a.attempt} (${a.status}): ${oneLine(a.error)}`);
    }
  }

  lines.push('', '## Reports', '');
  const root = jobPrefix(job.rootJobId);
  const depths = [...new Set([job.depth, ...views.map((t) => t.depth)])].sort((a, b) => a - b);
  for (const depth of depths) {
    const path = levelReportKey(job.rootJobId, depth).slice(root.length);
    lines.push(`- [Level ${depth} report](${path})`);
  }
  lines.push('- [result.json](result.json)');
  if (result.workspace !== undefined) lines.push(`- Files: ${inlineCode(result.workspace)}`);
  return `${lines.join('\n')}\n`;
}

/** `result.json`: the public result, pretty-printed, with a trailing newline. */
export function renderResultJson(job: JobRecord, tasks: TaskRecord[], ctx: ResultContext): string {
  return `${JSON.stringify(buildJobResult(job, tasks, ctx), null, 2)}\n`;
}

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

function workerSection(t: TaskResultView, ctx: ResultContext): string[] {
  const lines = [
    `## ${t.worker_id}: ${oneLine(t.title)}`,
    '',
    `**Status:** ${t.status} · **Attempts:** ${t.attempts} · **Duration:** ${formatDuration(t.duration_ms)} · **Turns:** ${t.num_turns} · **Cost:** ${formatCost(t.cost_usd)}`,
    '',
    '**Prompt**',
    '',
    blockquote(excerpt(t.prompt, PROMPT_EXCERPT_CHARS).text),
  ];

  if (t.attempt_history.length > 0) {
    lines.push('', '**Attempts**', '');
    for (const a of t.attempt_history) {
      const facts = [
        a.duration_ms === undefined ? undefined : formatDuration(a.duration_ms),
        a.cost_usd === undefined ? undefined : formatCost(a.cost_usd),
        a.exit_code === undefined ? undefined : `exit code ${a.exit_code}`,
      ].filter((f) => f !== undefined);
      const detail = facts.length > 0 ? ` (${facts.join(', ')})` : '';
      const reason = a.error === undefined ? '' : `: ${oneLine(a.error)}`;
      lines.push(`- Attempt ${a.attempt}: ${a.status}${detail}${reason}`);
    }
  }

  const prefix = `s3://${ctx.bucket}/${t.files_prefix}`;
  lines.push('');
  if (t.files_created.length === 0) {
    lines.push(`**Files created:** none (folder ${inlineCode(prefix)})`);
  } else {
    lines.push(`**Files created** (under ${inlineCode(prefix)})`, '');
    for (const file of t.files_created) lines.push(`- ${inlineCode(file)}`);
  }

  lines.push('');
  const log = inlineCode(`s3://${ctx.bucket}/${t.log_key}`);
  if (t.error !== undefined) {
    lines.push('**Failure reason**', '', blockquote(t.error), '', `Log: ${log}`);
  } else if (t.output.length > 0) {
    const cut = excerpt(t.output, OUTPUT_EXCERPT_CHARS);
    let note = '';
    if (cut.cut)
      note = ` (first ${OUTPUT_EXCERPT_CHARS.toLocaleString('en-US')} characters; full output in ${log})`;
    else if (t.output_truncated) note = ` (truncated; full output in ${log})`;
    lines.push(`**Output**${note}`, '', fenced(cut.text));
  } else if (t.status === 'succeeded' || t.status === 'recursive_success') {
    lines.push('_No output._');
  } else {
    lines.push(`_No result yet (${t.status})._`);
  }
  return lines;
}

function statusSentence(result: JobResult): string {
  const { summary } = result.results;
  if (result.status === 'planning') return 'planning the subtasks';
  if (summary.total === 0) return 'no workers ran';
  if (summary.running > 0) {
    return `${summary.total - summary.running} of ${plural(summary.total, 'worker')} finished, ${summary.running} still running`;
  }
  return `${summary.succeeded} of ${plural(summary.total, 'worker')} succeeded`;
}

function workerCounts(result: JobResult): string {
  const s = result.results.summary;
  const parts = [`${s.succeeded} succeeded`, `${s.failed} failed`, `${s.timed_out} timed out`];
  if (s.cancelled > 0) parts.push(`${s.cancelled} cancelled`);
  if (s.running > 0) parts.push(`${s.running} running`);
  return `${s.total} (${parts.join(', ')})`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function table(headers: string[], align: ('l' | 'r')[], rows: string[][]): string[] {
  const row = (cells: string[]) => `| ${cells.map(escapeTableCell).join(' | ')} |`;
  return [row(headers), `|${align.map((a) => (a === 'r' ? '---:' : '---')).join('|')}|`, ...rows.map(row)];
}

/** Collapses line breaks, for text placed in a heading or list item. */
function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, ' ').trim();
}

function blockquote(text: string): string {
  return text
    .split(/\r\n|\r|\n/)
    .map((line) => (line.length > 0 ? `> ${line}` : '>'))
    .join('\n');
}

/** The first `max` characters, not splitting a surrogate pair, with `…` when cut. */
function excerpt(text: string, max: number): { text: string; cut: boolean } {
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
function fenced(text: string): string {
  const fence = '`'.repeat(Math.max(3, longestRun(text, '`') + 1));
  return `${fence}text\n${text.endsWith('\n') ? text : `${text}\n`}${fence}`;
}

/** An inline code span that survives backticks and line breaks in the text. */
function inlineCode(text: string): string {
  const flat = oneLine(text);
  const ticks = '`'.repeat(longestRun(flat, '`') + 1);
  const pad = flat.startsWith('`') || flat.endsWith('`') ? ' ' : '';
  return `${ticks}${pad}${flat}${pad}${ticks}`;
}
