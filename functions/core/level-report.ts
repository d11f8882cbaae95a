/**
 * `LEVEL_<depth>_REPORT.md`: every worker of every job at one depth of the
 * tree, in detail (prompt, attempts, files or commit, child jobs, logs,
 * output or failure). Pure; every number comes from `buildTreeResult`.
 */
import { jobPrefix, levelReportKey } from './layout.ts';
import {
  attemptsOf,
  blockquote,
  capitalize,
  createdBy,
  escapeInline,
  excerpt,
  fenced,
  fileLink,
  formatCost,
  formatDuration,
  inlineCode,
  linkTarget,
  logLinks,
  logRef,
  markdownText,
  plural,
  relativeHref,
  table,
  workerCounts,
} from './report-markdown.ts';
import { type JobResult, summarizeTasks, type TaskResultView, type TreeJobView } from './result-format.ts';
import { isSuccessfulTaskState } from './task-states.ts';

/** How much of a prompt the level report quotes. */
export const PROMPT_EXCERPT_CHARS = 1_000;

/** How much of a worker's output the level report shows. */
export const OUTPUT_EXCERPT_CHARS = 2_000;

/** Every worker of every job at `depth`, in detail. */
export function levelReportMarkdown(result: JobResult, depth: number): string {
  const jobs = result.jobs.filter((j) => j.depth === depth);
  const jobIds = new Set(jobs.map((j) => j.job_id));
  const views = result.results.tasks.filter((t) => jobIds.has(t.job_id));
  const summary = summarizeTasks(views);
  const only = jobs.length === 1 ? jobs[0] : undefined;
  const totals = `**Workers:** ${workerCounts(summary)} · **Cost:** ${formatCost(summary.total_cost_usd)} · **Turns:** ${summary.total_turns}`;

  const lines: string[] = [];
  if (only !== undefined) {
    lines.push(
      `# Level ${depth} report: job ${inlineCode(only.job_id)}`,
      '',
      `**Status:** ${only.status} · ${totals}`,
    );
    if (only.parent_job_id !== undefined || only.parent_worker_id !== undefined) {
      lines.push('', `${capitalize(createdBy(only))} (root ${inlineCode(result.root_job_id)}).`);
    }
    lines.push('', '## Request', '', blockquote(only.request));
    if (only.error !== undefined) lines.push('', '## Job error', '', blockquote(only.error));
  } else {
    lines.push(
      `# Level ${depth} report: ${plural(jobs.length, 'job')} of root ${inlineCode(result.root_job_id)}`,
      '',
      `**Jobs:** ${jobStatusCounts(jobs)} · ${totals}`,
      '',
      '## Jobs',
    );
    for (const job of jobs) {
      lines.push(
        '',
        `### Job ${inlineCode(job.job_id)}`,
        '',
        `**Status:** ${job.status} · **Workers:** ${workerCounts(job.summary)} · ${capitalize(createdBy(job))}`,
        '',
        blockquote(job.request),
      );
      if (job.error !== undefined) lines.push('', `**Job error:** ${markdownText(job.error)}`);
    }
  }

  lines.push('', '## Workers', '');
  if (views.length === 0) {
    lines.push('_No workers ran at this level._');
  } else {
    lines.push(
      ...table(
        ['Worker', 'Title', 'Status', 'Attempts', 'Duration', 'Turns', 'Cost', 'Files'],
        ['l', 'l', 'l', 'r', 'r', 'r', 'r', 'r'],
        views.map((t) => [
          t.worker_id,
          escapeInline(t.title),
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
  for (const view of views) lines.push('', ...workerSection(view, result));
  return `${lines.join('\n')}\n`;
}

function workerSection(t: TaskResultView, result: JobResult): string[] {
  const lines = [
    `## ${t.worker_id}: ${markdownText(t.title)}`,
    '',
    `**Status:** ${t.status} · **Attempts:** ${t.attempts} · **Duration:** ${formatDuration(t.duration_ms)} · **Turns:** ${t.num_turns} · **Cost:** ${formatCost(t.cost_usd)}`,
  ];
  if (t.parent_worker_id !== undefined) {
    lines.push('', `Job ${inlineCode(t.job_id)}, created by **${t.parent_worker_id}**.`);
  }
  lines.push('', '**Prompt**', '', blockquote(excerpt(t.prompt, PROMPT_EXCERPT_CHARS).text));

  if (t.attempt_history.length > 0) {
    lines.push('', '**Attempts**', '');
    for (const a of t.attempt_history) {
      const facts = [
        a.duration_ms === undefined ? undefined : formatDuration(a.duration_ms),
        a.cost_usd === undefined ? undefined : formatCost(a.cost_usd),
        a.exit_code === undefined ? undefined : `exit code ${a.exit_code}`,
      ].filter((f) => f !== undefined);
      const detail = facts.length > 0 ? ` (${facts.join(', ')})` : '';
      const reason = a.error === undefined ? '' : `: ${markdownText(a.error)}`;
      lines.push(`- Attempt ${a.attempt}: ${a.status}${detail}${reason}`);
    }
  }

  const here = levelReportKey(result.root_job_id, t.depth);
  const prefix = relativeHref(here, t.files_prefix);
  lines.push('');
  if (t.files_changed !== undefined) {
    const f = t.files_changed;
    const count = f.added.length + f.modified.length + f.deleted.length;
    lines.push(
      t.commit === undefined
        ? `**Commit:** none (${count === 0 ? 'no changes' : 'not kept'})`
        : `**Commit:** ${inlineCode(t.commit.slice(0, 12))}: ${plural(count, 'file')} changed, +${t.insertions ?? 0} -${t.deletions ?? 0}`,
    );
    for (const [label, list] of [
      ['added', f.added],
      ['modified', f.modified],
      ['deleted', f.deleted],
    ] as const) {
      if (list.length > 0) lines.push('', `${capitalize(label)}: ${list.map(inlineCode).join(', ')}`);
    }
    for (const e of t.excluded_files ?? [])
      lines.push('', `Left out: ${inlineCode(e.path)} (${markdownText(e.reason)})`);
  } else if (t.commit !== undefined) {
    lines.push(`**Commit:** ${inlineCode(t.commit.slice(0, 12))} (the child job's merged branch)`);
  } else if (t.files_created.length === 0) {
    lines.push(`**Files created:** none (folder ${inlineCode(prefix)})`);
  } else {
    lines.push(`**Files created** (under ${inlineCode(prefix)})`, '');
    for (const file of t.files_created) lines.push(`- ${fileLink(here, `${t.files_prefix}${file}`, file)}`);
  }
  if (t.refused_files !== undefined) {
    const more = (t.refused_count ?? 0) - t.refused_files.length;
    lines.push(
      '',
      `**Files refused by the API** (not uploaded${more > 0 ? `; ${more} more not listed` : ''})`,
      '',
    );
    for (const r of t.refused_files) lines.push(`- ${inlineCode(r.path)}: ${markdownText(r.reason)}`);
  }

  const children = childJobs(t, result);
  const handoff = t.recursive ? children.find((c) => c.child_mode !== 'wait') : undefined;
  if (t.recursive) lines.push('', childJobLine(t, handoff, result));
  for (const child of children) {
    if (child !== handoff) lines.push('', childJobLine(t, child, result));
  }

  const attempts = attemptsOf(result, t);
  if (attempts.length > 0) lines.push('', `**Logs:** ${logLinks(here, attempts)}`);

  lines.push('');
  const log = `the log ${logRef(here, t.log_key, attempts.at(-1)?.reported ?? true)}`;
  if (t.error !== undefined) {
    lines.push('**Failure reason**', '', blockquote(t.error), '', `See ${log}.`);
  } else if (t.recursive) {
    lines.push(
      `_The subtask was handed to the child job; its workers are reported at depth ${t.depth + 1}._`,
    );
  } else if (t.output.length > 0) {
    const cut = excerpt(t.output, OUTPUT_EXCERPT_CHARS);
    let note = '';
    if (cut.cut)
      note = ` (first ${OUTPUT_EXCERPT_CHARS.toLocaleString('en-US')} characters; full output in ${log})`;
    else if (t.output_truncated) note = ` (truncated; full output in ${log})`;
    lines.push(`**Output**${note}`, '', fenced(cut.text));
  } else if (isSuccessfulTaskState(t.status)) {
    lines.push('_No output._');
  } else {
    lines.push(`_No result yet (${t.status})._`);
  }
  return lines;
}

/** The jobs of the tree created by this worker's task (its handoff child and any `wait` children). */
function childJobs(t: TaskResultView, result: JobResult): TreeJobView[] {
  return result.jobs.filter(
    (j) =>
      j.job_id !== result.job_id &&
      ((j.parent_job_id === t.job_id && j.parent_task_no === t.task_no) || j.job_id === t.child_job_id),
  );
}

/**
 * `**Child job:** `id` (completed): 3 workers, 2 succeeded, 1 failed, $0.0300`:
 * the child's outcome as the parent task recorded it, else the child's live
 * counts, with a link to the child's level report.
 */
function childJobLine(t: TaskResultView, child: TreeJobView | undefined, result: JobResult): string {
  const id = child?.job_id ?? t.child_job_id ?? 'unknown';
  const mode = child?.child_mode === 'wait' ? 'wait mode, ' : '';
  const recorded = t.recursive && child?.child_mode !== 'wait' ? t.child_results : undefined;
  let outcome: string;
  if (recorded !== undefined) {
    outcome = `${mode}${recorded.status}): ${plural(recorded.total, 'worker')}, ${recorded.succeeded} succeeded, ${recorded.failed} failed, ${formatCost(recorded.cost_usd)}`;
  } else if (child !== undefined) {
    outcome = `${mode}${child.status}): ${workerCounts(child.summary)}, ${formatCost(child.summary.total_cost_usd)}`;
  } else {
    outcome = `${mode}not in this report)`;
  }
  const depth = child?.depth ?? t.depth + 1;
  const link = child === undefined ? '' : ` (see ${levelLink(result.root_job_id, t.depth, depth)})`;
  return `**Child job:** ${inlineCode(id)} (${outcome}${link}`;
}

/** A link from the level report at `fromDepth` to the one at `toDepth`. */
function levelLink(rootJobId: string, fromDepth: number, toDepth: number): string {
  const here = levelReportKey(rootJobId, fromDepth);
  const there = levelReportKey(rootJobId, toDepth);
  const root = jobPrefix(rootJobId);
  const relative =
    here.slice(0, here.lastIndexOf('/') + 1) === there.slice(0, there.lastIndexOf('/') + 1)
      ? there.slice(there.lastIndexOf('/') + 1)
      : `../${there.slice(root.length)}`;
  return `[Level ${toDepth} report](${linkTarget(relative)})`;
}

function jobStatusCounts(jobs: TreeJobView[]): string {
  const counts = new Map<string, number>();
  for (const j of jobs) counts.set(j.status, (counts.get(j.status) ?? 0) + 1);
  return `${jobs.length} (${[...counts].map(([status, n]) => `${n} ${status}`).join(', ')})`;
}
