/**
 * Markdown reports of a job tree: `LEVEL_<depth>_REPORT.md` for each depth and
 * `FINAL_RESULT.md` for the root job, plus `result.json`. Pure; every number
 * comes from `buildTreeResult`, so the reports and result.json always agree.
 * Titles, prompts, outputs and file names are written by Claude, so they are
 * escaped for tables, fenced with a fence longer than any they contain, and
 * never trusted to be well-formed markdown.
 */
import { finalReportKey, jobPrefix, levelReportKey } from './layout.ts';
import type { JobRecord, TaskRecord } from './model.ts';
import { type AttemptTimeline, type GanttChart, ganttChart, type PerformanceView } from './performance.ts';
import {
  buildTreeResult,
  type JobResult,
  type ResultContext,
  summarizeTasks,
  type TaskResultView,
  type TaskSummary,
  type TreeJobView,
  type TreeNode,
} from './result-format.ts';
import { isSuccessfulTaskState } from './task-states.ts';

/** How much of a prompt the level report quotes. */
export const PROMPT_EXCERPT_CHARS = 1_000;
/** How much of a worker's output the level report shows. */
export const OUTPUT_EXCERPT_CHARS = 2_000;
/** What FINAL_RESULT.md quotes of all outputs together, shared out between the workers (within the two bounds below). */
export const FINAL_OUTPUTS_CHARS = 150_000;
export const FINAL_OUTPUT_MIN_CHARS = 200;
export const FINAL_OUTPUT_MAX_CHARS = 1_000;
/** Rows of the per-worker resource table and steps of the critical path the final report lists. */
export const MAX_RESOURCE_ROWS = 200;
export const MAX_PATH_STEPS = 50;

export interface LevelReport {
  depth: number;
  /** S3 key of the report (`levelReportKey`). */
  key: string;
  markdown: string;
}

export interface TreeReports {
  /** One report per depth present in the tree, shallowest first. */
  levels: LevelReport[];
  /** `FINAL_RESULT.md` of the root job, covering the whole tree. */
  finalReport: string;
  /** `result.json` of the root job, covering the whole tree. */
  resultJson: string;
}

/**
 * Every report of a job tree: `tree[0]` is the root job, the rest its
 * descendants in any order (see `buildTreeResult`).
 */
export function renderTreeReports(tree: TreeNode[], ctx: ResultContext): TreeReports {
  const result = buildTreeResult(tree, ctx);
  const levels = treeDepths(result).map((depth) => ({
    depth,
    key: levelReportKey(result.root_job_id, depth),
    markdown: levelMarkdown(result, depth),
  }));
  return { levels, finalReport: finalMarkdown(result), resultJson: resultJsonText(result) };
}

/** The level report of one job: every worker of the job, in detail. */
export function renderLevelReport(job: JobRecord, tasks: TaskRecord[], ctx: ResultContext): string {
  return levelMarkdown(buildTreeResult([{ job, tasks }], ctx), job.depth);
}

/** The final report of one job: outcome, totals, every worker, their files and failures, and links. */
export function renderFinalReport(job: JobRecord, tasks: TaskRecord[], ctx: ResultContext): string {
  return finalMarkdown(buildTreeResult([{ job, tasks }], ctx));
}

/** `result.json` of one job: the public result, pretty-printed, with a trailing newline. */
export function renderResultJson(job: JobRecord, tasks: TaskRecord[], ctx: ResultContext): string {
  return resultJsonText(buildTreeResult([{ job, tasks }], ctx));
}

function resultJsonText(result: JobResult): string {
  return `${JSON.stringify(result, null, 2)}\n`;
}

function treeDepths(result: JobResult): number[] {
  return [...new Set(result.jobs.map((j) => j.depth))].sort((a, b) => a - b);
}

/** Every worker of every job at `depth`, in detail. */
function levelMarkdown(result: JobResult, depth: number): string {
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

/** The final report of the root: the whole tree's outcome, totals, workers, files, failures and links. */
function finalMarkdown(result: JobResult): string {
  const { summary, tasks: views } = result.results;
  const { cost } = result;
  const running =
    summary.running > 0 || result.jobs.some((j) => j.status === 'running' || j.status === 'planning');

  const lines: string[] = [
    `# Final result: job ${inlineCode(result.job_id)}`,
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
    `- Workers: ${workerCounts(summary)}`,
    `- Depths: ${summary.depths}`,
    `- Jobs: ${summary.jobs}`,
    `- Total cost: ${formatCost(cost.total_usd)} (workers ${formatCost(cost.workers_usd)}, planning ${formatCost(cost.planning_usd)}${result.steps === undefined && cost.steps_usd === 0 ? '' : `, merging ${formatCost(cost.steps_usd)}`})`,
    `- Total turns: ${summary.total_turns}`,
    `- Worker time: ${formatDuration(summary.total_duration_ms)}`,
    `- Wall time: ${result.wall_time_ms === undefined ? 'unknown' : formatDuration(result.wall_time_ms)}${running ? ' (so far)' : ''}`,
  );

  lines.push('', '## Planning', '', ...planningLines(result));

  lines.push('', '## Tree', '');
  const tree = treeLines(result);
  lines.push(...(tree.length > 0 ? tree : ['_No workers ran._']));

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
          escapeInline(t.title),
          String(t.depth),
          t.status,
          String(t.attempts),
          formatCost(t.cost_usd),
          String(t.files_created.length),
        ]),
      ),
    );
  }

  if (result.git !== undefined) {
    lines.push('', '## Changes', '', ...changesLines(result.git, result.steps ?? []));
    lines.push('', '## Files changed, by worker', '', ...traceabilityLines(views));
  } else {
    lines.push('', '## Files', '');
    const withFiles = views.filter((t) => t.files_created.length > 0);
    if (withFiles.length === 0) lines.push('_No files were created._');
    const here = finalReportKey(result.root_job_id);
    for (const t of withFiles) {
      lines.push(`- **${t.worker_id}** at depth ${t.depth} (${markdownText(t.title)})`);
      for (const file of t.files_created) lines.push(`  - ${fileLink(here, `${t.files_prefix}${file}`)}`);
    }
  }

  lines.push('', '## Failures', '');
  const failures = views.filter((t) => t.status === 'failed' || t.status === 'timed_out');
  const failedJobs = result.jobs.slice(1).filter((j) => j.error !== undefined);
  if (failures.length === 0 && failedJobs.length === 0) lines.push('_No worker failed._');
  for (const t of failures) {
    lines.push(
      `- **${t.worker_id}** (${markdownText(t.title)}): ${t.status} after ${plural(t.attempts, 'attempt')}: ${markdownText(t.error ?? 'no reason recorded')}`,
    );
    if (t.parent_worker_id !== undefined) {
      lines.push(`  - depth ${t.depth}, job ${inlineCode(t.job_id)} created by ${t.parent_worker_id}`);
    }
    for (const a of t.attempt_history) {
      if (a.error !== undefined)
        lines.push(`  - attempt ${a.attempt} (${a.status}): ${markdownText(a.error)}`);
    }
  }
  for (const j of failedJobs) {
    lines.push(
      `- Job ${inlineCode(j.job_id)} (depth ${j.depth}, ${createdBy(j)}): ${j.status}: ${markdownText(j.error ?? '')}`,
    );
  }

  if (result.performance !== undefined) lines.push('', ...performanceLines(result, result.performance));
  lines.push('', '## Outputs', '', ...outputLines(result));

  lines.push('', '## Reports', '');
  const root = jobPrefix(result.root_job_id);
  for (const depth of treeDepths(result)) {
    const path = levelReportKey(result.root_job_id, depth).slice(root.length);
    lines.push(`- [Level ${depth} report](${linkTarget(path)})`);
  }
  lines.push('- [result.json](result.json)');
  if (result.workspace !== undefined) lines.push(`- Files: ${inlineCode(result.workspace)}`);
  return `${lines.join('\n')}\n`;
}

function planningLines(result: JobResult): string[] {
  const planned = result.jobs.filter((j) => j.planning !== undefined);
  const root = result.jobs[0];
  if (result.planning === undefined || root === undefined) {
    return ['The caller gave the tasks; there was no planning step.'];
  }
  const describe = (p: NonNullable<TreeJobView['planning']>) =>
    `${p.status} after ${plural(p.attempts, 'attempt')}, ${formatCost(p.cost_usd)}${p.error === undefined ? '' : ` (${markdownText(p.error)})`}`;
  if (planned.length === 1 && planned[0] === root && root.planning !== undefined) {
    return [`Planner: ${describe(root.planning)}.`];
  }
  const p = result.planning;
  const lines = [
    `${plural(planned.length, 'planner')}: ${formatCost(p.cost_usd)} over ${plural(p.attempts, 'attempt')}.`,
    '',
  ];
  if (root.planning === undefined) lines.push('- Root job: the caller gave the tasks; no planning step.');
  for (const job of planned) {
    if (job.planning === undefined) continue;
    const who =
      job === root ? 'Root job' : `Job ${inlineCode(job.job_id)} (depth ${job.depth}, ${createdBy(job)})`;
    lines.push(`- ${who}: ${describe(job.planning)}`);
  }
  return lines;
}

/**
 * The tree as an indented list: each job's workers, and below a worker the
 * child jobs it created. A handoff child is named on its worker's line
 * (`worker_2 (recursive_success) → child job …`); a `wait` child gets its own line.
 */
function treeLines(result: JobResult): string[] {
  const lines: string[] = [];
  const shown = new Set<string>();
  const viewsOf = (jobId: string) => result.results.tasks.filter((t) => t.job_id === jobId);
  const childJobsOf = (t: TaskResultView) =>
    result.jobs.filter(
      (j) =>
        !shown.has(j.job_id) &&
        j.job_id !== result.job_id &&
        ((j.parent_job_id === t.job_id && j.parent_task_no === t.task_no) || j.job_id === t.child_job_id),
    );

  const renderJob = (job: TreeJobView, indent: string): void => {
    shown.add(job.job_id);
    const views = viewsOf(job.job_id);
    if (views.length === 0) {
      const why = job.error === undefined ? job.status : `${job.status}: ${markdownText(job.error)}`;
      lines.push(`${indent}- _no workers (${why})_`);
    }
    for (const t of views) {
      const children = childJobsOf(t);
      for (const child of children) shown.add(child.job_id);
      const handoff = t.recursive ? children.find((c) => c.child_mode !== 'wait') : undefined;
      let line = `${indent}- ${t.worker_id} (${t.status})`;
      if (handoff !== undefined) line += ` → child job ${inlineCode(handoff.job_id)} (${handoff.status})`;
      else if (t.recursive && t.child_job_id !== undefined)
        line += ` → child job ${inlineCode(t.child_job_id)}`;
      lines.push(`${line}: ${markdownText(t.title)}`);
      if (handoff !== undefined) renderJob(handoff, `${indent}  `);
      for (const child of children) {
        if (child === handoff) continue;
        const mode = child.child_mode === 'wait' ? ', wait mode' : '';
        lines.push(`${indent}  - child job ${inlineCode(child.job_id)} (${child.status}${mode})`);
        renderJob(child, `${indent}    `);
      }
    }
  };

  const [root, ...rest] = result.jobs;
  if (root === undefined) return lines;
  if (viewsOf(root.job_id).length > 0) renderJob(root, '');
  else shown.add(root.job_id);
  for (const job of rest) {
    if (shown.has(job.job_id)) continue;
    lines.push(`- child job ${inlineCode(job.job_id)} (${job.status}), ${createdBy(job)}`);
    renderJob(job, '  ');
  }
  return lines;
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

/** The `## Changes` section: the branch, a diffstat per worker, and every conflict with what became of it. */
function changesLines(git: NonNullable<JobResult['git']>, steps: NonNullable<JobResult['steps']>): string[] {
  const lines: string[] = [];
  const base = git.base_commit === null ? 'not fetched yet' : inlineCode(git.base_commit.slice(0, 12));
  const from =
    git.source.kind === 'git'
      ? `${inlineCode(git.source.url ?? '')}${git.source.ref ? ` (${inlineCode(git.source.ref)})` : ''}`
      : git.source.kind === 'bundle'
        ? 'an uploaded bundle'
        : "the parent worker's checkout";
  lines.push(`- Source: ${from}, base ${base}`);
  if (git.branch !== null && git.head_commit !== null) {
    lines.push(
      `- Branch: ${inlineCode(git.branch)} at ${inlineCode(git.head_commit.slice(0, 12))}: ${plural(git.files_changed, 'file')} changed, +${git.insertions} -${git.deletions}`,
      `- Review: ${inlineCode(`git diff ${git.base_commit?.slice(0, 12)}..${git.branch}`)}; merge: ${inlineCode(`git merge ${git.branch}`)}`,
    );
    if (git.pushed_to !== undefined) lines.push(`- Pushed to ${inlineCode(git.pushed_to)}`);
  } else {
    lines.push(`- Branch: none (${markdownText(git.note ?? git.state)})`);
  }
  for (const step of steps.filter((s) => s.error !== undefined && s.status !== 'succeeded')) {
    lines.push(`- ${capitalize(step.kind)} step ${step.status}: ${markdownText(step.error ?? '')}`);
  }
  if (git.merged.length > 0) {
    lines.push(
      '',
      ...table(
        ['Worker', 'Commit', 'Outcome', 'Files', 'Insertions', 'Deletions'],
        ['l', 'l', 'l', 'r', 'r', 'r'],
        git.merged.map((m) => [
          markdownText(m.worker_id),
          m.commit.slice(0, 12),
          m.outcome.replace('_', ' '),
          String(m.files_changed),
          `+${m.insertions}`,
          `-${m.deletions}`,
        ]),
      ),
    );
  }
  if (git.conflicts.length > 0) lines.push('', '### Conflicts', '');
  for (const c of git.conflicts) {
    const who = markdownText(c.workers.join(' and '));
    const files = c.files.map(inlineCode).join(', ');
    lines.push(
      c.resolution === 'resolved'
        ? `- ${who} in ${files}: resolved by a Claude session; the merge commit names both.`
        : `- ${who} in ${files}: **${markdownText(c.workers.at(-1) ?? '')}'s change was left out**${c.reason ? `: ${markdownText(c.reason)}` : ''}`,
    );
    for (const hunk of c.hunks.slice(0, 5)) lines.push('', fenced(hunk));
  }
  return lines;
}

/** Which worker changed which file: one row per file and worker, sorted by path. */
function traceabilityLines(views: readonly TaskResultView[]): string[] {
  const rows: string[][] = [];
  for (const t of views) {
    const f = t.files_changed;
    if (f === undefined || t.commit === undefined) continue;
    for (const [change, list] of [
      ['added', f.added],
      ['modified', f.modified],
      ['deleted', f.deleted],
    ] as const) {
      for (const path of list) rows.push([path, change, t.worker_id, String(t.depth)]);
    }
  }
  if (rows.length === 0) return ['_No worker changed a file._'];
  rows.sort((a, b) =>
    (a[0] as string) < (b[0] as string) ? -1 : (a[0] as string) > (b[0] as string) ? 1 : 0,
  );
  return table(
    ['File', 'Change', 'Worker', 'Depth'],
    ['l', 'l', 'l', 'r'],
    rows.map(([p, ...rest]) => [inlineCode(p as string), ...rest] as string[]),
  );
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

/** `created by **worker_2** of job `p` in handoff mode`, or `the root job`. */
function createdBy(job: TreeJobView): string {
  if (job.parent_worker_id === undefined && job.parent_job_id === undefined) return 'the root job';
  const worker = job.parent_worker_id === undefined ? 'a worker' : `**${job.parent_worker_id}**`;
  const parent = job.parent_job_id === undefined ? '' : ` of job ${inlineCode(job.parent_job_id)}`;
  const mode = job.child_mode === undefined ? '' : ` in ${job.child_mode} mode`;
  return `created by ${worker}${parent}${mode}`;
}

function capitalize(text: string): string {
  return text.length === 0 ? text : `${text.charAt(0).toUpperCase()}${text.slice(1)}`;
}

function jobStatusCounts(jobs: TreeJobView[]): string {
  const counts = new Map<string, number>();
  for (const j of jobs) counts.set(j.status, (counts.get(j.status) ?? 0) + 1);
  return `${jobs.length} (${[...counts].map(([status, n]) => `${n} ${status}`).join(', ')})`;
}

function statusSentence(result: JobResult): string {
  const { summary } = result.results;
  const scope =
    summary.jobs > 1 ? ` in ${plural(summary.jobs, 'job')} over ${plural(summary.depths, 'level')}` : '';
  if (result.status === 'planning') return 'planning the subtasks';
  if (summary.total === 0) return 'no workers ran';
  if (summary.running > 0) {
    return `${summary.total - summary.running} of ${plural(summary.total, 'worker')} finished, ${summary.running} still running${scope}`;
  }
  return `${summary.succeeded} of ${plural(summary.total, 'worker')} succeeded${scope}`;
}

function workerCounts(s: TaskSummary): string {
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

function escapeInline(text: string): string {
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
function blockquote(text: string): string {
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

/** The `## Performance` section: efficiency, the critical path and its bottleneck, a gantt chart, resources, cost by depth. */
function performanceLines(result: JobResult, perf: PerformanceView): string[] {
  const e = perf.efficiency;
  const efficiency =
    e.parallel_efficiency === null ? 'not measurable yet' : `${(e.parallel_efficiency * 100).toFixed(1)}%`;
  const lines = [
    '## Performance',
    '',
    `- Parallel efficiency: ${efficiency} (busy worker time ${formatDuration(e.busy_ms)} / (wall time ${formatDuration(e.wall_time_ms)} × ${plural(e.max_workers, 'worker')} allowed); at most ${e.peak_concurrency} ran at once)`,
  ];
  const b = perf.bottleneck;
  if (b !== undefined) {
    const lost = b.lost;
    lines.push(
      `- Bottleneck: **${b.worker_id}** (attempt ${b.attempt}) ran ${formatDuration(b.run_ms)}, ${(b.share * 100).toFixed(1)}% of the wall time. On the critical path, ${formatDuration(lost.queueing_ms)} went to queueing, ${formatDuration(lost.launch_ms)} to launching, ${formatDuration(lost.retries_ms)} to retries and ${formatDuration(lost.budget_wait_ms)} to waiting for the spend budget; the largest part is ${CAUSE_WORDS[b.cause]}.`,
    );
  }
  lines.push('', '### Critical path', '', ...criticalPathLines(perf));
  lines.push('', '### Attempts over time', '', ...ganttLines(ganttChart(perf)));
  lines.push('', '### Resources by worker', '', ...resourceLines(perf));
  lines.push(
    '',
    '### Cost by depth',
    '',
    ...table(
      ['Depth', 'Jobs', 'Tasks', 'Attempts', 'Cost'],
      ['r', 'r', 'r', 'r', 'r'],
      perf.cost_by_depth.map((d) => [
        String(d.depth),
        String(d.jobs),
        String(d.tasks),
        String(d.attempts),
        formatCost(d.cost_usd),
      ]),
    ),
  );
  if (result.results.summary.running > 0)
    lines.push('', '_The job is still running: these are the numbers so far._');
  return lines;
}

const CAUSE_WORDS: Record<NonNullable<PerformanceView['bottleneck']>['cause'], string> = {
  running: 'the workers running',
  queueing: 'queueing for a worker slot',
  budget_wait: 'waiting for the spend budget',
  launch: 'launching workers',
  retries: 'retries',
  other: 'hand-overs between steps (creating tasks, aggregating, a child job reaching its parent)',
};

function criticalPathLines(perf: PerformanceView): string[] {
  const p = perf.critical_path;
  const share = (ms: number) => (p.total_ms > 0 ? `${((ms / p.total_ms) * 100).toFixed(1)}%` : '–');
  const parts: [string, number][] = [
    ['Running', p.running_ms],
    ['Queueing', p.queueing_ms],
    ['Waiting for spend budget', p.budget_wait_ms],
    ['Launching', p.launch_ms],
    ['Retries (earlier attempts)', p.retries_ms],
    ['Hand-overs between steps', p.other_ms],
  ];
  const lines = table(
    ['Part', 'Time', 'Share of wall time'],
    ['l', 'r', 'r'],
    parts.map(([name, ms]) => [name, formatDuration(ms), share(ms)]),
  );
  if (p.steps.length === 0) return [...lines, '', '_No attempt ran yet._'];
  lines.push('');
  for (const s of p.steps.slice(0, MAX_PATH_STEPS)) {
    const facts = [
      s.queue_ms > 0 ? `queued ${formatDuration(s.queue_ms)}` : undefined,
      s.budget_wait_ms > 0 ? `waited for budget ${formatDuration(s.budget_wait_ms)}` : undefined,
      s.launch_ms > 0 ? `launched in ${formatDuration(s.launch_ms)}` : undefined,
      `ran ${formatDuration(s.run_ms)}`,
    ].filter((f) => f !== undefined);
    const retry = s.retry ? ', retried' : '';
    lines.push(
      `1. ${s.worker_id} attempt ${s.attempt} (${s.kind}, depth ${s.depth}, ${s.status}${retry}): ${facts.join(', ')}; ${offsetLabel(s.start_ms)} → ${offsetLabel(s.end_ms)}`,
    );
  }
  if (p.steps.length > MAX_PATH_STEPS)
    lines.push(
      '',
      `_${p.steps.length - MAX_PATH_STEPS} more steps in result.json (performance.critical_path)._`,
    );
  return lines;
}

/** `+1m 05s`: an instant as time since the root job was created. */
function offsetLabel(ms: number): string {
  return `+${formatDuration(ms)}`;
}

function ganttLines(chart: GanttChart): string[] {
  if (chart.shown === 0) return ['_No attempt ran yet._'];
  const lines = [
    '_One bar per attempt, from its launch to its end; the critical path is highlighted._',
    '',
    '```mermaid',
    chart.source,
    '```',
  ];
  if (chart.omitted > 0)
    lines.push(
      '',
      `_${chart.omitted} of ${chart.shown + chart.omitted} attempts are left out of the chart (it keeps the critical path and the longest attempts); every attempt is in result.json (performance.timeline)._`,
    );
  return lines;
}

function resourceLines(perf: PerformanceView): string[] {
  const rows = perf.resources;
  if (rows.length === 0) return ['_No attempt ran yet._'];
  const shown =
    rows.length <= MAX_RESOURCE_ROWS
      ? rows
      : [...rows].sort((a, b) => b.cost_usd - a.cost_usd).slice(0, MAX_RESOURCE_ROWS);
  const count = (n: number | undefined) => (n === undefined ? '–' : n.toLocaleString('en-US'));
  const lines = table(
    [
      'Worker',
      'Kind',
      'Depth',
      'Attempts',
      'Tokens in',
      'Tokens out',
      'Cache tokens',
      'Cost',
      'Turns',
      'Duration',
      'Peak memory',
    ],
    ['l', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
    shown.map((r) => [
      r.worker_id,
      r.kind,
      String(r.depth),
      String(r.attempts),
      count(r.input_tokens),
      count(r.output_tokens),
      count(r.cache_tokens),
      formatCost(r.cost_usd),
      String(r.turns),
      formatDuration(r.duration_ms),
      r.peak_memory_mb === undefined ? '–' : `${r.peak_memory_mb} MB`,
    ]),
  );
  lines.push(
    '',
    '_–: not reported (tokens come from the claude CLI, memory from Linux `/proc`). Cache tokens are cache reads plus cache writes._',
  );
  if (shown.length < rows.length)
    lines.push(
      '',
      `_The ${shown.length} most expensive of ${rows.length} tasks; all are in result.json (performance.resources)._`,
    );
  return lines;
}

/** Every worker's output, a bounded excerpt each, with each attempt's log. */
function outputLines(result: JobResult): string[] {
  const views = result.results.tasks;
  if (views.length === 0) return ['_No workers ran._'];
  const here = finalReportKey(result.root_job_id);
  const each = Math.max(
    FINAL_OUTPUT_MIN_CHARS,
    Math.min(FINAL_OUTPUT_MAX_CHARS, Math.floor(FINAL_OUTPUTS_CHARS / views.length)),
  );
  const lines: string[] = [];
  for (const t of views) {
    if (lines.length > 0) lines.push('');
    lines.push(`### ${t.worker_id}: ${markdownText(t.title)}`, '');
    const attempts = attemptsOf(result, t);
    const logs = attempts.length > 0 ? ` · logs: ${logLinks(here, attempts)}` : '';
    lines.push(`${t.status} after ${plural(t.attempts, 'attempt')}${logs}`, '');
    if (t.recursive) {
      lines.push(
        `_Handed to child job ${inlineCode(t.child_job_id ?? 'unknown')}; its workers are listed here too._`,
      );
    } else if (t.output.length === 0) {
      lines.push(t.error === undefined ? '_No output._' : `_No output: ${markdownText(t.error)}_`);
    } else {
      const cut = excerpt(t.output, each);
      if (cut.cut || t.output_truncated)
        lines.push(
          `_The first ${Math.min(each, t.output.length).toLocaleString('en-US')} characters; the whole output is in the level report and the log._`,
          '',
        );
      lines.push(fenced(cut.text));
    }
  }
  return lines;
}

/** The timeline entries of one worker's attempts, in order. */
function attemptsOf(result: JobResult, t: TaskResultView): AttemptTimeline[] {
  return (result.performance?.timeline ?? []).filter(
    (a) =>
      a.job_id === t.job_id &&
      a.task_no === t.task_no &&
      (a.running_ms !== undefined || a.finished_ms !== undefined),
  );
}

/** `[attempt 1](../logs/…log), attempt 2 (no log: …)`: each attempt's own log. */
function logLinks(fromKey: string, attempts: readonly AttemptTimeline[]): string {
  return attempts
    .map((a) =>
      a.reported && sameJob(fromKey, a.log_key)
        ? `[attempt ${a.attempt}](${pathTarget(relativeHref(fromKey, a.log_key))})`
        : `attempt ${a.attempt} (${inlineCode(relativeHref(fromKey, a.log_key))}, if uploaded: the worker did not report)`,
    )
    .join(', ');
}

/** A log as a relative link when its worker reported (it uploads its log first), else only its name. */
function logRef(fromKey: string, key: string, reported: boolean): string {
  const href = relativeHref(fromKey, key);
  return reported && sameJob(fromKey, key)
    ? `[${escapeInline(href)}](${pathTarget(href)})`
    : inlineCode(href);
}

/** A stored file as a link relative to the report at `fromKey`, shown as `label` (its path by default). */
function fileLink(fromKey: string, key: string, label?: string): string {
  const href = relativeHref(fromKey, key);
  if (!sameJob(fromKey, key)) return inlineCode(label ?? key);
  return `[${escapeInline(oneLine(label ?? href))}](${pathTarget(href)})`;
}

/** Both keys under the same `jobs/<root>/` prefix: a report links only inside its own job's folder. */
function sameJob(fromKey: string, toKey: string): boolean {
  const root = fromKey.split('/').slice(0, 2).join('/');
  return toKey.startsWith(`${root}/`);
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
