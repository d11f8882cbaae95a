/**
 * `orchestrator watch`, and `run` while it waits: a live tree of a job's
 * workers (state, elapsed time, turns, cost, last action, retries), redrawn
 * in place on a terminal, as plain lines otherwise. Workers' actions come
 * from the job's event stream the moment the API has them; states and
 * retries from the job's result, read every few seconds.
 */
import type { OrchestratorClient } from '../client/orchestrator-client.ts';
import type { JobEvent } from '../core/progress.ts';
import type { JobResult, TaskResultView } from '../core/result-format.ts';
import { isLiveTaskState, isTerminalJobStatus, isTerminalTaskState } from '../core/task-states.ts';

export interface WatchOptions {
  /** Print the result as JSON on stdout when the job ends. */
  json?: boolean;
  /** Where the view goes (default stderr, so stdout stays for results). */
  stream?: NodeJS.WriteStream | { write(text: string): unknown; isTTY?: boolean; columns?: number };
  /** Between result reads (default 2 s). */
  refreshMs?: number;
  signal?: AbortSignal;
  /** Stop following after this long (default: until the job ends). */
  timeoutMs?: number;
}

/** What the events say a worker is doing. */
export interface LiveWorker {
  attempt: number;
  turn?: number | undefined;
  action?: string | undefined;
  costUsd?: number | undefined;
  at: string;
}

/** A drawn line, and what it says apart from the clock (plain output prints a line when that changes). */
export interface Row {
  key: string;
  line: string;
  news: string;
}

/** A header and one line per worker, indented by depth: what `watch` draws, pure so it can be tested. */
export function renderTree(
  result: Pick<JobResult, 'job_id' | 'status' | 'created_at' | 'finished_at' | 'results' | 'cost'>,
  live: ReadonlyMap<string, LiveWorker>,
  now: number,
  width = 120,
): Row[] {
  const tasks = result.results.tasks;
  const finished = tasks.filter((t) => isTerminalTaskState(t.status)).length;
  const running = tasks.filter((t) => isLiveTaskState(t.status)).length;
  const wall = duration((Date.parse(result.finished_at ?? '') || now) - Date.parse(result.created_at));
  const head = `job ${result.job_id} ${result.status}: ${finished}/${tasks.length} finished, ${running} running, $${result.cost.total_usd.toFixed(4)}`;
  const rows: Row[] = [{ key: 'job', line: clip(`${head}, ${wall}`, width), news: head }];
  const shown = new Set<string>();
  for (const t of tasks) {
    shown.add(t.worker_id);
    const w = live.get(t.worker_id);
    rows.push({
      key: t.worker_id,
      line: clip(workerLine(t, w, now, true), width),
      news: workerLine(t, w, now, false).trim(),
    });
  }
  // Workers the result does not list yet (the planner, a task just created): their events alone.
  for (const [id, w] of live) {
    if (shown.has(id)) continue;
    const news = `${id} running turn ${w.turn ?? 0} ${w.action ?? ''}`.trim();
    rows.push({
      key: id,
      line: clip(
        `  ${id.padEnd(14)} ${'running'.padEnd(10)} ${''.padStart(6)}  turn ${w.turn ?? 0}  ${oneLine(w.action ?? '')}`,
        width,
      ),
      news,
    });
  }
  return rows;
}

function workerLine(t: TaskResultView, w: LiveWorker | undefined, now: number, clock: boolean): string {
  const indent = '  '.repeat(t.depth + 1);
  const start = Date.parse(t.started_at ?? '') || undefined;
  const end = Date.parse(t.finished_at ?? '') || undefined;
  const elapsed = start ? duration((end ?? now) - start) : '';
  const done = end !== undefined;
  const turns = done ? t.num_turns : Math.max(t.num_turns, w?.turn ?? 0);
  const cost = done ? t.cost_usd : liveCost(t, w);
  const retries = t.attempts > 1 ? `  (attempt ${t.attempts})` : '';
  const action = done ? (t.error ? `error: ${t.error}` : '') : (w?.action ?? '');
  const time = clock ? `${elapsed.padStart(6)}  ` : '';
  return `${indent}${t.worker_id.padEnd(Math.max(1, 16 - indent.length))} ${t.status.padEnd(10)} ${time}turn ${String(turns).padEnd(3)} $${cost.toFixed(4)}  ${oneLine(action)}${retries}`;
}

/**
 * What a running task has spent so far: its `cost_usd` counts every ended
 * attempt (accounting.ts), and of the attempt still running only what the
 * model gateway metered; that attempt's events may already report more.
 */
function liveCost(t: TaskResultView, w: LiveWorker | undefined): number {
  if (w?.costUsd === undefined || t.attempt_history.some((a) => a.attempt === w.attempt)) return t.cost_usd;
  const ended = t.attempt_history.reduce((sum, a) => sum + (a.cost_usd ?? 0), 0);
  return ended + Math.max(t.cost_usd - ended, w.costUsd);
}

/** What an event says the worker is doing, as a few words. */
export function actionOf(e: JobEvent): string | undefined {
  if (e.kind === 'started') return 'starting';
  if (e.kind === 'finished') return e.status ? `finished: ${e.status}` : 'finished';
  if (e.tool) return `${e.tool}${e.detail ? ` ${e.detail}` : ''}`;
  return e.text;
}

/** Follows the job until it ends; returns its result. */
export async function watchJob(
  client: OrchestratorClient,
  jobId: string,
  options: WatchOptions = {},
): Promise<JobResult> {
  const stream = options.stream ?? process.stderr;
  const tty = Boolean(stream.isTTY);
  const live = new Map<string, LiveWorker>();
  const stop = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
  const deadline = options.timeoutMs !== undefined ? Date.now() + options.timeoutMs : Infinity;
  let result = await client.result(jobId);
  let drawn = 0;
  const printed = new Map<string, string>();

  const draw = () => {
    const rows = renderTree(
      result,
      live,
      Date.now(),
      tty ? ((stream as { columns?: number }).columns ?? 120) : 400,
    );
    if (tty) {
      // Back to the top of the last drawing, then over it.
      stream.write(
        `${drawn > 0 ? `\x1b[${drawn}F` : ''}${rows.map((r) => `\x1b[2K${r.line}`).join('\n')}\n\x1b[J`,
      );
      drawn = rows.length;
      return;
    }
    // Plain lines: a row when what it says changes, the clock aside.
    for (const row of rows) {
      if (printed.get(row.key) === row.news) continue;
      printed.set(row.key, row.news);
      stream.write(`${row.news}\n`);
    }
  };

  const follow = (async () => {
    try {
      for await (const e of client.events(jobId, { signal })) {
        const prev = live.get(e.worker_id);
        live.set(e.worker_id, {
          attempt: e.attempt,
          turn: e.turn ?? (prev?.attempt === e.attempt ? prev.turn : undefined),
          action: actionOf(e) ?? prev?.action,
          costUsd: e.cost_usd ?? (prev?.attempt === e.attempt ? prev.costUsd : undefined),
          at: e.at,
        });
        draw();
      }
    } catch {
      // The stream is a nicety: the result reads below still end the watch.
    }
  })();

  try {
    draw();
    while (!isTerminalJobStatus(result.status)) {
      if (Date.now() > deadline)
        throw new Error(`job ${jobId} still ${result.status} after ${options.timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, options.refreshMs ?? 2000));
      signal.throwIfAborted();
      result = await client.result(jobId);
      draw();
    }
  } finally {
    stop.abort();
    await follow;
  }
  if (options.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  return result;
}

export function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

function clip(line: string, width: number): string {
  return line.length > width ? `${line.slice(0, Math.max(1, width - 1))}…` : line;
}
