/**
 * Every report of a job tree, as the aggregator writes them under the root's
 * prefix: `LEVEL_<depth>_REPORT.md` for each depth (level-report.ts),
 * `FINAL_RESULT.md` (final-report.ts) and `result.json`. Pure; every number
 * comes from `buildTreeResult`, so the reports and result.json always agree.
 */
import { finalReportMarkdown } from './final-report.ts';
import { levelReportKey } from './layout.ts';
import { levelReportMarkdown } from './level-report.ts';
import { treeDepths } from './report-markdown.ts';
import { buildTreeResult, type JobResult, type ResultContext, type TreeNode } from './result-format.ts';

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
    markdown: levelReportMarkdown(result, depth),
  }));
  return { levels, finalReport: finalReportMarkdown(result), resultJson: resultJsonText(result) };
}

function resultJsonText(result: JobResult): string {
  return `${JSON.stringify(result, null, 2)}\n`;
}
