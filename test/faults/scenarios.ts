/**
 * The fault scenarios, run by the full suite (`npm run test:faults`,
 * scenarios.faults.ts) and by its fast variant inside `npm test`
 * (fast-faults.test.ts). Each scenario starts its own local
 * stack with fault-injecting SDK clients, submits a mix of jobs (given tasks,
 * planned jobs, recursive ones), adds its own kind of trouble, drives the
 * reconciler's sweep with short graces until every job is final (bounded), and
 * checks the invariants (see invariants.ts). A table is printed at the end.
 *
 * Seed: FAULT_SEED=<n> npm run test:faults (printed on every run). Calls are
 * concurrent, so a seed fixes the sequence of fault decisions, not their exact
 * assignment to calls; it reproduces the mix and rates of a run.
 */
import { WorkQueue } from '../../functions/adapters/work-queue.ts';
import { isTerminalJobStatus, isTerminalTaskState } from '../../functions/core/task-states.ts';
import type { SpawnedProcess } from '../../functions/local/process-spawner.ts';
import { type SweepOptions, sweepActiveTasks } from '../../functions/services/reconcile.ts';
import {
  deriveSeed,
  FAULT_KINDS,
  FaultInjector,
  type FaultKind,
  type FaultPlan,
  mulberry32,
} from './fault-injector.ts';
import { type FaultStack, startFaultStack } from './fault-stack.ts';
import { checkInvariants, type InvariantReport } from './invariants.ts';

/** How long, after every job ended, the tasks' follow-ups get to finish before the checks. */
const SETTLE_MS = 20_000;

const SWEEP: SweepOptions = {
  limit: 500,
  launchGraceMs: 6_000,
  overrunGraceMs: 5_000,
  requeueAfterMs: 5_000,
  followUpGraceMs: 3_000,
};
export const SCENARIO_DEADLINE_MS = 90_000;
const STACK_CONFIG = [
  'workers: {max_workers: 4, max_retries: 3, default_timeout: 60}',
  'recursion: {enable: true, max_depth: 2}',
  'limits: {max_task_budget_usd: 1}',
  'aws: {max_receive_count: 5}',
].join('\n');

export interface Row {
  scenario: string;
  seed: number;
  report: InvariantReport;
  sdkFaults: Record<FaultKind, number>;
  sdkCalls: number;
  chaos: Record<string, number>;
  seconds: number;
}

type Rng = () => number;
const pick = <T>(rng: Rng, items: readonly T[]): T => items[Math.floor(rng() * items.length)] as T;

/**
 * A job mix: given tasks, planned jobs and recursive ones; `directive` adds
 * per-task trouble. `small` is one of each (the fast variant), else 3, 2 and 2.
 */
function jobMix(
  rng: Rng,
  label: string,
  directive: () => string,
  small = false,
): { body: unknown; key: string }[] {
  const jobs: { body: unknown; key: string }[] = [];
  const config = { max_retries: 3 };
  for (let i = 0; i < (small ? 1 : 3); i++) {
    const n = 2 + Math.floor(rng() * 3);
    jobs.push({
      key: `${label}-direct-${i}`,
      body: {
        request: `${label} direct job ${i}`,
        config,
        tasks: Array.from({ length: n }, (_, k) => ({
          prompt: `${label} d${i} part ${k + 1} ${directive()}`,
        })),
      },
    });
  }
  for (let i = 0; i < (small ? 1 : 2); i++) {
    jobs.push({
      key: `${label}-planned-${i}`,
      body: { request: `${label} planned job ${i} [[plan:${2 + Math.floor(rng() * 2)}]]`, config },
    });
  }
  for (let i = small ? 1 : 0; i < 2; i++) {
    jobs.push({
      key: `${label}-recursive-${i}`,
      body: {
        request: `${label} recursive job ${i}`,
        config: { ...config, enable_recursion: true, max_recursion_depth: 2 },
        tasks: [
          { prompt: `${label} r${i} leaf ${directive()}` },
          {
            prompt: `${label} r${i} splits [[split:2]] [[split_all:${pick(rng, ['sleep:200', 'fail_times:1', 'sleep:50'])}]]`,
          },
          ...(i === 1 ? [{ prompt: `${label} r${i} deep [[split:2]] [[split_child:1:split:2]]` }] : []),
        ],
      },
    });
  }
  return jobs;
}

export interface Scenario {
  name: string;
  plan: FaultPlan;
  workerEnv?: NodeJS.ProcessEnv;
  directive?: (rng: Rng) => string;
  /** Extra trouble: set up once after the stack starts. */
  setup?: (ctx: Ctx) => void | Promise<void>;
  /** Extra trouble: called every tick while jobs run. */
  tick?: (ctx: Ctx) => Promise<void>;
}

interface Ctx {
  stack: FaultStack;
  rng: Rng;
  roots: string[];
  chaos: Record<string, number>;
  elapsedMs: () => number;
}

/** Counters in the chaos column that are consequences, not injected faults. */
const NOT_FAULTS = new Set(['sweep_repairs', 'messages_lost']);

const bump = (ctx: Ctx, key: string, n = 1) => {
  ctx.chaos[key] = (ctx.chaos[key] ?? 0) + n;
};

async function allTasks(ctx: Ctx) {
  const out = [];
  for (const rootId of ctx.roots) {
    const jobs = [rootId, ...(await ctx.stack.deps.jobs.listDescendants(rootId)).map((j) => j.jobId)];
    for (const jobId of jobs) out.push(...(await ctx.stack.deps.tasks.listTasks(jobId)));
  }
  return out;
}

export async function runScenario(
  scenario: Scenario,
  baseSeed: number,
  options: { small?: boolean; deadlineMs?: number } = {},
): Promise<Row> {
  const seed = deriveSeed(baseSeed, scenario.name);
  const rng = mulberry32(seed ^ 0x9e3779b9);
  const injector = new FaultInjector(seed, scenario.plan);
  const started = Date.now();
  const stack = await startFaultStack(STACK_CONFIG, scenario.workerEnv ?? {}, injector);
  const ctx: Ctx = {
    stack,
    rng,
    roots: [],
    chaos: {},
    elapsedMs: () => Date.now() - started,
  };
  try {
    await scenario.setup?.(ctx);
    injector.enabled = true;
    const directive = scenario.directive ? () => scenario.directive?.(rng) ?? '' : () => '';
    for (const job of jobMix(rng, scenario.name, directive, options.small)) {
      ctx.roots.push(await stack.submit(job.body, `${seed}-${job.key}`));
    }
    const deadline = Date.now() + (options.deadlineMs ?? SCENARIO_DEADLINE_MS);
    let lastSweep = 0;
    for (;;) {
      const states = await Promise.all(
        ctx.roots.map((id) =>
          stack.deps.jobs.getJob(id).then(
            (j) => j?.status,
            () => undefined,
          ),
        ),
      );
      if (states.every((s) => s && isTerminalJobStatus(s))) break;
      if (Date.now() > deadline) break;
      if (Date.now() - lastSweep > 1_500) {
        lastSweep = Date.now();
        const swept = await sweepActiveTasks(stack.deps, stack.launcher, SWEEP).catch(() => undefined);
        if (swept) bump(ctx, 'sweep_repairs', swept.lost + swept.overdue + swept.requeued);
      }
      await scenario.tick?.(ctx).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 300));
    }
    // A job can be final while a task's follow-up (its count in the finished set, then leaving the
    // sweep's index) is still under way, or waits for the sweep: an extra aggregate message may
    // finish a job before its last task's request has counted it. Judge once none waits.
    // (Tasks not final may rightly stay: a child spawned without waiting can outlive its root.)
    const awaitingFollowUp = () =>
      stack.deps.tasks.listActiveTasks(500).then((ts) => ts.filter((t) => isTerminalTaskState(t.state)));
    const settleBy = Date.now() + SETTLE_MS;
    let awaiting = await awaitingFollowUp().catch(() => undefined);
    while ((awaiting === undefined || awaiting.length > 0) && Date.now() < settleBy) {
      if (Date.now() - lastSweep > 1_500) {
        lastSweep = Date.now();
        await sweepActiveTasks(stack.deps, stack.launcher, SWEEP).catch(() => undefined);
      }
      await new Promise((r) => setTimeout(r, 300));
      awaiting = await awaitingFollowUp().catch(() => undefined);
    }
    // Judge the final state without injected faults (the checks read through the stack's clients).
    injector.enabled = false;
    const report = await checkInvariants(stack, ctx.roots);
    const left = await awaitingFollowUp();
    if (left.length > 0)
      report.violations.push(
        `final tasks still awaiting their follow-up ${SETTLE_MS / 1000} s after every job ended: ${left
          .map((t) => `${t.jobId}/${t.taskNo} (${t.state})`)
          .join(', ')}`,
      );
    const row: Row = {
      scenario: scenario.name,
      seed,
      report,
      sdkFaults: injector.byKind(),
      sdkCalls: injector.calls.DYNAMODB + injector.calls.SQS + injector.calls.S3,
      chaos: ctx.chaos,
      seconds: Math.round((Date.now() - started) / 100) / 10,
    };
    return row;
  } finally {
    await stack.stop();
  }
}

/** The local launcher's worker processes (private to it; read here to kill workers at random points). */
function workerChildren(stack: FaultStack): SpawnedProcess[] {
  const running = (stack.launcher as unknown as { running: Map<string, { child?: SpawnedProcess }> }).running;
  return [...running.values()].flatMap((s) => (s.child && !s.child.exited ? [s.child] : []));
}

/** The trouble each scenario injects besides SDK faults, as its chaos counters name it (one of them must be non-zero). */
export const CHAOS_KINDS: Record<string, string[]> = {
  'sdk-faults': ['api_503', 'api_lost_response'],
  'worker-crashes': ['worker_kill'],
  duplicates: ['dup_run', 'old_attempt_run', 'extra_aggregate'],
  'dispatcher-killed': ['killed_after_claim', 'handle_write_failed'],
  'emulator-restart': ['emulator_restart'],
};

const ALL = (rate: number): FaultPlan['rates'] => ({ DYNAMODB: rate, SQS: rate, S3: rate });

export const SCENARIOS: Scenario[] = [
  {
    name: 'sdk-faults',
    plan: { rates: ALL(0.15) },
    directive: (rng) => (rng() < 0.3 ? '[[sleep:300]]' : ''),
    // The workers' own API calls fail too: 503 before the API acts, or 502 after it did.
    setup: (ctx) =>
      ctx.stack.enableWorkerApiFaults(0.1, mulberry32(ctx.rng() * 2 ** 32), (k) => bump(ctx, k)),
  },
  {
    name: 'worker-crashes',
    plan: { rates: ALL(0.06) },
    directive: (rng) =>
      pick(rng, ['', '', '[[crash]]', '[[fail_times:1]]', '[[fail_times:2]]', '[[sleep:400]]']),
    tick: async (ctx) => {
      // Kill a worker at a random point of its life (fetching, deciding, running claude, uploading, posting).
      // The first chance is always taken: workers start in ~200 ms, so a short run may see few of them alive.
      if (!ctx.chaos.worker_kill || ctx.rng() < 0.3) {
        const children = workerChildren(ctx.stack);
        if (children.length > 0) {
          pick(ctx.rng, children).kill('SIGKILL');
          bump(ctx, 'worker_kill');
        }
      }
    },
  },
  {
    name: 'duplicates',
    plan: { rates: ALL(0.06) },
    directive: (rng) => pick(rng, ['', '[[fail_times:1]]', '[[sleep:300]]']),
    tick: async (ctx) => {
      const queue = new WorkQueue(ctx.stack.cleanSqs, ctx.stack.queueUrl);
      const tasks = await allTasks(ctx);
      if (tasks.length === 0) return;
      for (let i = 0; i < 3; i++) {
        const t = pick(ctx.rng, tasks);
        const roll = ctx.rng();
        if (roll < 0.4) {
          await queue.send({ type: 'run', jobId: t.jobId, taskNo: t.taskNo, attempt: t.attempt });
          bump(ctx, 'dup_run');
        } else if (roll < 0.6) {
          const old = 1 + Math.floor(ctx.rng() * Math.max(1, t.attempt - 1));
          await queue.send({ type: 'run', jobId: t.jobId, taskNo: t.taskNo, attempt: old });
          bump(ctx, 'old_attempt_run');
        } else {
          // Early (before the last task ends) or duplicate (after): the aggregator must wait or do nothing.
          await queue.send({ type: 'aggregate', jobId: t.jobId });
          bump(ctx, 'extra_aggregate');
        }
      }
    },
  },
  {
    name: 'dispatcher-killed',
    plan: { rates: ALL(0.06) },
    directive: (rng) => pick(rng, ['', '[[sleep:300]]']),
    setup: (ctx) => {
      const tasks = ctx.stack.deps.tasks;
      const claim = tasks.claimTask.bind(tasks);
      // The dispatcher dies right after its claim: nothing after it runs (no launch, no release);
      // the message comes back, finds the task claimed, and only the sweep can repair it.
      tasks.claimTask = async (...args) => {
        const claimed = await claim(...args);
        if (claimed && ctx.rng() < 0.25) {
          bump(ctx, 'killed_after_claim');
          throw new Error('injected: dispatcher killed between claim and launch');
        }
        return claimed;
      };
      // Or the worker started but storing its launch handle failed (DynamoDB errors beyond the SDK's retries).
      const setHandle = tasks.setLaunchHandle.bind(tasks);
      tasks.setLaunchHandle = async (...args) => {
        if (ctx.rng() < 0.12) {
          bump(ctx, 'handle_write_failed');
          throw Object.assign(new Error('injected: storing the launch handle failed'), {
            name: 'InternalServerError',
            $metadata: { httpStatusCode: 500 },
          });
        }
        return setHandle(...args);
      };
    },
  },
  {
    name: 'emulator-restart',
    plan: { rates: ALL(0.05) },
    directive: (rng) => pick(rng, ['', '[[sleep:500]]', '[[fail_times:1]]']),
    tick: async (ctx) => {
      const restarts = ctx.chaos.emulator_restart ?? 0;
      if (restarts >= 2 || ctx.elapsedMs() < 6_000 * (restarts + 1)) return;
      // Objects and DynamoDB survive on disk; the queues' messages do not: count what is lost,
      // which only the sweep can send again (every job still has to end, reports and all).
      const lost =
        (await ctx.stack.queueDepth(ctx.stack.queueUrl).catch(() => 0)) +
        (await ctx.stack.queueDepth(ctx.stack.deadLetterQueueUrl).catch(() => 0));
      await ctx.stack.restartEmulators(500);
      bump(ctx, 'emulator_restart');
      bump(ctx, 'messages_lost', lost);
    },
  },
];

export function printTable(rows: readonly Row[], seed: number): void {
  const header = [
    'scenario',
    'seed',
    'jobs',
    'tasks',
    ...FAULT_KINDS,
    'chaos (other faults)',
    'sdk calls',
    'retries',
    'runs (non-0 exit)',
    'final task states',
    'job states',
    'x-attempt overlaps',
    'poison',
    'anomalies',
    's',
  ];
  const lines = rows.map((r) => [
    r.scenario,
    String(r.seed),
    String(r.report.jobs),
    String(r.report.tasks),
    ...FAULT_KINDS.map((k) => String(r.sdkFaults[k])),
    Object.entries(r.chaos)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ') || '-',
    String(r.sdkCalls),
    String(r.report.retries),
    `${r.report.runs} (${r.report.failedRuns})`,
    Object.entries(r.report.taskStates)
      .map(([k, v]) => `${k}=${v}`)
      .join(' '),
    Object.entries(r.report.jobStates)
      .map(([k, v]) => `${k}=${v}`)
      .join(' '),
    String(r.report.crossAttemptOverlaps.length),
    String(r.report.deadLetters),
    String(r.report.violations.length),
    String(r.seconds),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? '').length)));
  const fmt = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  const out = [fmt(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...lines.map(fmt)];
  const sdk = rows.reduce((n, r) => n + FAULT_KINDS.reduce((m, k) => m + r.sdkFaults[k], 0), 0);
  const chaos = rows.reduce(
    (n, r) => n + Object.entries(r.chaos).reduce((m, [k, v]) => m + (NOT_FAULTS.has(k) ? 0 : v), 0),
    0,
  );
  const crashes = rows.reduce((n, r) => n + r.report.failedRuns, 0);
  out.push(
    '',
    `FAULT_SEED=${seed}: ${sdk} SDK faults + ${chaos} injected deliveries/kills/restarts + ${crashes} failed claude runs = ${sdk + chaos + crashes} faults; anomalies: ${rows.reduce((n, r) => n + r.report.violations.length, 0)}`,
  );
  for (const r of rows) {
    for (const v of r.report.violations) out.push(`  [${r.scenario}] VIOLATION ${v}`);
    for (const v of r.report.crossAttemptOverlaps) out.push(`  [${r.scenario}] note: ${v}`);
  }
  console.log(out.join('\n'));
}

/** Faults a set of runs injected: SDK faults and the rest (deliveries, kills, restarts, failed runs). */
export function faultTotals(rows: readonly Row[]): { sdk: number; other: number } {
  const sdk = rows.reduce((n, r) => n + FAULT_KINDS.reduce((m, k) => m + r.sdkFaults[k], 0), 0);
  const other = rows.reduce(
    (n, r) =>
      n +
      r.report.failedRuns +
      Object.entries(r.chaos).reduce((m, [k, v]) => m + (NOT_FAULTS.has(k) ? 0 : v), 0),
    0,
  );
  return { sdk, other };
}

/**
 * Every kind of trouble of the scenarios above at once, for the fast variant:
 * SDK faults, faulty worker API calls, crashing and killed workers, duplicate
 * and stale deliveries, a dispatcher dying after its claim, and emulator restarts.
 */
export function allKinds(): Scenario {
  const named = (name: string) => SCENARIOS.find((s) => s.name === name) as Scenario;
  const parts = ['sdk-faults', 'worker-crashes', 'duplicates', 'dispatcher-killed', 'emulator-restart'].map(
    named,
  );
  return {
    name: 'all-kinds',
    plan: { rates: ALL(0.1) },
    directive: (rng) => pick(rng, ['', '[[crash]]', '[[fail_times:1]]', '[[sleep:300]]']),
    setup: async (ctx) => {
      for (const p of parts) await p.setup?.(ctx);
    },
    tick: async (ctx) => {
      for (const p of parts) await p.tick?.(ctx).catch(() => undefined);
    },
  };
}
