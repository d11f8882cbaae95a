/**
 * One total cost for a job tree: every session of every job (planners,
 * workers with their decide runs, merge steps with their conflict sessions),
 * the same in result.json and in FINAL_RESULT.md.
 */
import { describe, expect, it } from 'vitest';
import type { JobRecord, TaskRecord } from '../../functions/core/model.ts';
import { formatCost } from '../../functions/core/report-markdown.ts';
import { renderTreeReports } from '../../functions/core/reports.ts';
import { buildTreeResult, type ResultContext, type TreeNode } from '../../functions/core/result-format.ts';
import { makeAttempt, makeJob, makeResult, makeTask } from '../support/records.ts';

const ctx: ResultContext = { bucket: 'artifacts', now: '2025-03-01T10:05:00.000Z' };

function paid(job: JobRecord, taskNo: number, costs: number[], overrides: Partial<TaskRecord> = {}) {
  return makeTask(taskNo, {
    jobId: job.jobId,
    rootJobId: job.rootJobId,
    depth: job.depth,
    jobPath: job.path,
    attempt: costs.length,
    result: makeResult({ costUsd: costs.at(-1) ?? 0 }),
    attempts: costs.map((costUsd, i) =>
      makeAttempt(i + 1, { costUsd, state: i === costs.length - 1 ? 'succeeded' : 'failed' }),
    ),
    ...overrides,
  });
}

/** Every attempt of every task of the tree, whatever its kind. */
function sumOfSessions(tree: TreeNode[]): number {
  const all = tree.flatMap((n) => n.tasks.flatMap((t) => t.attempts.map((a) => a.costUsd ?? 0)));
  return Math.round(all.reduce((s, c) => s + c, 0) * 1e6) / 1e6;
}

/** The dollar figure of the final report's `- Total cost:` line. */
function reportTotal(markdown: string): string | undefined {
  return /^- Total cost: (\$[0-9.]+) /m.exec(markdown)?.[1];
}

describe('the total cost of a job tree', () => {
  it('a planned job: the planner is in the total, in result.json and in the report alike', () => {
    const root = makeJob({ jobId: 'job-p' });
    const tree: TreeNode[] = [
      {
        job: root,
        tasks: [
          paid(root, 0, [0.0125]),
          paid(root, 1, [0.0125]),
          paid(root, 2, [0.0125]),
          paid(root, 3, [0.0125]),
        ],
      },
    ];
    const result = buildTreeResult(tree, ctx);
    expect(result.results.summary.total_cost_usd).toBe(0.0375);
    expect(result.cost).toEqual({ total_usd: 0.05, workers_usd: 0.0375, planning_usd: 0.0125, steps_usd: 0 });
    expect(reportTotal(renderTreeReports(tree, ctx).finalReport)).toBe(formatCost(result.cost.total_usd));
  });

  it('a repository tree: every planner, retried attempts, and the merge steps of the root and of a child job', () => {
    const source = { kind: 'bundle' as const, bundles: ['b'], baseCommit: 'a'.repeat(40) };
    const root = makeJob({ jobId: 'job-r', source });
    const child = makeJob({
      jobId: 'job-c',
      rootJobId: 'job-r',
      depth: 1,
      path: '2',
      parentJobId: 'job-r',
      parentTaskNo: 2,
      childMode: 'handoff',
      source: { ...source, kind: 'parent' },
    });
    const tree: TreeNode[] = [
      {
        job: root,
        tasks: [
          paid(root, 0, [0.004, 0.006]),
          paid(root, 1, [0.01, 0.02]),
          // A hand-off: its own attempt is the decide run.
          paid(root, 2, [0.001], { state: 'recursive_success', childJobId: 'job-c' }),
          // The merge step, with one conflict session.
          paid(root, 3, [0.0125], { kind: 'merge', title: 'Merge' }),
        ],
      },
      {
        job: child,
        tasks: [
          paid(child, 0, [0.003]),
          paid(child, 1, [0.007]),
          paid(child, 2, [0.008]),
          paid(child, 3, [0.0025], { kind: 'merge', title: 'Merge' }),
        ],
      },
    ];
    const result = buildTreeResult(tree, ctx);
    expect(result.cost.total_usd).toBe(sumOfSessions(tree));
    expect(result.cost).toEqual({
      total_usd: 0.074,
      workers_usd: 0.046,
      planning_usd: 0.013,
      steps_usd: 0.015,
    });
    expect(result.cost.workers_usd).toBe(result.results.summary.total_cost_usd);
    expect(result.cost.planning_usd).toBe(result.planning?.cost_usd);
    const report = renderTreeReports(tree, ctx).finalReport;
    expect(reportTotal(report)).toBe(formatCost(result.cost.total_usd));
    expect(report).toContain('(workers $0.0460, planning $0.0130, merging $0.0150)');
  });

  it('a job whose caller gave the tasks: no planner, the total is the workers', () => {
    const root = makeJob({ jobId: 'job-g' });
    const tree: TreeNode[] = [{ job: root, tasks: [paid(root, 1, [0.02]), paid(root, 2, [0.03])] }];
    const result = buildTreeResult(tree, ctx);
    expect(result.cost).toEqual({ total_usd: 0.05, workers_usd: 0.05, planning_usd: 0, steps_usd: 0 });
  });
});
