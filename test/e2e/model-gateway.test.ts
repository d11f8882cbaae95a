/**
 * The model gateway with the REAL `claude` CLI (2.1.197) in every session,
 * through local mode, against the scripted Messages API as the upstream. The
 * orchestrator holds the key; each worker's CLI gets ANTHROPIC_BASE_URL =
 * `<api>/gateway` and its task token as the key. The acceptance:
 * - a session that loops forever is stopped by the gateway, and the tree's
 *   spend ends within its budget plus one request's maximum cost;
 * - result.json's cost is the gateway's metered total;
 * - a job of 8 workers with default budgets runs 8 sessions at once.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resultJsonKey } from '../../functions/core/layout.ts';
import {
  maxRequestCost,
  parseMessagesRequest,
  priceOf,
  priceUsage,
  usageOf,
} from '../../functions/core/model-metering.ts';
import { startTestStack, type TestStack } from '../support/harness.ts';
import {
  type MessagesApi,
  type MessagesRequest,
  type ScriptedReply,
  startMessagesApi,
  text,
  toolUse,
} from '../support/messages-api.ts';
import { REAL_CLAUDE, realClaudeEnv } from '../support/real-claude.ts';

const UPSTREAM_KEY = 'sk-ant-upstream-key-of-the-orchestrator';
/** A loop turn as a big model would bill it: $1.00 at opus prices. */
const LOOP_USAGE = { input_tokens: 100_000, output_tokens: 20_000 };
const COST_USAGE = { input_tokens: 1_000, output_tokens: 200, cache_read_input_tokens: 5_000 };
const PARALLEL = 8;
const JOB_TIMEOUT_MS = 150_000;
const TEST_TIMEOUT_MS = 200_000;

let api: MessagesApi;
let stack: TestStack;
let home: string;
const surprises: string[] = [];

/** The first turns of the parallel sessions wait here until all of them have arrived (or a minute passed). */
const barrier = new Set<string>();
let inFlight = 0;
let peakInFlight = 0;
let openBarrier: (() => void) | undefined;
const barrierOpen = new Promise<void>((resolve) => {
  openBarrier = resolve;
});

function cwdOf(request: MessagesRequest): string {
  const system = Array.isArray(request.system)
    ? request.system.map((b) => (b as { text?: unknown }).text ?? '').join('\n')
    : String(request.system ?? '');
  const cwd = /Primary working directory: (.+)/.exec(system)?.[1]?.trim();
  if (!cwd) throw new Error('the system prompt names no working directory');
  return cwd;
}

async function session(request: MessagesRequest): Promise<ScriptedReply> {
  const prompt = request.prompt;
  if (prompt.includes('(gw-loop)')) {
    // Never done: every answer is one more tool call.
    return {
      ...toolUse('Bash', { command: 'echo again', description: 'Loop once more' }),
      usage: LOOP_USAGE,
    };
  }
  const cost = /\(gw-cost-(\d)\)/.exec(prompt)?.[1];
  if (cost) {
    if (!request.toolsCalled.includes('Write'))
      return {
        ...toolUse('Write', {
          file_path: join(cwdOf(request), `notes-${cost}.md`),
          content: `notes ${cost}\n`,
        }),
        usage: COST_USAGE,
      };
    return { ...text(`Wrote notes-${cost}.md.`), usage: COST_USAGE };
  }
  const parallel = /\(gw-parallel-(\d)\)/.exec(prompt)?.[1];
  if (parallel) {
    inFlight += 1;
    peakInFlight = Math.max(peakInFlight, inFlight);
    try {
      barrier.add(parallel);
      if (barrier.size >= PARALLEL) openBarrier?.();
      await Promise.race([barrierOpen, new Promise((r) => setTimeout(r, 60_000))]);
      return text(`Session ${parallel} done.`);
    } finally {
      inFlight -= 1;
    }
  }
  surprises.push(`an unexpected session: ${prompt.slice(-200)}`);
  return text('Nothing to do.');
}

async function submit(body: Record<string, unknown>) {
  const submitted = await stack.api('POST', '/api/v1/orchestrate', { body });
  expect(submitted.status, submitted.text).toBe(202);
  const jobId = submitted.json.job_id as string;
  const status = await stack.waitForJob(jobId, JOB_TIMEOUT_MS);
  return { jobId, status };
}

const opusPrice = () => {
  const price = priceOf(stack.deps.settings.gateway?.prices ?? {}, 'claude-opus-4-8');
  if (!price) throw new Error('no price for the default model');
  return price;
};

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'gw-claude-home-'));
  api = await startMessagesApi(session);
  stack = await startTestStack(
    `workers: {max_workers: ${PARALLEL}, max_retries: 2}`,
    // The stand-in's values are replaced for Claude by the gateway's URL and the task token.
    {
      ...realClaudeEnv(api.url, home),
      ANTHROPIC_AUTH_TOKEN: '',
      CLAUDE_CODE_USE_BEDROCK: '',
      CLAUDE_CODE_USE_VERTEX: '',
    },
    {
      claudeCommand: REAL_CLAUDE,
      modelEnv: { ANTHROPIC_API_KEY: UPSTREAM_KEY, ANTHROPIC_BASE_URL: api.url },
    },
  );
  expect(stack.deps.settings.gateway?.enabled).toBe(true);
}, 60_000);

afterAll(async () => {
  openBarrier?.();
  await stack?.stop();
  await api?.stop();
  if (home) await rm(home, { recursive: true, force: true });
});

describe('the model gateway with the real claude CLI', () => {
  it(
    'stops a session that loops forever: the tree spends at most its budget plus one request, and the task fails at once with the budget message',
    async () => {
      const budget = 5;
      const { jobId, status } = await submit({
        request: 'Loop (gw-loop)',
        tasks: [{ title: 'Loop', prompt: 'Keep going forever (gw-loop).' }],
        config: { max_budget_usd: budget },
      });
      expect(status).toBe('failed');
      const loop = api.requests.filter((r) => r.prompt.includes('(gw-loop)'));
      // It did loop (tool call after tool call) until the gateway refused the next turn.
      expect(loop.length).toBeGreaterThanOrEqual(2);
      expect(loop.at(-1)?.toolsCalled.length).toBe(loop.length - 1);
      for (const r of loop) expect(r.headers['x-api-key']).toBe(UPSTREAM_KEY);

      const root = await stack.deps.jobs.getJob(jobId);
      const spent = root?.budget?.spentUsd ?? Number.NaN;
      expect(spent).toBeCloseTo(loop.length * priceUsage(usageOf(LOOP_USAGE), opusPrice()), 6);
      const last = parseMessagesRequest(JSON.stringify(loop.at(-1)?.raw));
      if (!last.ok) throw new Error(last.message);
      expect(spent).toBeLessThanOrEqual(budget + maxRequestCost(last.shape, opusPrice()));
      expect(spent).toBeLessThanOrEqual(budget);
      expect(root?.budget?.committedUsd).toBeCloseTo(spent, 6);

      // The CLI took the 402 as final: one refusal, no retries of it.
      const refusals = stack.logs.filter(
        (l) => l.message === 'model request refused' && l.extra?.jobId === jobId,
      );
      expect(refusals.map((l) => l.extra?.reason)).toEqual(['tree']);

      const task = await stack.deps.tasks.getTask(jobId, 1);
      expect(task?.state).toBe('failed');
      expect(task?.attempts, JSON.stringify({ attempts: task?.attempts, meter: task?.meter })).toHaveLength(
        1,
      );
      expect(task?.attempts[0]?.error).toMatch(/budget exhausted: the job tree .*max_budget_usd/);
      expect(surprises).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "reports in result.json the cost the gateway metered, with the CLI's own figure kept beside it",
    async () => {
      const { jobId, status } = await submit({
        request: 'Write two notes',
        tasks: [
          { title: 'Note 1', prompt: 'Write notes-1.md (gw-cost-1).' },
          { title: 'Note 2', prompt: 'Write notes-2.md (gw-cost-2).' },
        ],
      });
      expect(status).toBe('completed');
      const sessions = api.requests.filter((r) => /\(gw-cost-\d\)/.test(r.prompt));
      expect(sessions).toHaveLength(4);
      const scripted = sessions.length * priceUsage(usageOf(COST_USAGE), opusPrice());

      const text = await stack.deps.artifacts.getText(resultJsonKey(jobId));
      const result = JSON.parse(text ?? '{}');
      const tasks = await stack.deps.tasks.listTasks(jobId);
      const metered = tasks.reduce((sum, t) => sum + (t.meter?.meteredUsd ?? 0), 0);
      expect(metered).toBeCloseTo(scripted, 6);
      expect(result.results.summary.total_cost_usd).toBeCloseTo(metered, 6);
      expect(result.results.tasks.map((t: { cost_usd: number }) => t.cost_usd).sort()).toEqual(
        tasks.map((t) => Math.round((t.meter?.meteredUsd ?? 0) * 1e6) / 1e6).sort(),
      );
      expect((await stack.deps.jobs.getJob(jobId))?.budget?.spentUsd).toBeCloseTo(metered, 6);
      for (const t of result.results.tasks) {
        expect(t.reported_cost_usd).toBeGreaterThan(0);
        expect(t.attempt_history[0].reported_cost_usd).toBe(t.reported_cost_usd);
      }
      expect(surprises).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    `runs a job of ${PARALLEL} workers with default budgets ${PARALLEL} at once`,
    async () => {
      const { jobId, status } = await submit({
        request: 'Eight at once',
        tasks: Array.from({ length: PARALLEL }, (_, i) => ({
          title: `Part ${i + 1}`,
          prompt: `Say done (gw-parallel-${i + 1}).`,
        })),
        config: { max_workers: PARALLEL },
      });
      expect(status).toBe('completed');
      expect(barrier.size).toBe(PARALLEL);
      expect(peakInFlight).toBe(PARALLEL);
      const root = await stack.deps.jobs.getJob(jobId);
      expect(root?.budget?.maxSpendUsd).toBe(25);
      expect(stack.logs.filter((l) => l.message === 'waiting for spend budget')).toEqual([]);
      expect(surprises).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );
});

describe('without the gateway', () => {
  let plain: TestStack;
  beforeAll(async () => {
    plain = await startTestStack(`workers: {max_workers: ${PARALLEL}}`);
    expect(plain.deps.settings.gateway?.enabled).toBe(false);
  });
  afterAll(async () => {
    await plain?.stop();
  });

  it(`the CLI's budgets are sized so ${PARALLEL} workers with default budgets still run at once`, async () => {
    const res = await plain.api('POST', '/api/v1/orchestrate', {
      body: {
        request: 'eight sleepers',
        // Long enough that the last worker starts before the first ends, even on a busy machine.
        tasks: Array.from({ length: PARALLEL }, (_, i) => ({ prompt: `sleeper ${i} [[sleep:15000]]` })),
        config: { max_workers: PARALLEL },
      },
    });
    expect(await plain.waitForJob(res.json.job_id, 90_000)).toBe('completed');
    const runs = (await plain.invocations()).filter((r) => (r.prompt ?? '').includes('sleeper'));
    expect(runs).toHaveLength(PARALLEL);
    const peak = Math.max(
      ...runs.map((r) => runs.filter((o) => o.start <= r.start && (o.end ?? Infinity) > r.start).length),
    );
    expect(peak).toBe(PARALLEL);
    expect(plain.logs.filter((l) => l.message === 'waiting for spend budget')).toEqual([]);
  }, 120_000);
});
