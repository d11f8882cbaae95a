/**
 * `npm run test:load`: the whole local stack under load, with the `claude`
 * test double taking small random times.
 *
 *   A. LOAD_JOBS (200) jobs of LOAD_TASKS_PER_JOB (2) given tasks, all submitted at once through the API;
 *   B. one job tree through recursion, LOAD_TREE=10x10x10 (root tasks x children x grandchildren).
 *
 * Checks: every job terminal `completed`, every task's result exactly once in
 * its root's result.json, every task ran exactly once (the double's invocation
 * log, mapped to tasks through the worker's cwd). Prints wall time, tasks/s,
 * the orchestrator's peak RSS and the worker processes started; exits 1 on any
 * violation. Every wait is bounded (LOAD_TIMEOUT_S).
 *
 * Other knobs: LOAD_CONCURRENCY (local worker processes at once), LOAD_SLEEP_MAX_MS,
 * LOAD_TREE=0 or LOAD_JOBS=0 to skip a phase, LOAD_OUT (JSON summary file).
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resultJsonKey } from '../functions/core/layout.ts';
import type { JobRecord, TaskRecord } from '../functions/core/model.ts';
import { startTestStack, type TestStack } from '../test/support/harness.ts';
import {
  apiCall,
  byService,
  CallCounter,
  countLaunches,
  invocationTask,
  percentile,
  readInvocations,
  sideStores,
  sleep,
  startRssSampler,
  table,
  waitForJobs,
} from './common.ts';

const env = process.env;
const int = (v: string | undefined, d: number) => (v && Number.isFinite(Number(v)) ? Number(v) : d);
const JOBS = int(env.LOAD_JOBS, 200);
const TASKS_PER_JOB = int(env.LOAD_TASKS_PER_JOB, 2);
const TREE =
  (env.LOAD_TREE ?? '10x10x10') === '0' ? [] : (env.LOAD_TREE ?? '10x10x10').split('x').map(Number);
const CONCURRENCY = int(env.LOAD_CONCURRENCY, 4);
const SLEEP_MAX_MS = int(env.LOAD_SLEEP_MAX_MS, 200);
const TIMEOUT_MS = int(env.LOAD_TIMEOUT_S, 1800) * 1000;
const OUT = env.LOAD_OUT ?? fileURLToPath(new URL('./results/load.json', import.meta.url));

if (TREE.length > 3 || TREE.some((n) => !Number.isInteger(n) || n < 1 || n > 100)) {
  throw new Error(`LOAD_TREE must be 1 to 3 sizes like 10x10x10, not ${env.LOAD_TREE}`);
}

const rand = (max: number) => Math.floor(Math.random() * (max + 1));

export interface PhaseResult {
  phase: string;
  jobs: number;
  tasks: number;
  leafTasks: number;
  wallS: number;
  tasksPerS: number;
  workerProcesses: number;
  claudeRuns: number;
  peakRssMb: number;
  orchestratorCpuS: number;
  machineBusyPct: number;
  /** CPU seconds of the orchestrator and its worker processes, per task. */
  cpuPerTaskS: number;
  violations: string[];
  retries: number;
  /** Each earlier attempt of a retried task: `<job>/<task> a<n> <state>: <error>`. */
  retriedBecause: string[];
  submitP50Ms?: number;
  submitP99Ms?: number;
  awsCalls: Record<string, number>;
  /** Calls per operation (`DYNAMODB.UpdateItem`), most first. */
  awsCallsByOperation: Record<string, number>;
}

/** Busy share of all CPUs between two reads of /proc/stat (NaN without /proc). */
async function cpuTimes(): Promise<{ busy: number; total: number } | undefined> {
  const text = await readFile('/proc/stat', 'utf8').catch(() => undefined);
  const line = text?.split('\n')[0];
  if (!line) return undefined;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  const total = v.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

/** CPU seconds of this process and of its reaped children (worker processes, and the doubles they reaped). */
async function treeCpuS(): Promise<number> {
  const text = await readFile('/proc/self/stat', 'utf8').catch(() => undefined);
  if (!text) return Number.NaN;
  const f = text
    .slice(text.lastIndexOf(')') + 2)
    .split(' ')
    .map(Number);
  // Fields 14-17 of stat (utime stime cutime cstime) are 11-14 after the command.
  const ticks = (f[11] ?? 0) + (f[12] ?? 0) + (f[13] ?? 0) + (f[14] ?? 0);
  return ticks / 100;
}

interface Expected {
  /** `${jobId}/${taskNo}` → whether it is a leaf (does the work itself). */
  tasks: Map<string, { leaf: boolean }>;
}

async function verify(
  stack: TestStack,
  rootIds: readonly string[],
  expectedJobs: number,
  expectedTasks: number,
  since: number,
): Promise<{
  violations: string[];
  retries: number;
  retriedBecause: string[];
  claudeRuns: number;
  leafTasks: number;
  jobs: number;
}> {
  const side = sideStores(stack);
  const violations: string[] = [];
  const expected: Expected = { tasks: new Map() };
  // Why each retried task's earlier attempts ended: a retry is allowed, but the report says why.
  const retriedBecause: string[] = [];
  let jobs = 0;
  for (const rootId of rootIds) {
    const jobList: JobRecord[] = [
      (await side.jobs.getJob(rootId)) as JobRecord,
      ...(await side.jobs.listDescendants(rootId)),
    ];
    jobs += jobList.length;
    const tasks: TaskRecord[] = [];
    for (const job of jobList) {
      if (job.status !== 'completed')
        violations.push(`job ${job.jobId} (depth ${job.depth}) is ${job.status}`);
      tasks.push(...(await side.tasks.listTasks(job.jobId)));
    }
    for (const t of tasks) {
      for (const a of t.attempts.filter((a) => a.attempt < t.attempt))
        retriedBecause.push(
          `${t.jobId}/${t.taskNo} a${a.attempt} ${a.state}: ${(a.error ?? '').slice(0, 160)}`,
        );
      const leaf = t.childJobId === undefined;
      expected.tasks.set(`${t.jobId}/${t.taskNo}`, { leaf });
      const want = leaf ? 'succeeded' : 'recursive_success';
      if (t.state !== want) violations.push(`task ${t.jobId}/${t.taskNo} is ${t.state}, not ${want}`);
    }
    const text = await stack.deps.artifacts.getText(resultJsonKey(rootId));
    if (!text) {
      violations.push(`root ${rootId}: no result.json`);
      continue;
    }
    const result = JSON.parse(text) as {
      status: string;
      results: { tasks: { job_id: string; task_no: number; status: string; output: string }[] };
    };
    if (result.status !== 'completed') violations.push(`root ${rootId}: result.json says ${result.status}`);
    const seen = new Map<string, number>();
    for (const v of result.results.tasks) {
      const k = `${v.job_id}/${v.task_no}`;
      seen.set(k, (seen.get(k) ?? 0) + 1);
      if (!expected.tasks.has(k)) violations.push(`result.json of ${rootId} lists unknown task ${k}`);
      else if (expected.tasks.get(k)?.leaf && !v.output.startsWith('Completed:'))
        violations.push(`result of ${k} has no output: ${v.output.slice(0, 80)}`);
    }
    for (const t of tasks) {
      const n = seen.get(`${t.jobId}/${t.taskNo}`) ?? 0;
      if (n !== 1) violations.push(`task ${t.jobId}/${t.taskNo} appears ${n} times in result.json`);
    }
  }
  if (jobs !== expectedJobs) violations.push(`${jobs} jobs found, ${expectedJobs} expected`);
  if (expected.tasks.size !== expectedTasks)
    violations.push(`${expected.tasks.size} tasks found, ${expectedTasks} expected`);

  // Each task ran once: one work run per leaf, one decide run and no work run per split task, attempt 1 only.
  const runs = (await readInvocations(stack.invocationLog)).filter((i) => i.start >= since);
  const work = new Map<string, number>();
  const decide = new Map<string, number>();
  let retries = 0;
  let claudeRuns = 0;
  for (const inv of runs) {
    const t = invocationTask(inv);
    if (!t) continue;
    const k = `${t.jobId}/${t.taskNo}`;
    if (!expected.tasks.has(k)) continue; // another phase's task
    claudeRuns += 1;
    if (t.attempt > 1) retries += 1;
    if (inv.exitCode !== 0) violations.push(`run of ${k} a${t.attempt} exited ${inv.exitCode}`);
    const m = t.decide ? decide : work;
    m.set(k, (m.get(k) ?? 0) + 1);
  }
  let leafTasks = 0;
  for (const [k, { leaf }] of expected.tasks) {
    if (leaf) leafTasks += 1;
    const w = work.get(k) ?? 0;
    const d = decide.get(k) ?? 0;
    if (leaf && w !== 1) violations.push(`leaf task ${k} ran ${w} times`);
    if (!leaf && (w !== 0 || d !== 1)) violations.push(`split task ${k}: ${d} decide runs, ${w} work runs`);
    if (leaf && d > 1) violations.push(`leaf task ${k}: ${d} decide runs`);
  }
  return { violations, retries, retriedBecause, claudeRuns, leafTasks, jobs };
}

async function runPhase(
  stack: TestStack,
  counter: CallCounter,
  launches: { count(): number },
  phase: string,
  submit: () => Promise<{ rootIds: string[]; submitMs: number[] }>,
  expectedJobs: number,
  expectedTasks: number,
): Promise<PhaseResult> {
  const side = sideStores(stack);
  const rss = startRssSampler();
  const calls0 = counter.snapshot();
  const launches0 = launches.count();
  const cpu0 = process.cpuUsage();
  const machine0 = await cpuTimes();
  const tree0 = await treeCpuS();
  const since = Date.now();
  const t0 = performance.now();
  const progress = setInterval(() => {
    console.log(
      `  [${phase}] ${((performance.now() - t0) / 1000).toFixed(0)} s: ${launches.count() - launches0} workers launched, ${stack.launcher.active} alive, rss ${rss.peakMb().toFixed(0)} MB peak`,
    );
  }, 15_000);
  try {
    const { rootIds, submitMs } = await submit();
    await waitForJobs(side.jobs, rootIds, TIMEOUT_MS - (performance.now() - t0));
    const wallS = (performance.now() - t0) / 1000;
    clearInterval(progress);
    const peakRssMb = rss.stop();
    const cpu = process.cpuUsage(cpu0);
    const machine1 = await cpuTimes();
    const workerProcesses = launches.count() - launches0;
    const callsSince = counter.since(calls0);
    const awsCalls = byService(callsSince);
    const awsCallsByOperation = Object.fromEntries([...callsSince].sort((a, b) => b[1] - a[1]));
    // Let the last worker processes exit so their invocation lines are written.
    for (let i = 0; i < 50 && stack.launcher.active > 0; i++) await sleep(100);
    const treeCpu = (await treeCpuS()) - tree0;
    const v = await verify(stack, rootIds, expectedJobs, expectedTasks, since);
    return {
      phase,
      jobs: v.jobs,
      tasks: expectedTasks,
      leafTasks: v.leafTasks,
      wallS,
      tasksPerS: expectedTasks / wallS,
      workerProcesses,
      claudeRuns: v.claudeRuns,
      peakRssMb,
      orchestratorCpuS: (cpu.user + cpu.system) / 1e6,
      machineBusyPct:
        machine0 && machine1
          ? (100 * (machine1.busy - machine0.busy)) / Math.max(1, machine1.total - machine0.total)
          : Number.NaN,
      cpuPerTaskS: treeCpu / expectedTasks,
      violations: v.violations,
      retries: v.retries,
      retriedBecause: v.retriedBecause,
      ...(submitMs.length > 1
        ? { submitP50Ms: percentile(submitMs, 50), submitP99Ms: percentile(submitMs, 99) }
        : {}),
      awsCalls,
      awsCallsByOperation,
    };
  } finally {
    clearInterval(progress);
    rss.stop();
  }
}

async function submitJobs(stack: TestStack): Promise<{ rootIds: string[]; submitMs: number[] }> {
  const submitMs: number[] = [];
  const ids = await Promise.all(
    Array.from({ length: JOBS }, async (_, i) => {
      const t = performance.now();
      const res = await apiCall(stack, 'POST', '/api/v1/orchestrate', {
        request: `load job ${i}`,
        config: { enable_recursion: false },
        tasks: Array.from({ length: TASKS_PER_JOB }, (_, k) => ({
          title: `job ${i} task ${k + 1}`,
          prompt: `job ${i} task ${k + 1} [[sleep:${rand(SLEEP_MAX_MS)}]]`,
        })),
      });
      submitMs.push(performance.now() - t);
      if (res.status !== 202) throw new Error(`submit ${i}: ${res.status} ${JSON.stringify(res.json)}`);
      return res.json.job_id as string;
    }),
  );
  return { rootIds: ids, submitMs };
}

/** The root's given tasks: each splits into TREE[1] children whose TREE[2] children sleep a random time. */
function treeTasks(): { title: string; prompt: string }[] {
  const [a = 1, b, c] = TREE;
  return Array.from({ length: a }, (_, i) => {
    let directives: string;
    if (b === undefined) directives = `[[sleep:${rand(SLEEP_MAX_MS)}]]`;
    else if (c === undefined)
      directives = `[[split:${b}]] ${Array.from({ length: b }, (_, k) => `[[split_child:${k + 1}:sleep:${rand(SLEEP_MAX_MS)}]]`).join(' ')}`;
    else
      directives = `[[split:${b}]] [[split_all:split:${c};${Array.from({ length: c }, (_, k) => `split_child:${k + 1}:sleep:${rand(SLEEP_MAX_MS)}`).join(';')}]]`;
    return { title: `branch ${i + 1}`, prompt: `branch ${i + 1} ${directives}` };
  });
}

async function submitTree(stack: TestStack): Promise<{ rootIds: string[]; submitMs: number[] }> {
  const t = performance.now();
  const res = await apiCall(stack, 'POST', '/api/v1/orchestrate', {
    request: `load tree ${TREE.join('x')}`,
    config: {
      enable_recursion: true,
      max_recursion_depth: Math.max(0, TREE.length - 1),
      max_workers: Math.max(...TREE),
      max_budget_usd: 1000,
    },
    tasks: treeTasks(),
  });
  if (res.status !== 202) throw new Error(`tree submit: ${res.status} ${JSON.stringify(res.json)}`);
  return { rootIds: [res.json.job_id as string], submitMs: [performance.now() - t] };
}

async function main(): Promise<void> {
  const treeTotal = TREE.reduce((sum, _, i) => sum + TREE.slice(0, i + 1).reduce((p, n) => p * n, 1), 0);
  const treeJobs =
    1 + TREE.slice(0, -1).reduce((sum, _, i) => sum + TREE.slice(0, i + 1).reduce((p, n) => p * n, 1), 0);
  const config = [
    `workers: {max_workers: ${CONCURRENCY}, max_retries: 2, default_timeout: 600}`,
    'recursion: {enable: true, max_depth: 2}',
    `limits: {max_workers_per_job: ${Math.max(10, TASKS_PER_JOB, ...TREE)}, max_tasks_per_root: ${Math.max(1200, treeTotal)}, max_spend_usd_per_root: 1000, max_task_budget_usd: 0.5}`,
  ].join('\n');
  console.log(
    `load: ${JOBS} jobs x ${TASKS_PER_JOB} tasks, tree ${TREE.join('x') || 'none'} (${treeTotal} tasks), ${CONCURRENCY} worker processes at once, double sleeps 0-${SLEEP_MAX_MS} ms`,
  );
  const counter = new CallCounter();
  const started = performance.now();
  const rssAll = startRssSampler();
  const stack = await startTestStack(config, {}, { clientOptions: { instrument: counter.instrument } });
  const launches = countLaunches(stack);
  const results: PhaseResult[] = [];
  let failed = false;
  try {
    if (JOBS > 0) {
      results.push(
        await runPhase(
          stack,
          counter,
          launches,
          `${JOBS} jobs x ${TASKS_PER_JOB}`,
          () => submitJobs(stack),
          JOBS,
          JOBS * TASKS_PER_JOB,
        ),
      );
    }
    if (TREE.length > 0) {
      results.push(
        await runPhase(
          stack,
          counter,
          launches,
          `tree ${TREE.join('x')}`,
          () => submitTree(stack),
          treeJobs,
          treeTotal,
        ),
      );
    }
  } catch (err) {
    failed = true;
    console.error(`load FAILED: ${(err as Error).message}`);
  } finally {
    await stack.stop();
  }
  const peakAll = rssAll.stop();

  console.log('');
  console.log(
    table(
      [
        'phase',
        'jobs',
        'tasks',
        'leaf tasks',
        'wall s',
        'tasks/s',
        'worker procs',
        'claude runs',
        'retries',
        'peak RSS MB',
        'orch CPU s',
        'machine busy',
        'CPU s/task',
        'submit p50/p99 ms',
        'AWS calls D/Q/S',
        'violations',
      ],
      results.map((r) => [
        r.phase,
        r.jobs,
        r.tasks,
        r.leafTasks,
        r.wallS.toFixed(1),
        r.tasksPerS.toFixed(2),
        r.workerProcesses,
        r.claudeRuns,
        r.retries,
        r.peakRssMb.toFixed(0),
        r.orchestratorCpuS.toFixed(1),
        `${r.machineBusyPct.toFixed(0)}%`,
        r.cpuPerTaskS.toFixed(2),
        r.submitP50Ms !== undefined ? `${r.submitP50Ms.toFixed(0)}/${(r.submitP99Ms ?? 0).toFixed(0)}` : '-',
        `${r.awsCalls.DYNAMODB}/${r.awsCalls.SQS}/${r.awsCalls.S3}`,
        r.violations.length,
      ]),
    ),
  );
  console.log(
    `total ${((performance.now() - started) / 1000).toFixed(1)} s, orchestrator peak RSS ${peakAll.toFixed(0)} MB (includes the embedded emulators), ${launches.count()} worker processes started, ${CONCURRENCY} at once, ${(await import('node:os')).cpus().length} CPUs`,
  );
  for (const r of results) {
    const top = Object.entries(r.awsCallsByOperation).slice(0, 8);
    console.log(
      `  [${r.phase}] calls per task: ${top.map(([k, n]) => `${k} ${(n / r.tasks).toFixed(1)}`).join(', ')}`,
    );
    for (const why of r.retriedBecause.slice(0, 10)) console.log(`  retried [${r.phase}] ${why}`);
    for (const v of r.violations.slice(0, 20)) console.log(`  VIOLATION [${r.phase}] ${v}`);
    if (r.violations.length > 20) console.log(`  ... and ${r.violations.length - 20} more`);
  }
  await mkdir(dirname(OUT), { recursive: true });
  await writeFile(
    OUT,
    `${JSON.stringify({ at: new Date().toISOString(), concurrency: CONCURRENCY, peakRssMb: peakAll, results }, null, 2)}\n`,
  );
  const ok = !failed && results.every((r) => r.violations.length === 0);
  console.log(ok ? 'load: OK, zero lost or duplicated results' : 'load: FAILED');
  process.exit(ok ? 0 : 1);
}

await main();
