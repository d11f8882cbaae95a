import { describe, expect, it } from 'vitest';
import { finalReportMarkdown } from '../../functions/core/final-report.ts';
import { levelReportMarkdown } from '../../functions/core/level-report.ts';
import type { JobRecord, TaskRecord, TaskResultSummary } from '../../functions/core/model.ts';
import { escapeTableCell, formatCost, formatDuration } from '../../functions/core/report-markdown.ts';
import { renderTreeReports } from '../../functions/core/reports.ts';
import { buildTreeResult, type ResultContext } from '../../functions/core/result-format.ts';
import {
  makeJob as baseJob,
  makeResult as baseResult,
  makeTask as baseTask,
  makeAttempt,
} from '../support/records.ts';

const ctx: ResultContext = { bucket: 'artifacts', now: '2025-03-01T10:01:05.000Z' };

// This file's job is `job-r`, about tides, whose workers say "All done.".
const makeJob = (overrides: Partial<JobRecord> = {}): JobRecord =>
  baseJob({ jobId: 'job-r', request: 'Write a report about tides', ...overrides });
const makeResult = (overrides: Partial<TaskResultSummary> = {}): TaskResultSummary =>
  baseResult({ output: 'All done.', ...overrides });
const makeTask = (taskNo: number, overrides: Partial<TaskRecord> = {}): TaskRecord =>
  baseTask(taskNo, { jobId: 'job-r', ...overrides });

function succeededTask(
  taskNo: number,
  result: Partial<TaskResultSummary> = {},
  task: Partial<TaskRecord> = {},
) {
  const summary = makeResult(result);
  return makeTask(taskNo, {
    result: summary,
    attempts: [makeAttempt(1, { costUsd: summary.costUsd, durationMs: summary.durationMs })],
    ...task,
  });
}

const planner = makeTask(0, {
  result: makeResult({ costUsd: 0.002 }),
  attempts: [makeAttempt(1, { costUsd: 0.002 })],
});

function completedTasks(): TaskRecord[] {
  return [
    planner,
    succeededTask(1, { filesCreated: ['tides.md', 'data/levels.csv'], costUsd: 0.0125, numTurns: 6 }),
    succeededTask(2, { filesCreated: ['moon.md'], costUsd: 0.02, numTurns: 3 }),
    succeededTask(3, { costUsd: 0.01, numTurns: 2, output: 'Summary of sources' }),
  ];
}

function partialTasks(): TaskRecord[] {
  const failed = makeTask(2, {
    state: 'failed',
    attempt: 3,
    result: makeResult({
      output: '',
      error: 'Claude CLI exited with code 1: rate limited',
      exitCode: 1,
      costUsd: 0.001,
    }),
    attempts: [
      makeAttempt(1, {
        state: 'failed',
        error: 'container OOM-killed (exit 137)',
        exitCode: 137,
        costUsd: 0.002,
      }),
      makeAttempt(2, { state: 'failed', error: 'spot interruption', costUsd: 0.003 }),
      makeAttempt(3, {
        state: 'failed',
        error: 'Claude CLI exited with code 1: rate limited',
        costUsd: 0.001,
      }),
    ],
  });
  return [planner, succeededTask(1, { filesCreated: ['tides.md'] }), failed];
}

/** The table rows of a markdown document whose first cell is the given worker id. */
function tableRow(doc: string, worker: string): string[] {
  const line = doc.split('\n').find((l) => l.startsWith(`| ${worker} |`));
  expect(line, `table row for ${worker}`).toBeDefined();
  return (line ?? '')
    .split(/(?<!\\)\|/)
    .slice(1, -1)
    .map((c) => c.trim());
}

/** The text of the section starting with the given heading, up to the next heading of the same level. */
function section(doc: string, heading: string): string {
  const start = doc.indexOf(`\n${heading}\n`);
  expect(start, `section ${heading}`).toBeGreaterThanOrEqual(0);
  const level = heading.split(' ')[0];
  const rest = doc.slice(start + heading.length + 2);
  const end = rest.search(new RegExp(`^${level} `, 'm'));
  return end < 0 ? rest : rest.slice(0, end);
}

describe('the level report', () => {
  it('lists every worker of a completed job with its files and output', () => {
    // Prepare
    const job = makeJob();

    // Act
    const doc = levelReportMarkdown(buildTreeResult([{ job, tasks: completedTasks() }], ctx), job.depth);

    // Assess
    expect(doc.split('\n')[0]).toContain('Level 0');
    expect(doc.split('\n')[0]).toContain('job-r');
    expect(doc).toContain('> Write a report about tides');
    expect(tableRow(doc, 'worker_1')).toEqual([
      'worker_1',
      'Task 1',
      'succeeded',
      '1',
      '20s',
      '6',
      '$0.0125',
      '2',
    ]);
    expect(tableRow(doc, 'worker_3')).toEqual([
      'worker_3',
      'Task 3',
      'succeeded',
      '1',
      '20s',
      '2',
      '$0.0100',
      '0',
    ]);
    expect(doc).not.toContain('| worker_0 |');
    const w1 = section(doc, '## worker_1: Task 1');
    expect(w1).toContain('> Do part 1');
    // Relative to the report in depth_0/, so they work in S3 and in the local copy alike.
    expect(w1).toContain('- [tides.md](worker_1/tides.md)');
    expect(w1).toContain('- [data/levels.csv](worker_1/data/levels.csv)');
    expect(w1).toContain('(under `worker_1/`)');
    expect(w1).not.toContain('s3://');
    expect(section(doc, '## worker_3: Task 3')).toContain('```text\nSummary of sources\n```');
  });

  it('shows each attempt’s failure reason for a worker that failed after retries', () => {
    // Prepare
    const job = makeJob({ status: 'partial' });

    // Act
    const doc = levelReportMarkdown(buildTreeResult([{ job, tasks: partialTasks() }], ctx), job.depth);

    // Assess
    expect(tableRow(doc, 'worker_2').slice(2, 4)).toEqual(['failed', '3']);
    const w2 = section(doc, '## worker_2: Task 2');
    expect(w2).toContain('Attempt 1: failed');
    expect(w2).toContain('container OOM-killed (exit 137)');
    expect(w2).toContain('Attempt 2: failed ($0.0030): spot interruption');
    expect(w2).toContain('**Failure reason**\n\n> Claude CLI exited with code 1: rate limited');
    // Each attempt keeps its own log.
    expect(w2).toContain('`../logs/depth_0_worker_2.log`');
    expect(w2).toContain('`../logs/depth_0_worker_2.attempt-2.log`');
    expect(w2).toContain('See the log `../logs/depth_0_worker_2.attempt-3.log`');
  });

  it('escapes pipes and line breaks in table cells', () => {
    // Prepare
    const tasks = [succeededTask(1, {}, { title: 'Compare A | B\nand C' })];

    // Act
    const doc = levelReportMarkdown(buildTreeResult([{ job: makeJob(), tasks }], ctx), 0);

    // Assess
    const row = tableRow(doc, 'worker_1');
    expect(row).toHaveLength(8);
    expect(row[1]).toBe('Compare A \\| B<br>and C');
    expect(doc).toContain('## worker_1: Compare A | B and C');
  });

  it('fences output that itself contains a ``` fence with a longer fence', () => {
    // Prepare
    const output = 'Here is code:\n```ts\nconst x = 1;\n```\nDone.';
    const tasks = [succeededTask(1, { output })];

    // Act
    const doc = levelReportMarkdown(buildTreeResult([{ job: makeJob(), tasks }], ctx), 0);

    // Assess
    expect(doc).toContain(`\`\`\`\`text\n${output}\n\`\`\`\``);
  });

  it('cuts long output and long prompts to an excerpt and points to the full log', () => {
    // Prepare
    const output = `${'a'.repeat(2_000)}${'Z'.repeat(3_000)}`;
    const prompt = `${'p'.repeat(1_000)}${'Q'.repeat(500)}`;
    const tasks = [succeededTask(1, { output }, { prompt })];

    // Act
    const doc = levelReportMarkdown(buildTreeResult([{ job: makeJob(), tasks }], ctx), 0);

    // Assess
    const w1 = section(doc, '## worker_1: Task 1');
    expect(w1).toContain('a'.repeat(2_000));
    expect(w1).not.toContain('aZ');
    expect(w1).toContain(`${'a'.repeat(2_000)}…`);
    expect(w1).toContain('first 2,000 characters');
    expect(w1).toContain('full output in the log `../logs/depth_0_worker_1.log`');
    expect(w1).toContain('p'.repeat(1_000));
    expect(w1).not.toContain('Q');
  });

  it('says when the stored output was already truncated', () => {
    // Prepare
    const tasks = [succeededTask(1, { output: 'partial output', outputTruncated: true })];

    // Act
    const doc = levelReportMarkdown(buildTreeResult([{ job: makeJob(), tasks }], ctx), 0);

    // Assess
    expect(doc).toContain('(truncated; full output in the log `../logs/depth_0_worker_1.log`)');
  });
});

describe('the final report', () => {
  it('summarises a completed job: totals, planning, workers, files and links', () => {
    // Prepare
    const job = makeJob();

    // Act
    const doc = finalReportMarkdown(
      buildTreeResult([{ job, tasks: completedTasks() }], { ...ctx, workspace: './workspace/job_job-r/' }),
    );

    // Assess
    expect(doc).toContain('**Status:** completed · 3 of 3 workers succeeded');
    expect(doc).toContain('> Write a report about tides');
    const totals = section(doc, '## Totals');
    expect(totals).toContain('Workers: 3 (3 succeeded, 0 failed, 0 timed out)');
    expect(totals).toContain('Total cost: $0.0445 (workers $0.0425, planning $0.0020)');
    expect(totals).toContain('Total turns: 11');
    expect(totals).toContain('Wall time: 1m 05s');
    expect(totals).not.toContain('so far');
    expect(section(doc, '## Planning')).toContain('Planner: succeeded after 1 attempt, $0.0020');
    expect(tableRow(doc, 'worker_2')).toEqual(['worker_2', 'Task 2', '0', 'succeeded', '1', '$0.0200', '1']);
    const files = section(doc, '## Files');
    expect(files).toContain('**worker_1**');
    expect(files).toContain('[depth_0/worker_1/tides.md](depth_0/worker_1/tides.md)');
    expect(files).toContain('[depth_0/worker_1/data/levels.csv](depth_0/worker_1/data/levels.csv)');
    expect(files).toContain('[depth_0/worker_2/moon.md](depth_0/worker_2/moon.md)');
    expect(files).not.toContain('worker_3');
    expect(section(doc, '## Failures')).toContain('No worker failed');
    const reports = section(doc, '## Reports');
    expect(reports).toContain('(depth_0/LEVEL_0_REPORT.md)');
    expect(reports).toContain('(result.json)');
    expect(reports).toContain('./workspace/job_job-r/');
  });

  it('names the failed worker and its reasons in a partial job', () => {
    // Prepare
    const job = makeJob({ status: 'partial' });

    // Act
    const doc = finalReportMarkdown(buildTreeResult([{ job, tasks: partialTasks() }], ctx));

    // Assess
    expect(doc).toContain('**Status:** partial · 1 of 2 workers succeeded');
    expect(section(doc, '## Totals')).toContain('Workers: 2 (1 succeeded, 1 failed, 0 timed out)');
    expect(tableRow(doc, 'worker_2')).toEqual(['worker_2', 'Task 2', '0', 'failed', '3', '$0.0060', '0']);
    const failures = section(doc, '## Failures');
    expect(failures).toContain(
      '**worker_2** (Task 2): failed after 3 attempts: Claude CLI exited with code 1: rate limited',
    );
    expect(failures).toContain('attempt 1 (failed): container OOM-killed (exit 137)');
    expect(failures).toContain('attempt 2 (failed): spot interruption');
    expect(failures).not.toContain('worker_1');
  });

  it('lists a timed-out worker under failures with its timeout', () => {
    // Prepare
    const timedOut = makeTask(2, {
      state: 'timed_out',
      attempt: 1,
      timeoutSec: 900,
      attempts: [makeAttempt(1, { state: 'timed_out', durationMs: 900_000 })],
    });
    const job = makeJob({ status: 'partial' });

    // Act
    const doc = finalReportMarkdown(buildTreeResult([{ job, tasks: [succeededTask(1), timedOut] }], ctx));

    // Assess
    expect(section(doc, '## Totals')).toContain('Workers: 2 (1 succeeded, 0 failed, 1 timed out)');
    expect(section(doc, '## Failures')).toContain(
      '**worker_2** (Task 2): timed_out after 1 attempt: timed out after 900s',
    );
  });

  it('shows a running job with its wall time so far', () => {
    // Prepare
    const job = makeJob({ status: 'running', finishedAt: undefined, finishedTasks: [1] });
    const tasks = [
      planner,
      succeededTask(1),
      makeTask(2, { state: 'running' }),
      makeTask(3, { state: 'queued' }),
    ];

    // Act
    const doc = finalReportMarkdown(
      buildTreeResult([{ job, tasks }], { ...ctx, now: '2025-03-01T10:02:03.000Z' }),
    );

    // Assess
    expect(doc).toContain('**Status:** running · 1 of 3 workers finished, 2 still running');
    expect(section(doc, '## Totals')).toContain('Wall time: 2m 03s (so far)');
    expect(tableRow(doc, 'worker_3').slice(3, 5)).toEqual(['queued', '0']);
  });

  it('explains a job that failed at planning', () => {
    // Prepare
    const job = makeJob({
      status: 'failed',
      totalTasks: 0,
      finishedTasks: [],
      error: 'planning failed after 2 attempts: the planner returned invalid JSON',
    });
    const failedPlanner = makeTask(0, {
      state: 'failed',
      attempt: 2,
      attempts: [
        makeAttempt(1, { state: 'failed', error: 'invalid JSON', costUsd: 0.001 }),
        makeAttempt(2, { state: 'failed', error: 'invalid JSON', costUsd: 0.002 }),
      ],
    });

    // Act
    const doc = finalReportMarkdown(buildTreeResult([{ job, tasks: [failedPlanner] }], ctx));

    // Assess
    expect(doc).toContain('**Status:** failed · no workers ran');
    expect(section(doc, '## Job error')).toContain(
      '> planning failed after 2 attempts: the planner returned invalid JSON',
    );
    expect(section(doc, '## Planning')).toContain('Planner: failed after 2 attempts, $0.0030 (invalid JSON)');
    expect(section(doc, '## Workers')).toContain('No workers ran');
    expect(section(doc, '## Totals')).toContain('Total cost: $0.0030 (workers $0.0000, planning $0.0030)');
    expect(doc).not.toContain('| worker_0 |');
  });

  it('says when the caller gave the tasks and nothing was planned', () => {
    // Prepare
    const tasks = [succeededTask(1)];

    // Act
    const doc = finalReportMarkdown(buildTreeResult([{ job: makeJob(), tasks }], ctx));

    // Assess
    expect(section(doc, '## Planning')).toContain('no planning step');
  });
});

describe('result.json', () => {
  it('is the pretty-printed result with the failure reason of the failed worker', () => {
    // Prepare
    const job = makeJob({ status: 'partial' });
    const tasks = partialTasks();

    // Act
    const json = renderTreeReports([{ job, tasks }], ctx).resultJson;

    // Assess
    expect(json.endsWith('}\n')).toBe(true);
    expect(json).toContain('\n  "job_id": "job-r"');
    const parsed = JSON.parse(json);
    expect(parsed).toEqual(buildTreeResult([{ job, tasks }], ctx));
    expect(parsed.status).toBe('partial');
    expect(parsed.results.tasks[1].error).toBe('Claude CLI exited with code 1: rate limited');
    expect(parsed.results.summary).toMatchObject({ total: 2, succeeded: 1, failed: 1 });
  });
});

describe('formatting helpers', () => {
  it('formats costs with four decimals', () => {
    expect(formatCost(0.0125)).toBe('$0.0125');
    expect(formatCost(0)).toBe('$0.0000');
    expect(formatCost(1.23456)).toBe('$1.2346');
  });

  it('formats durations for people', () => {
    expect(formatDuration(850)).toBe('850ms');
    expect(formatDuration(42_000)).toBe('42s');
    expect(formatDuration(65_000)).toBe('1m 05s');
    expect(formatDuration(59_600)).toBe('1m 00s');
    expect(formatDuration(2 * 3_600_000 + 3 * 60_000 + 4_000)).toBe('2h 03m 04s');
  });

  it('escapes table cells', () => {
    expect(escapeTableCell('a|b\r\nc\nd')).toBe('a\\|b<br>c<br>d');
  });
});
