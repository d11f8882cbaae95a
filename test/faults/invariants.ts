/**
 * What must hold after a fault scenario, checked against the store, the
 * queues, S3 and the test double's invocation log:
 * - every job (roots and their descendants) is terminal, and so is every task of it;
 * - each job's counters equal its task states: `totalTasks` == number of work tasks and
 *   the `finishedTasks` set == the work tasks in a final state (for a cancelled job, a subset:
 *   cancelling ends its tasks without counting them, since nothing waits for the count);
 * - no attempt of a task ran twice at the same time (runs mapped to attempts through their cwd
 *   `task-<jobId>-<taskNo>-a<attempt>-…`, see container/worker.ts);
 * - every finished root has FINAL_RESULT.md, result.json and a LEVEL_N_REPORT.md per depth, and
 *   result.json lists every work task of the tree with its final state;
 * - nothing is left in the work queue, and the dead-letter queue holds only messages whose task or
 *   job is already final (the dead-letter consumer handled them).
 */
import { ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { finalReportKey, levelReportKey, resultJsonKey } from '../../functions/core/layout.ts';
import type { JobRecord, TaskRecord } from '../../functions/core/model.ts';
import { isTerminalJobStatus, isTerminalTaskState } from '../../functions/core/task-states.ts';
import type { DoubleInvocation } from '../support/harness.ts';
import type { FaultStack, QueueCounts } from './fault-stack.ts';

export interface InvariantReport {
  violations: string[];
  jobs: number;
  tasks: number;
  /** Attempts beyond the first, over every task (planners included). */
  retries: number;
  /** Final states of work tasks, and of jobs. */
  taskStates: Record<string, number>;
  jobStates: Record<string, number>;
  /** Runs of different attempts of one task that overlapped (a lost attempt's process still running). */
  crossAttemptOverlaps: string[];
  /** Invocations of the test double, and those that did not exit 0. */
  runs: number;
  failedRuns: number;
  deadLetters: number;
}

export interface InvariantOptions {
  /** How long to wait for the work queue to drain. */
  drainMs?: number;
}

const CWD_RE = /task-(.+)-(\d+)-a(\d+)-[^-/]+$/;

export async function checkInvariants(
  stack: FaultStack,
  rootJobIds: readonly string[],
  options: InvariantOptions = {},
): Promise<InvariantReport> {
  const violations: string[] = [];
  const jobs: JobRecord[] = [];
  for (const rootId of rootJobIds) {
    const root = await stack.deps.jobs.getJob(rootId);
    if (!root) {
      violations.push(`root ${rootId} is missing`);
      continue;
    }
    jobs.push(root, ...(await stack.deps.jobs.listDescendants(rootId)));
  }
  const tasksByJob = new Map<string, TaskRecord[]>();
  for (const job of jobs) tasksByJob.set(job.jobId, await stack.deps.tasks.listTasks(job.jobId));

  const report: InvariantReport = {
    violations,
    jobs: jobs.length,
    tasks: 0,
    retries: 0,
    taskStates: {},
    jobStates: {},
    crossAttemptOverlaps: [],
    runs: 0,
    failedRuns: 0,
    deadLetters: 0,
  };

  // 1-2. terminal states and counters
  for (const job of jobs) {
    const tasks = tasksByJob.get(job.jobId) ?? [];
    const work = tasks.filter((t) => t.kind === 'work');
    report.jobStates[job.status] = (report.jobStates[job.status] ?? 0) + 1;
    report.tasks += tasks.length;
    for (const t of tasks) {
      report.retries += Math.max(0, t.attempt - 1);
      if (t.kind === 'work') report.taskStates[t.state] = (report.taskStates[t.state] ?? 0) + 1;
    }
    const where = `job ${job.jobId} (depth ${job.depth})`;
    if (!isTerminalJobStatus(job.status)) {
      const detail = tasks
        .map(
          (t) =>
            `${t.taskNo}:${t.kind}:${t.state}:a${t.attempt}${t.result?.error ? `(${t.result.error.slice(0, 80)})` : ''}`,
        )
        .join(' ');
      const lines = stack.logs
        .filter((l) => l.extra?.jobId === job.jobId && l.level !== 'INFO')
        .slice(-4)
        .map((l) => `${l.message} ${JSON.stringify(l.extra)}`);
      violations.push(
        `${where} is not terminal: ${job.status}; tasks ${detail}; last warnings: ${lines.join(' | ')}`,
      );
    }
    for (const t of tasks) {
      if (!isTerminalTaskState(t.state))
        violations.push(`${where} task ${t.taskNo} is not terminal: ${t.state} (attempt ${t.attempt})`);
    }
    if (job.totalTasks !== work.length)
      violations.push(`${where} totalTasks ${job.totalTasks} != ${work.length} work tasks`);
    const finished = new Set(job.finishedTasks);
    const final = new Set(work.filter((t) => isTerminalTaskState(t.state)).map((t) => t.taskNo));
    if (finished.size !== job.finishedTasks.length)
      violations.push(`${where} finishedTasks has duplicates: ${job.finishedTasks.join(',')}`);
    const missing = [...final].filter((n) => !finished.has(n));
    const extra = [...finished].filter((n) => !final.has(n));
    if ((missing.length > 0 && job.status !== 'cancelled') || extra.length > 0)
      violations.push(
        `${where} finishedTasks [${[...finished].sort().join(',')}] != final work tasks [${[...final].sort().join(',')}]`,
      );
  }

  // 3. no attempt ran twice at the same time
  const runs = dedupeRuns(await stack.invocations());
  report.runs = runs.length;
  report.failedRuns = runs.filter((r) => r.exitCode !== 0).length;
  const byTask = new Map<string, { attempt: number; run: DoubleInvocation }[]>();
  for (const run of runs) {
    const m = CWD_RE.exec(run.cwd);
    if (!m) continue;
    const key = `${m[1]}/${m[2]}`;
    const list = byTask.get(key) ?? [];
    list.push({ attempt: Number(m[3]), run });
    byTask.set(key, list);
  }
  for (const [task, list] of byTask) {
    list.sort((a, b) => a.run.start - b.run.start);
    for (let i = 0; i < list.length; i++) {
      for (let j = i + 1; j < list.length; j++) {
        const a = list[i] as (typeof list)[number];
        const b = list[j] as (typeof list)[number];
        if (b.run.start >= (a.run.end ?? Number.POSITIVE_INFINITY)) continue;
        const what = `task ${task}: attempt ${a.attempt} (pid ${a.run.pid}, ${a.run.start}-${a.run.end}) overlaps attempt ${b.attempt} (pid ${b.run.pid}, ${b.run.start}-${b.run.end})`;
        if (a.attempt === b.attempt) violations.push(`same attempt ran twice at once: ${what}`);
        else report.crossAttemptOverlaps.push(what);
      }
    }
  }

  // 4. reports of finished roots
  for (const rootId of rootJobIds) {
    const root = jobs.find((j) => j.jobId === rootId);
    if (!root || !isTerminalJobStatus(root.status)) continue;
    const tree = jobs.filter((j) => j.rootJobId === rootId);
    const keys = [
      finalReportKey(rootId),
      resultJsonKey(rootId),
      ...[...new Set(tree.map((j) => j.depth))].map((d) => levelReportKey(rootId, d)),
    ];
    for (const key of keys) {
      if ((await stack.deps.artifacts.getBytes(key)) === undefined)
        violations.push(`root ${rootId}: report ${key} missing`);
    }
    const text = await stack.deps.artifacts.getText(resultJsonKey(rootId));
    if (!text) continue;
    const result = JSON.parse(text) as {
      status: string;
      results: { tasks: { job_id: string; task_no: number; status: string }[] };
    };
    if (result.status !== root.status)
      violations.push(`root ${rootId}: result.json status ${result.status} != job status ${root.status}`);
    const listed = new Map(result.results.tasks.map((t) => [`${t.job_id}/${t.task_no}`, t.status]));
    for (const job of tree) {
      for (const t of tasksByJob.get(job.jobId) ?? []) {
        if (t.kind !== 'work' || !isTerminalTaskState(t.state)) continue;
        const status = listed.get(`${t.jobId}/${t.taskNo}`);
        if (status === undefined)
          violations.push(`root ${rootId}: result.json lacks task ${t.jobId}/${t.taskNo} (${t.state})`);
        else if (status !== t.state)
          violations.push(
            `root ${rootId}: result.json says task ${t.jobId}/${t.taskNo} is ${status}, the store ${t.state}`,
          );
      }
    }
  }

  // 5. queues: the work queue drains; the DLQ holds only messages whose task or job is final.
  // A received message whose delete failed past its retries stays in flight until its visibility
  // timeout ends, then comes back and is dropped as stale: one in flight gets that long (and must
  // still go then); the others must go within drainMs.
  const drainStart = Date.now();
  const drainMs = options.drainMs ?? 20_000;
  const drainBy = (c: QueueCounts) =>
    drainStart + (c.inFlight > 0 ? Math.max(drainMs, (c.visibilityTimeoutSec + 5) * 1000) : drainMs);
  const left = (c: QueueCounts) => c.visible + c.inFlight + c.delayed;
  let counts = await stack.queueCounts(stack.queueUrl);
  while (left(counts) > 0 && Date.now() < drainBy(counts)) {
    await new Promise((r) => setTimeout(r, 500));
    counts = await stack.queueCounts(stack.queueUrl);
  }
  if (left(counts) > 0) {
    const pollerTrouble = stack.logs
      .filter((l) => /^(queue poll failed|batch failed)/.test(l.message))
      .slice(-3)
      .map((l) => `${l.message}: ${String(l.extra?.error ?? '')}`);
    violations.push(
      `work queue still holds ${left(counts)} messages (${counts.visible} visible, ${counts.inFlight} in flight, ${counts.delayed} delayed)` +
        (pollerTrouble.length > 0 ? `; the poller's last troubles: ${pollerTrouble.join(' | ')}` : ''),
    );
  }
  const dlq = await stack.queueDepth(stack.deadLetterQueueUrl);
  report.deadLetters = stack.logs.filter((l) => l.message.startsWith('poison')).length;
  if (dlq > 0) {
    const out = await stack.cleanSqs.send(
      new ReceiveMessageCommand({
        QueueUrl: stack.deadLetterQueueUrl,
        MaxNumberOfMessages: 10,
        VisibilityTimeout: 0,
      }),
    );
    for (const m of out.Messages ?? []) {
      const body = JSON.parse(m.Body ?? '{}') as { type: string; jobId: string; taskNo?: number };
      const job = await stack.deps.jobs.getJob(body.jobId);
      const task =
        body.taskNo !== undefined ? await stack.deps.tasks.getTask(body.jobId, body.taskNo) : undefined;
      const settled =
        body.type === 'run'
          ? task && isTerminalTaskState(task.state)
          : job && isTerminalJobStatus(job.status);
      if (!settled) violations.push(`dead-letter queue holds an unhandled ${m.Body}`);
    }
  }
  return report;
}

/** Hang modes log a start line (end null) and may log again at exit: keep one line per process. */
function dedupeRuns(runs: DoubleInvocation[]): DoubleInvocation[] {
  const ended = new Set(runs.filter((r) => r.end !== null).map((r) => r.pid));
  return runs.filter((r) => r.end !== null || !ended.has(r.pid));
}
