/**
 * Live progress: workers post what they are doing (doubling as their
 * heartbeat) and the new part of their log; callers read a job tree's
 * events, long-polling for new ones, and any attempt's log, live while it
 * runs and from storage once it is uploaded. Everything shown is redacted.
 */
import { tooManyRequests } from '../core/errors.ts';
import { workerId, workerLogKey } from '../core/layout.ts';
import type { JobRecord, TaskRecord } from '../core/model.ts';
import {
  EVENT_SETTLE_MS,
  type EventsResponse,
  inSubtree,
  type JobEvent,
  type LogResponse,
  MAX_LIVE_LOG_CHARS,
  MIN_POST_INTERVAL_MS,
  type ProgressBody,
  type WorkerEvent,
} from '../core/progress.ts';
import { redact } from '../core/redact.ts';
import { isLiveAttempt, isTerminalJobStatus, isTerminalTaskState } from '../core/task-states.ts';
import type { Deps } from './deps.ts';

/** Between reads of a long poll: a new event shows within this plus the settle time. */
const POLL_INTERVAL_MS = 200;
/** Polls between reads of the job's status while a long poll waits (5 x 200 ms). */
const JOB_READ_EVERY = 5;
/** Live log pieces read per request (each at most 32 KB). */
const LOG_PIECES_PER_READ = 64;
/** Largest stored log one request returns from `after` on. */
const MAX_LOG_READ_CHARS = 2 * 1024 * 1024;

export interface ProgressOutcome {
  accepted: number;
  live: boolean;
  /** The live log now reaches this offset: the worker sends from here next. */
  log_next?: number;
}

/** Records a worker's post; `task` is the worker's own task (its token was checked). */
export async function recordProgress(
  deps: Deps,
  task: TaskRecord,
  body: ProgressBody,
): Promise<ProgressOutcome> {
  const nowMs = deps.now().getTime();
  const beat =
    body.attempt === task.attempt
      ? await deps.tasks.recordHeartbeat(task.jobId, task.taskNo, body.attempt, nowMs, MIN_POST_INTERVAL_MS)
      : 'not_live';
  if (beat === 'not_live') return { accepted: 0, live: false };
  if (beat === 'too_soon')
    throw tooManyRequests(`post progress at most every ${MIN_POST_INTERVAL_MS} ms`, MIN_POST_INTERVAL_MS);

  const scope = { jobId: task.jobId, taskNo: task.taskNo, attempt: body.attempt };
  const outcome: ProgressOutcome = { accepted: body.events.length, live: true };
  if (body.log && body.log.offset < MAX_LIVE_LOG_CHARS) {
    const text = body.log.text.slice(0, MAX_LIVE_LOG_CHARS - body.log.offset);
    const stored = await deps.events.putLogPiece(scope, { offset: body.log.offset, text }, nowMs);
    // A repeat (its first answer was lost): the piece already there says where the log reaches.
    const piece = stored
      ? { offset: body.log.offset, text }
      : (await deps.events.logPieces(scope, body.log.offset, 1))[0];
    outcome.log_next = piece ? piece.offset + piece.text.length : body.log.offset;
  }
  await storeEvents(deps, task, body.attempt, body.events, nowMs);
  return outcome;
}

/**
 * The events a worker sent with its result. Stored only while the attempt is
 * still live (so before the result that ends it), never for a replayed result.
 */
export async function recordLastEvents(
  deps: Deps,
  task: TaskRecord,
  attempt: number,
  events: readonly WorkerEvent[],
): Promise<void> {
  if (isLiveAttempt(task, attempt)) await storeEvents(deps, task, attempt, events, deps.now().getTime());
}

async function storeEvents(
  deps: Deps,
  task: TaskRecord,
  attempt: number,
  events: readonly WorkerEvent[],
  nowMs: number,
): Promise<void> {
  await deps.events.putEvents(
    task.rootJobId,
    {
      jobId: task.jobId,
      jobPath: task.jobPath,
      workerId: workerId(task.taskNo, task.jobPath),
      taskNo: task.taskNo,
      attempt,
    },
    events.map(({ kind, at: _workerClock, ...data }) => ({
      kind,
      data: {
        ...data,
        ...(data.text !== undefined ? { text: redact(data.text) } : {}),
        ...(data.detail !== undefined ? { detail: redact(data.detail) } : {}),
      },
    })),
    nowMs,
  );
}

/**
 * Events of the job's tree after `after`, waiting up to `waitSec` for the
 * first one. Bounded: one query per POLL_INTERVAL_MS while it waits.
 */
export async function readEvents(
  deps: Deps,
  job: JobRecord,
  options: { after?: string | undefined; waitSec: number; limit: number },
): Promise<EventsResponse> {
  const deadline = deps.now().getTime() + options.waitSec * 1000;
  const subtree = job.depth === 0 ? '' : job.path;
  let after = options.after;
  let current = job;
  // Each round either moves the cursor past other subtrees' events or sleeps until the deadline.
  const maxRounds = Math.ceil((options.waitSec * 1000) / POLL_INTERVAL_MS) + 100;
  for (let round = 0; round < maxRounds; round++) {
    const now = deps.now().getTime();
    const settled = now - EVENT_SETTLE_MS;
    const stored = await deps.events.eventsAfter(job.rootJobId, after, settled, options.limit);
    after = stored.at(-1)?.id ?? after;
    const mine = stored.filter((e) => inSubtree(e.jobPath, subtree));
    // The job's status only decides when the stream is done: read it once a second, not every poll.
    if (round > 0 && round % JOB_READ_EVERY === 0) current = (await deps.jobs.getJob(job.jobId)) ?? current;
    // Done once the job has ended and nothing stored before its end can still appear.
    const drained =
      isTerminalJobStatus(current.status) &&
      stored.length < options.limit &&
      Date.parse(current.finishedAt ?? current.updatedAt) < settled;
    if (mine.length > 0 || drained || now >= deadline)
      return {
        events: mine.map(eventView),
        cursor: after ?? null,
        job_status: current.status,
        done: drained,
      };
    if (stored.length === 0)
      await new Promise((r) => setTimeout(r, Math.min(POLL_INTERVAL_MS, Math.max(0, deadline - now))));
  }
  return { events: [], cursor: after ?? null, job_status: current.status, done: false };
}

function eventView(e: Awaited<ReturnType<Deps['events']['eventsAfter']>>[number]): JobEvent {
  return {
    id: e.id,
    at: e.at,
    job_id: e.jobId,
    worker_id: e.workerId,
    task_no: e.taskNo,
    attempt: e.attempt,
    kind: e.kind,
    ...(e.data as Omit<JobEvent, 'id' | 'at' | 'job_id' | 'worker_id' | 'task_no' | 'attempt' | 'kind'>),
  };
}

/**
 * One attempt's log from `after` on: what the worker has posted while the
 * attempt runs, the uploaded log once it has ended (the two agree: the live
 * log is a prefix of the uploaded one).
 */
export async function readLog(
  deps: Deps,
  job: JobRecord,
  task: TaskRecord,
  options: { attempt?: number | undefined; after: number },
): Promise<LogResponse> {
  const attempt = options.attempt ?? task.attempt;
  const ended = attempt < task.attempt || isTerminalTaskState(task.state);
  const view = {
    worker_id: workerId(task.taskNo, task.jobPath),
    job_id: task.jobId,
    task_no: task.taskNo,
    attempt,
    attempts: task.attempt,
    state: task.state,
  };
  if (ended) {
    const stored = await deps.artifacts.getText(
      workerLogKey(job.rootJobId, task.depth, task.taskNo, task.jobPath, attempt),
    );
    if (stored !== undefined) {
      const text = redact(stored.slice(options.after, options.after + MAX_LOG_READ_CHARS));
      const next = Math.min(stored.length, options.after + MAX_LOG_READ_CHARS);
      return { ...view, text, next, done: next >= stored.length, source: 'stored' };
    }
  }
  const pieces = await deps.events.logPieces(
    { jobId: task.jobId, taskNo: task.taskNo, attempt },
    options.after,
    LOG_PIECES_PER_READ,
  );
  let text = '';
  let next = options.after;
  for (const p of pieces) {
    if (p.offset > next) break; // a gap: a piece not stored yet
    text += p.text.slice(next - p.offset);
    next = p.offset + p.text.length;
  }
  // An ended attempt whose log never arrived has nothing more to give.
  return {
    ...view,
    text: redact(text),
    next,
    done: ended && pieces.length < LOG_PIECES_PER_READ,
    source: pieces.length > 0 || options.after > 0 ? 'live' : ended ? 'none' : 'live',
  };
}

/** A keep-alive comment at least this often, so proxies do not close a quiet stream. */
const KEEPALIVE_SEC = 15;

/**
 * The job tree's events as server-sent events, from `after` on, until the job
 * has ended and every event was sent (`event: end`), the caller goes away, or
 * `maxMs` passes (the client reconnects with `Last-Event-ID`). Each event's
 * `id:` is its event id.
 */
export async function streamEvents(
  deps: Deps,
  job: JobRecord,
  options: { after?: string | undefined; maxMs: number; write(chunk: string): void; signal: AbortSignal },
): Promise<void> {
  const until = deps.now().getTime() + options.maxMs;
  let after = options.after;
  options.write('retry: 1000\n\n');
  // Bounded by maxMs: each round waits at most KEEPALIVE_SEC.
  while (!options.signal.aborted && deps.now().getTime() < until) {
    const page = await readEvents(deps, job, { after, waitSec: KEEPALIVE_SEC, limit: 200 });
    for (const e of page.events)
      options.write(`id: ${e.id}\nevent: ${e.kind}\ndata: ${JSON.stringify(e)}\n\n`);
    if (page.events.length === 0) options.write(': keep-alive\n\n');
    after = page.cursor ?? after;
    if (page.done) {
      options.write(
        `event: end\ndata: ${JSON.stringify({ job_status: page.job_status, cursor: after ?? null })}\n\n`,
      );
      return;
    }
  }
}
