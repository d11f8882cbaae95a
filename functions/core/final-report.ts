/**
 * `FINAL_RESULT.md` of the root job, covering the whole tree: outcome,
 * totals, planning, the tree, every worker, files or changes, failures,
 * performance, outputs and links to the level reports. Pure; every number
 * comes from `buildTreeResult`, so the report and result.json always agree.
 */
import { finalReportKey, jobPrefix, levelReportKey } from './layout.ts';
import { criticalPathParts, type GanttChart, ganttChart, type PerformanceView } from './performance.ts';
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
  markdownText,
  plural,
  table,
  treeDepths,
  workerCounts,
} from './report-markdown.ts';
import type { JobResult, TaskResultView, TreeJobView } from './result-format.ts';

/** What FINAL_RESULT.md quotes of all outputs together, shared out between the workers (within the two bounds below). */
export const FINAL_OUTPUTS_CHARS = 150_000;

export const FINAL_OUTPUT_MIN_CHARS = 200;

export const FINAL_OUTPUT_MAX_CHARS = 1_000;

/** Rows of the per-worker resource table and steps of the critical path the final report lists. */
export const MAX_RESOURCE_ROWS = 200;

export const MAX_PATH_STEPS = 50;

/** The final report of the root: the whole tree's outcome, totals, workers, files, failures and links. */
export function finalReportMarkdown(result: JobResult): string {
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

/** The rows of the critical path's table. */
const PART_WORDS: Record<NonNullable<PerformanceView['bottleneck']>['cause'], string> = {
  running: 'Running',
  queueing: 'Queueing',
  budget_wait: 'Waiting for spend budget',
  launch: 'Launching',
  retries: 'Retries (earlier attempts)',
  other: 'Hand-overs between steps',
};

function criticalPathLines(perf: PerformanceView): string[] {
  const p = perf.critical_path;
  const share = (ms: number) => (p.total_ms > 0 ? `${((ms / p.total_ms) * 100).toFixed(1)}%` : '–');
  const lines = table(
    ['Part', 'Time', 'Share of wall time'],
    ['l', 'r', 'r'],
    criticalPathParts(p).map(([part, ms]) => [PART_WORDS[part], formatDuration(ms), share(ms)]),
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
