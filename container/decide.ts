/**
 * Decompose or do: before working, the worker asks Claude whether its subtask
 * should be split. A split becomes a child job created through the API with
 * the worker's own token (`x-child-mode: handoff`); the task then waits
 * without a container. A refusal by a server limit is not an error: the
 * worker simply does the work itself.
 */

import { OrchestratorApiError, type OrchestratorClient } from '../functions/client/orchestrator-client.ts';
import type { ClaudeRunVerdict } from '../functions/core/claude-result.ts';
import { judgeClaudeRun } from '../functions/core/claude-result.ts';
import type { Assignment } from '../functions/services/worker-access.ts';
import { type ClaudeInvocation, runClaude } from './run-claude.ts';

export type Decision =
  | { kind: 'do'; costUsd: number; note: string }
  | { kind: 'handed_off'; costUsd: number; childJobId: string; note: string };

interface DecideOutput {
  decision?: unknown;
  reason?: unknown;
  subtasks?: unknown;
}

/** The decide run gets at most this share of the task's time. */
const DECIDE_SHARE = 0.25;

export async function decideOrHandOff(
  api: OrchestratorClient,
  assignment: Assignment,
  invocation: Omit<ClaudeInvocation, 'prompt' | 'args' | 'timeoutMs'>,
  baseArgs: string[],
  /** Repository jobs: uploads the checkout as the child's base; returns headers for the child's POST. */
  prepareHandoff?: () => Promise<Record<string, string>>,
): Promise<Decision> {
  const offer = assignment.recursion;
  if (!offer) return { kind: 'do', costUsd: 0, note: 'recursion not offered' };
  const run = await runClaude({
    ...invocation,
    prompt: offer.decide_prompt,
    args: [...baseArgs, '--json-schema', JSON.stringify(offer.decide_schema)],
    timeoutMs: Math.max(30_000, assignment.timeout_sec * 1000 * DECIDE_SHARE),
  });
  const verdict: ClaudeRunVerdict = judgeClaudeRun(run);
  const out = (verdict.structuredOutput ?? {}) as DecideOutput;
  const subtasks = Array.isArray(out.subtasks)
    ? (out.subtasks as { title?: unknown; prompt?: unknown }[])
    : [];
  const valid = subtasks.filter((t) => typeof t.prompt === 'string' && t.prompt.trim() !== '');
  if (verdict.status !== 'succeeded' || out.decision !== 'split' || valid.length < 2) {
    const why =
      verdict.status !== 'succeeded'
        ? `decide run ${verdict.status}: ${verdict.error ?? ''}`
        : `decided to do it (${String(out.reason ?? '')})`;
    return { kind: 'do', costUsd: verdict.costUsd, note: why };
  }
  try {
    const extraHeaders = prepareHandoff ? await prepareHandoff() : {};
    const child = await api.orchestrate(
      {
        request: offer.subtask_prompt,
        tasks: valid.map((t, i) => ({
          title: typeof t.title === 'string' && t.title.trim() ? t.title.slice(0, 200) : `Part ${i + 1}`,
          prompt: String(t.prompt),
        })),
      },
      {
        headers: { ...extraHeaders, 'x-child-mode': 'handoff', 'x-decide-cost-usd': String(verdict.costUsd) },
      },
    );
    return {
      kind: 'handed_off',
      costUsd: verdict.costUsd,
      childJobId: child.job_id,
      note: `split into ${valid.length} subtasks: child job ${child.job_id}`,
    };
  } catch (err) {
    if (err instanceof OrchestratorApiError && err.status >= 400 && err.status < 500) {
      return { kind: 'do', costUsd: verdict.costUsd, note: `split refused, doing it here: ${err.message}` };
    }
    throw err;
  }
}
