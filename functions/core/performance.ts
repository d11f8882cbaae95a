/**
 * How a job tree spent its time and resources: the `performance` part of
 * `result.json` and the Performance section of FINAL_RESULT.md. Pure: every
 * number comes from the task records, and "now" from the caller.
 *
 * - **Timeline**: one entry per attempt (every attempt made, plus the attempt a
 *   task is queued or running in now): queued -> launched -> running ->
 *   finished, as ISO times and as ms offsets from the root job's creation.
 *   Attempt 1 is queued when its task is created, attempt n when attempt n-1
 *   ended. A time the records do not hold is left out, never guessed.
 * - **Parallel efficiency**: busy worker time (running -> finished, summed over
 *   every attempt) divided by wall time x the root's max_workers. Child jobs
 *   have slots of their own, so a recursive tree can go above 1.
 * - **Critical path**: walked backwards from the root's end: the task that
 *   ended last, its attempts (earlier attempts of it count as retries), what
 *   it was created after (its planner, the workers before a merge, the merge
 *   before a push), and through a hand-off into the child job that finished
 *   the parent's task and back up to the parent attempt that created it. Every
 *   millisecond of the wall time lands in exactly one bucket; gaps between
 *   steps (task creation, aggregation, a child's end reaching its parent) are
 *   `other_ms`.
 */
import { attemptsMade, roundUsd, taskUsage } from './accounting.ts';
import { stepName, workerLogKey } from './layout.ts';
import type { AttemptRecord, JobRecord, TaskKind, TaskRecord, TokenUsage } from './model.ts';
import { isTerminalJobStatus, isTerminalTaskState, type TaskState } from './task-states.ts';

export interface AttemptTimeline {
  /** `worker_2_1`, `planner`, `merge_2`: who ran the attempt. */
  worker_id: string;
  job_id: string;
  task_no: number;
  kind: TaskKind;
  depth: number;
  attempt: number;
  /** How the attempt ended, or the task's state while it lasts. */
  status: TaskState;
  queued_at: string;
  launched_at?: string;
  running_at?: string;
  /** Absent while the attempt lasts. */
  finished_at?: string;
  queued_ms: number;
  launched_ms?: number;
  running_ms?: number;
  finished_ms?: number;
  /** Part of the queueing spent waiting for the tree's spend budget. */
  budget_wait_ms?: number;
  /** A hand-off attempt: the child job that took the subtask over. */
  child_job_id?: string;
  log_key: string;
  /** The worker ended the attempt itself (result or hand-off), so it uploaded the attempt's log first. */
  reported: boolean;
  on_critical_path: boolean;
}

export interface EfficiencyView {
  /** Running -> finished, summed over every attempt (an attempt still running counts until now). */
  busy_ms: number;
  wall_time_ms: number;
  /** The root job's max_workers. */
  max_workers: number;
  /** busy / (wall x max_workers), to 3 decimals; null while the wall time is 0. */
  parallel_efficiency: number | null;
  /** Most attempts running at the same moment. */
  peak_concurrency: number;
}

/** One attempt on the critical path, and how its time on the path was spent. */
export interface CriticalStep {
  worker_id: string;
  job_id: string;
  depth: number;
  kind: TaskKind;
  attempt: number;
  status: TaskState;
  start_ms: number;
  end_ms: number;
  queue_ms: number;
  budget_wait_ms: number;
  launch_ms: number;
  run_ms: number;
  /** An attempt that a later attempt of the same task replaced: all of its time is retry time. */
  retry: boolean;
}

/** Where the wall time went along the critical path; the parts add up to `total_ms`. */
export interface TimeBreakdown {
  total_ms: number;
  running_ms: number;
  queueing_ms: number;
  budget_wait_ms: number;
  launch_ms: number;
  retries_ms: number;
  other_ms: number;
}

export interface CriticalPathView extends TimeBreakdown {
  /** In time order, the earliest first. */
  steps: CriticalStep[];
}

export interface BottleneckView {
  /** The attempt on the critical path that ran longest. */
  worker_id: string;
  job_id: string;
  attempt: number;
  run_ms: number;
  /** run_ms / wall time, to 3 decimals. */
  share: number;
  /** The largest part of the critical path's time. */
  cause: 'running' | 'queueing' | 'budget_wait' | 'launch' | 'retries' | 'other';
  /** Time lost on the critical path (see TimeBreakdown). */
  lost: { queueing_ms: number; launch_ms: number; retries_ms: number; budget_wait_ms: number };
}

/** What one task used over all of its attempts; token and memory fields only when reported. */
export interface WorkerResources {
  worker_id: string;
  job_id: string;
  kind: TaskKind;
  depth: number;
  attempts: number;
  input_tokens?: number;
  output_tokens?: number;
  /** Cache read plus cache creation. */
  cache_tokens?: number;
  cache_read_tokens?: number;
  cache_creation_tokens?: number;
  cost_usd: number;
  /** Turns summed over the attempts that reported them. */
  turns: number;
  duration_ms: number;
  /** The highest peak any attempt reported. */
  peak_memory_mb?: number;
}

export interface DepthCost {
  depth: number;
  jobs: number;
  /** Every task of the depth's jobs: work tasks, planners and steps. */
  tasks: number;
  attempts: number;
  cost_usd: number;
}

export interface PerformanceView {
  /** The root job's creation: every `_ms` offset counts from here. */
  origin: string;
  wall_time_ms: number;
  timeline: AttemptTimeline[];
  efficiency: EfficiencyView;
  critical_path: CriticalPathView;
  bottleneck?: BottleneckView;
  resources: WorkerResources[];
  cost_by_depth: DepthCost[];
}

/** The nodes of a tree as `buildTreeResult` takes them (tree[0] is the root). */
export interface PerformanceNode {
  job: JobRecord;
  tasks: TaskRecord[];
}

export interface PerformanceInput {
  now: string;
}

/** The times of the attempt a task is on, for its record when it ends (a retry clears the task's own). */
export function attemptTimes(
  task: TaskRecord,
): Pick<AttemptRecord, 'launchedAt' | 'startedAt' | 'budgetWaitMs'> {
  const waited =
    task.budgetWaitAttempt === task.attempt && task.budgetWaitSince && task.budgetWaitUntil
      ? Date.parse(task.budgetWaitUntil) - Date.parse(task.budgetWaitSince)
      : Number.NaN;
  return {
    ...(task.launchedAt !== undefined && { launchedAt: task.launchedAt }),
    ...(task.startedAt !== undefined && { startedAt: task.startedAt }),
    ...(waited >= 0 && { budgetWaitMs: waited }),
  };
}

export function buildPerformance(tree: readonly PerformanceNode[], input: PerformanceInput): PerformanceView {
  const root = tree[0]?.job;
  if (root === undefined) throw new Error('buildPerformance needs at least the root job');
  const origin = Date.parse(root.createdAt);
  const now = Date.parse(input.now) - origin;
  const wall = Math.max(0, jobEnd(root, now, origin));
  const spans = tree.flatMap((node) => node.tasks.map((task) => taskSpan(node.job, task, origin, now)));
  const path = criticalPath(tree, spans, wall, now, origin);
  const onPath = new Set(path.steps.map((s) => `${s.job_id}#${s.worker_id}#${s.attempt}`));
  const timeline = spans.flatMap((s) =>
    s.attempts.map((a) =>
      timelineEntry(s, a, origin, onPath.has(`${s.job.jobId}#${s.workerId}#${a.attempt}`)),
    ),
  );
  const bottleneck = bottleneckOf(path, wall);
  return {
    origin: root.createdAt,
    wall_time_ms: wall,
    timeline,
    efficiency: efficiencyOf(timeline, wall, root.config.maxWorkers, now),
    critical_path: path,
    ...(bottleneck && { bottleneck }),
    resources: spans.filter((s) => s.attempts.length > 0).map(resourcesOf),
    cost_by_depth: costByDepth(tree, spans),
  };
}

/** One attempt, its times as ms offsets from the origin. */
interface Attempt {
  attempt: number;
  status: TaskState;
  queued: number;
  launched?: number | undefined;
  running?: number | undefined;
  finished?: number | undefined;
  budgetWaitMs?: number | undefined;
  childJobId?: string | undefined;
  reported: boolean;
  record?: AttemptRecord | undefined;
}

/** A task with its attempts and when it ended (or `now` while it lasts). */
interface TaskSpan {
  job: JobRecord;
  task: TaskRecord;
  workerId: string;
  created: number;
  end: number;
  attempts: Attempt[];
}

function offset(iso: string | undefined, origin: number): number | undefined {
  if (iso === undefined) return undefined;
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? undefined : ms - origin;
}

function jobEnd(job: JobRecord, now: number, origin: number): number {
  const end = job.finishedAt ?? (isTerminalJobStatus(job.status) ? job.updatedAt : undefined);
  return offset(end, origin) ?? now;
}

function taskSpan(job: JobRecord, task: TaskRecord, origin: number, now: number): TaskSpan {
  const created = offset(task.createdAt, origin) ?? 0;
  const records = [...task.attempts].sort((a, b) => a.attempt - b.attempt);
  const attempts: Attempt[] = [];
  let queued = created;
  for (const record of records) {
    const finished = offset(record.finishedAt, origin);
    attempts.push({
      attempt: record.attempt,
      status: record.state,
      queued,
      launched: offset(record.launchedAt, origin),
      running: offset(record.startedAt, origin),
      finished,
      budgetWaitMs: record.budgetWaitMs,
      ...(record.state === 'waiting_on_child' && { childJobId: task.childJobId }),
      // A record with a result hash ended with the worker's own report; a hand-off record, with its spawn call.
      reported: record.resultHash !== undefined || record.state === 'waiting_on_child',
      record,
    });
    queued = finished ?? queued;
  }
  const current = currentAttempt(task, records, queued, origin, now);
  if (current !== undefined) attempts.push(current);
  const terminal = isTerminalTaskState(task.state);
  const last = attempts.at(-1);
  const end = terminal ? (offset(task.finishedAt, origin) ?? last?.finished ?? now) : now;
  return { job, task, workerId: stepName(task.taskNo, task.jobPath), created, end, attempts };
}

/** The attempt the task is on when no record of it exists yet: queued, launching, running, or ended unrecorded. */
function currentAttempt(
  task: TaskRecord,
  records: readonly AttemptRecord[],
  queued: number,
  origin: number,
  now: number,
): Attempt | undefined {
  if (records.some((r) => r.attempt >= task.attempt)) return undefined;
  const base = { attempt: task.attempt, status: task.state, queued, reported: false };
  switch (task.state) {
    case 'pending':
    case 'queued': {
      // A stale claim may have set launchedAt: a queued attempt has not launched.
      const since = task.waitingFor !== undefined ? offset(task.waitingSince, origin) : undefined;
      return since === undefined ? base : { ...base, budgetWaitMs: Math.max(0, now - since) };
    }
    case 'launching':
      return { ...base, launched: offset(task.launchedAt, origin), ...attemptTimesOf(task) };
    case 'running':
      return {
        ...base,
        launched: offset(task.launchedAt, origin),
        running: offset(task.startedAt, origin),
        ...attemptTimesOf(task),
      };
    default: {
      // Ended without a record: cancelled (counted only if it had started), or a result stored before its record.
      if (task.startedAt === undefined && task.result === undefined) return undefined;
      return {
        ...base,
        launched: offset(task.launchedAt, origin),
        running: offset(task.startedAt, origin),
        finished: offset(task.finishedAt, origin),
        reported: task.result !== undefined && task.state !== 'cancelled',
        ...attemptTimesOf(task),
      };
    }
  }
}

function attemptTimesOf(task: TaskRecord): { budgetWaitMs?: number } {
  const times = attemptTimes(task);
  return times.budgetWaitMs === undefined ? {} : { budgetWaitMs: times.budgetWaitMs };
}

function timelineEntry(span: TaskSpan, a: Attempt, origin: number, critical: boolean): AttemptTimeline {
  const { task } = span;
  const iso = (ms: number) => new Date(origin + ms).toISOString();
  return {
    worker_id: span.workerId,
    job_id: task.jobId,
    task_no: task.taskNo,
    kind: task.kind,
    depth: task.depth,
    attempt: a.attempt,
    status: a.status,
    queued_at: iso(a.queued),
    ...(a.launched !== undefined && { launched_at: iso(a.launched) }),
    ...(a.running !== undefined && { running_at: iso(a.running) }),
    ...(a.finished !== undefined && { finished_at: iso(a.finished) }),
    queued_ms: a.queued,
    ...(a.launched !== undefined && { launched_ms: a.launched }),
    ...(a.running !== undefined && { running_ms: a.running }),
    ...(a.finished !== undefined && { finished_ms: a.finished }),
    ...(a.budgetWaitMs !== undefined && { budget_wait_ms: a.budgetWaitMs }),
    ...(a.childJobId !== undefined && { child_job_id: a.childJobId }),
    log_key: workerLogKey(task.rootJobId, task.depth, task.taskNo, task.jobPath, a.attempt),
    reported: a.reported,
    on_critical_path: critical,
  };
}

function efficiencyOf(
  timeline: readonly AttemptTimeline[],
  wall: number,
  maxWorkers: number,
  now: number,
): EfficiencyView {
  const intervals = timeline
    .filter((t) => t.running_ms !== undefined)
    .map((t) => {
      const start = t.running_ms as number;
      return { start, end: Math.max(start, t.finished_ms ?? now) };
    });
  const busy = intervals.reduce((sum, i) => sum + (i.end - i.start), 0);
  const denominator = wall * maxWorkers;
  return {
    busy_ms: busy,
    wall_time_ms: wall,
    max_workers: maxWorkers,
    parallel_efficiency: denominator > 0 ? Math.round((busy / denominator) * 1000) / 1000 : null,
    peak_concurrency: peakConcurrency(intervals),
  };
}

function peakConcurrency(intervals: readonly { start: number; end: number }[]): number {
  // An attempt that ends as another starts does not overlap it: ends sort before starts.
  const events = intervals
    .flatMap((i) => [
      { at: i.start, delta: 1 },
      { at: i.end, delta: -1 },
    ])
    .sort((a, b) => a.at - b.at || a.delta - b.delta);
  let running = 0;
  let peak = 0;
  for (const e of events) {
    running += e.delta;
    peak = Math.max(peak, running);
  }
  return peak;
}

type Bucket = Exclude<keyof TimeBreakdown, 'total_ms'>;

/** Walks backwards from the end, handing out each millisecond to one bucket exactly once. */
class PathWalker {
  readonly breakdown: TimeBreakdown;
  readonly steps: CriticalStep[] = [];
  private cursor: number;
  /** Bounds the walk whatever the records say (a cycle of hand-offs cannot happen, but must not hang). */
  private budget = 100_000;

  constructor(wall: number) {
    this.cursor = wall;
    this.breakdown = {
      total_ms: wall,
      running_ms: 0,
      queueing_ms: 0,
      budget_wait_ms: 0,
      launch_ms: 0,
      retries_ms: 0,
      other_ms: 0,
    };
  }

  get at(): number {
    return this.cursor;
  }

  /** Everything between `from` and the cursor goes to `bucket`; returns how much that was. */
  take(bucket: Bucket, from: number | undefined): number {
    if (from === undefined) return 0;
    const start = Math.max(0, Math.min(from, this.cursor));
    const ms = this.cursor - start;
    this.breakdown[bucket] += ms;
    this.cursor = start;
    return ms;
  }

  /** Up to `ms` before the cursor, but not before `floor`. */
  takeMs(bucket: Bucket, ms: number, floor: number): number {
    return this.take(bucket, Math.max(floor, this.cursor - ms));
  }

  spend(): boolean {
    this.budget -= 1;
    return this.budget > 0 && this.cursor > 0;
  }

  finish(): CriticalPathView {
    this.take('other_ms', 0);
    return { ...this.breakdown, steps: this.steps.reverse() };
  }
}

function criticalPath(
  tree: readonly PerformanceNode[],
  spans: readonly TaskSpan[],
  wall: number,
  now: number,
  origin: number,
): CriticalPathView {
  const walker = new PathWalker(wall);
  const jobs = new Map(tree.map((n) => [n.job.jobId, n.job]));
  const spansOf = new Map<string, TaskSpan[]>();
  for (const s of spans) spansOf.set(s.job.jobId, [...(spansOf.get(s.job.jobId) ?? []), s]);
  const rootId = tree[0]?.job.jobId;

  const walkJob = (job: JobRecord): void => {
    const own = spansOf.get(job.jobId) ?? [];
    const last = latest(own.filter((s) => s.attempts.length > 0 && s.created <= walker.at));
    if (last === undefined) {
      walkJobStart(job);
      return;
    }
    walker.take('other_ms', last.end);
    walkTask(last);
  };

  const walkTask = (span: TaskSpan): void => {
    if (!walker.spend()) return;
    const final = span.attempts.at(-1);
    const child = final?.childJobId === undefined ? undefined : jobs.get(final.childJobId);
    if (child !== undefined && child.childMode !== 'wait') {
      // The task ended when its child job did: the path goes through the child.
      walker.take('other_ms', jobEnd(child, now, origin));
      walkJob(child);
      return;
    }
    walkAttempts(span, span.attempts.length - 1, false);
  };

  const walkAttempts = (span: TaskSpan, index: number, retry: boolean): void => {
    const a = span.attempts[index];
    if (a === undefined || !walker.spend()) return;
    walker.take('other_ms', a.finished ?? walker.at);
    const end = walker.at;
    const run = walker.take(retry ? 'retries_ms' : 'running_ms', a.running);
    const launch = walker.take(retry ? 'retries_ms' : 'launch_ms', a.launched);
    const floor = Math.max(0, a.queued);
    const budget = a.budgetWaitMs
      ? walker.takeMs(retry ? 'retries_ms' : 'budget_wait_ms', a.budgetWaitMs, floor)
      : 0;
    const queue = walker.take(retry ? 'retries_ms' : 'queueing_ms', a.queued);
    walker.steps.push({
      worker_id: span.workerId,
      job_id: span.job.jobId,
      depth: span.task.depth,
      kind: span.task.kind,
      attempt: a.attempt,
      status: a.status,
      start_ms: walker.at,
      end_ms: end,
      queue_ms: queue,
      budget_wait_ms: budget,
      launch_ms: launch,
      run_ms: run,
      retry,
    });
    if (index > 0) walkAttempts(span, index - 1, true);
    else walkTaskStart(span);
  };

  const walkTaskStart = (span: TaskSpan): void => {
    const before = predecessor(span, spansOf.get(span.job.jobId) ?? [], walker.at);
    if (before !== undefined) {
      walker.take('other_ms', before.end);
      walkTask(before);
      return;
    }
    walker.take('other_ms', offset(span.job.createdAt, origin));
    walkJobStart(span.job);
  };

  const walkJobStart = (job: JobRecord): void => {
    walker.take('other_ms', offset(job.createdAt, origin));
    if (job.jobId === rootId || job.parentJobId === undefined || !walker.spend()) return;
    const parent = (spansOf.get(job.parentJobId) ?? []).find((s) => s.task.taskNo === job.parentTaskNo);
    if (parent === undefined) return;
    // The attempt that created the child: the one named on the job, else the last that ended before it.
    const index = parent.attempts.findIndex((a) =>
      job.parentAttempt !== undefined ? a.attempt === job.parentAttempt : a.childJobId === job.jobId,
    );
    walkAttempts(parent, index >= 0 ? index : parent.attempts.length - 1, false);
  };

  const rootJob = tree[0]?.job;
  if (rootJob !== undefined) walkJob(rootJob);
  return walker.finish();
}

function latest(spans: readonly TaskSpan[]): TaskSpan | undefined {
  let best: TaskSpan | undefined;
  for (const s of spans) {
    if (best === undefined || s.end > best.end || (s.end === best.end && s.task.taskNo > best.task.taskNo))
      best = s;
  }
  return best;
}

/**
 * What a task was created after, within its job: work tasks and the planner
 * wait for the source step, work tasks for their planner, the merge for the
 * last worker that ended before it, the push for the merge.
 */
function predecessor(span: TaskSpan, siblings: readonly TaskSpan[], before: number): TaskSpan | undefined {
  const ran = siblings.filter((s) => s !== span && s.attempts.length > 0 && s.end <= before);
  const ofKind = (kind: TaskKind) => latest(ran.filter((s) => s.task.kind === kind));
  switch (span.task.kind) {
    case 'work':
      return ofKind('plan') ?? ofKind('source');
    case 'plan':
      return ofKind('source');
    case 'merge':
      return ofKind('work');
    case 'push':
      return ofKind('merge');
    default:
      return undefined;
  }
}

/** The parts the critical path's time falls into, in the order the reports list them. */
export function criticalPathParts(path: CriticalPathView): [BottleneckView['cause'], number][] {
  return [
    ['running', path.running_ms],
    ['queueing', path.queueing_ms],
    ['budget_wait', path.budget_wait_ms],
    ['launch', path.launch_ms],
    ['retries', path.retries_ms],
    ['other', path.other_ms],
  ];
}

function bottleneckOf(path: CriticalPathView, wall: number): BottleneckView | undefined {
  let top: CriticalStep | undefined;
  for (const s of path.steps) if (!s.retry && (top === undefined || s.run_ms > top.run_ms)) top = s;
  if (top === undefined) return undefined;
  const cause = criticalPathParts(path).reduce((best, p) => (p[1] > best[1] ? p : best))[0];
  return {
    worker_id: top.worker_id,
    job_id: top.job_id,
    attempt: top.attempt,
    run_ms: top.run_ms,
    share: wall > 0 ? Math.round((top.run_ms / wall) * 1000) / 1000 : 0,
    cause,
    lost: {
      queueing_ms: path.queueing_ms,
      launch_ms: path.launch_ms,
      retries_ms: path.retries_ms,
      budget_wait_ms: path.budget_wait_ms,
    },
  };
}

function resourcesOf(span: TaskSpan): WorkerResources {
  const { task } = span;
  const reports = reportsOf(span);
  const usages = reports.flatMap((r) => (r.usage === undefined ? [] : [r.usage]));
  const peaks = reports.flatMap((r) => (r.peakMemoryMb === undefined ? [] : [r.peakMemoryMb]));
  const tokens = usages.length === 0 ? undefined : sumUsage(usages);
  const { costUsd, durationMs } = taskUsage(task);
  return {
    worker_id: span.workerId,
    job_id: task.jobId,
    kind: task.kind,
    depth: task.depth,
    attempts: attemptsMade(task),
    ...(tokens && {
      input_tokens: tokens.inputTokens,
      output_tokens: tokens.outputTokens,
      cache_tokens: tokens.cacheReadInputTokens + tokens.cacheCreationInputTokens,
      cache_read_tokens: tokens.cacheReadInputTokens,
      cache_creation_tokens: tokens.cacheCreationInputTokens,
    }),
    cost_usd: costUsd,
    turns: reports.reduce((sum, r) => sum + (r.numTurns ?? 0), 0),
    duration_ms: durationMs,
    ...(peaks.length > 0 && { peak_memory_mb: Math.max(...peaks) }),
  };
}

/** What each attempt reported: its record, and the current attempt's result when no record holds it yet. */
function reportsOf(span: TaskSpan): { usage?: TokenUsage; peakMemoryMb?: number; numTurns?: number }[] {
  const { task } = span;
  const reports: { usage?: TokenUsage; peakMemoryMb?: number; numTurns?: number }[] = task.attempts.map(
    (r) => ({
      ...(r.usage && { usage: r.usage }),
      ...(r.peakMemoryMb !== undefined && { peakMemoryMb: r.peakMemoryMb }),
      ...(r.numTurns !== undefined && { numTurns: r.numTurns }),
    }),
  );
  const unrecorded = span.attempts.find((a) => a.record === undefined && a.reported);
  if (unrecorded !== undefined && task.result !== undefined) {
    reports.push({
      ...(task.result.usage && { usage: task.result.usage }),
      ...(task.result.peakMemoryMb !== undefined && { peakMemoryMb: task.result.peakMemoryMb }),
      numTurns: task.result.numTurns,
    });
  }
  // Records written before they carried turns: the latest report's count is all there is.
  if (task.result !== undefined && !reports.some((r) => r.numTurns !== undefined))
    reports.push({ numTurns: task.result.numTurns });
  return reports;
}

function sumUsage(usages: readonly TokenUsage[]): TokenUsage {
  return usages.reduce((a, b) => ({
    inputTokens: a.inputTokens + b.inputTokens,
    outputTokens: a.outputTokens + b.outputTokens,
    cacheReadInputTokens: a.cacheReadInputTokens + b.cacheReadInputTokens,
    cacheCreationInputTokens: a.cacheCreationInputTokens + b.cacheCreationInputTokens,
  }));
}

function costByDepth(tree: readonly PerformanceNode[], spans: readonly TaskSpan[]): DepthCost[] {
  const byDepth = new Map<number, DepthCost>();
  const rowOf = (depth: number): DepthCost => {
    const row = byDepth.get(depth) ?? { depth, jobs: 0, tasks: 0, attempts: 0, cost_usd: 0 };
    byDepth.set(depth, row);
    return row;
  };
  for (const { job } of tree) rowOf(job.depth).jobs += 1;
  for (const span of spans) {
    const row = rowOf(span.job.depth);
    row.tasks += 1;
    row.attempts += attemptsMade(span.task);
    row.cost_usd += taskUsage(span.task).costUsd;
  }
  return [...byDepth.values()]
    .map((r) => ({ ...r, cost_usd: roundUsd(r.cost_usd) }))
    .sort((a, b) => a.depth - b.depth);
}

/** At most this many bars in the chart: GitHub renders larger ones slowly, and nobody reads them. */
export const MAX_GANTT_BARS = 200;

export interface GanttChart {
  /** The mermaid source, without the fence. */
  source: string;
  shown: number;
  omitted: number;
}

/**
 * A mermaid `gantt` of the attempts: one bar per attempt from launch (or
 * queueing, if it never launched) to its end, sections per job (per depth
 * when there are many jobs), the critical path in `crit`. Beyond `maxBars`,
 * the critical path and then the longest attempts are kept. Times are the
 * real instants (epoch ms), so the axis shows clock time.
 */
export function ganttChart(perf: PerformanceView, maxBars = MAX_GANTT_BARS): GanttChart {
  const origin = Date.parse(perf.origin);
  const end = (t: AttemptTimeline) => t.finished_ms ?? perf.wall_time_ms;
  const start = (t: AttemptTimeline) => t.launched_ms ?? t.running_ms ?? t.queued_ms;
  const ranked = [...perf.timeline].sort(
    (a, b) =>
      Number(b.on_critical_path) - Number(a.on_critical_path) || end(b) - start(b) - (end(a) - start(a)),
  );
  const kept = ranked.slice(0, Math.max(0, maxBars));
  const jobCount = new Set(kept.map((t) => t.job_id)).size;
  const sectionOf = (t: AttemptTimeline) => (jobCount <= 12 ? jobSection(t) : `depth ${t.depth}`);
  kept.sort(
    (a, b) =>
      a.depth - b.depth ||
      compare(sectionOf(a), sectionOf(b)) ||
      start(a) - start(b) ||
      a.attempt - b.attempt,
  );
  const lines = ['gantt', '  dateFormat x', '  axisFormat %H:%M:%S', '  todayMarker off'];
  let section: string | undefined;
  kept.forEach((t, i) => {
    if (sectionOf(t) !== section) {
      section = sectionOf(t);
      lines.push(`  section ${section}`);
    }
    const tags = [t.on_critical_path ? 'crit' : undefined, t.finished_ms === undefined ? 'active' : 'done'];
    const from = origin + Math.max(0, start(t));
    const to = Math.max(from + 1, origin + end(t));
    const label = `${t.worker_id} try ${t.attempt} ${t.status}`;
    lines.push(`  ${label} :${tags.filter(Boolean).join(', ')}, b${i}, ${from}, ${to}`);
  });
  return { source: lines.join('\n'), shown: kept.length, omitted: perf.timeline.length - kept.length };
}

/** `depth 1 · job of worker_2`: a job named by its lineage (from the worker id), never by text a worker wrote. */
function jobSection(t: AttemptTimeline): string {
  if (t.depth === 0) return 'depth 0 · root';
  const rest = t.worker_id.slice(t.worker_id.indexOf('_') + 1);
  const path = t.kind === 'work' ? rest.slice(0, rest.lastIndexOf('_')) : rest;
  return `depth ${t.depth} · job of worker_${path}`;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
