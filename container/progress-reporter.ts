/**
 * Sends the attempt's progress to the API while it runs: what Claude is
 * doing (batched, at most one post per interval, the first a second after the
 * start), the new part of the attempt's log, and at least a heartbeat every
 * `heartbeatMs` so the orchestrator can tell a silent worker from a lost one.
 * What is left when the attempt ends rides on its result post, so an attempt
 * shorter than a second posts no progress at all. Progress is a view: a
 * failed post is retried with the next one, and never fails the attempt.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { OrchestratorApiError, type OrchestratorClient } from '../functions/client/orchestrator-client.ts';
import { newStreamState, readStreamLine } from '../functions/core/claude-stream.ts';
import type { WorkerEvent } from '../functions/core/progress.ts';
import { MAX_EVENTS_PER_POST, MAX_LIVE_LOG_CHARS } from '../functions/core/progress-limits.ts';
import { redact } from '../functions/core/redact.ts';

export interface ReporterOptions {
  /** Least time between posts (default 2 s). */
  intervalMs?: number;
  /** Most time between posts, whatever happens (default 20 s). */
  heartbeatMs?: number;
  /** Values never to show: the task token, repository tokens. */
  secrets?: readonly (string | undefined)[];
  /** The attempt's log so far (only ever grows). */
  logText?: () => string;
}

/** Raw log sent per post, cut at a line end when one is near. */
const LOG_CHUNK_RAW = 24 * 1024;
const TICK_MS = 100;
const POST_TIMEOUT_MS = 10_000;
/**
 * The first post waits this long (or the interval, if shorter): what happens
 * in the first second still shows within two, and a short attempt sends its
 * events with its result instead of in posts of their own.
 */
const FIRST_POST_MS = 1_000;

interface Chunk {
  offset: number;
  text: string;
  rawLength: number;
}

export class ProgressReporter {
  private readonly intervalMs: number;
  private readonly heartbeatMs: number;
  private queue: WorkerEvent[] = [];
  private lastPost = 0;
  private inFlight: Promise<unknown> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private live = true;
  /** Log already stored: raw characters consumed, and where the next piece starts in the stored (redacted) log. */
  private rawSent = 0;
  private offset = 0;
  private pending: Chunk | undefined;

  constructor(
    private readonly api: OrchestratorClient,
    private readonly base: string,
    private readonly attempt: number,
    private readonly options: ReporterOptions = {},
  ) {
    this.intervalMs = options.intervalMs ?? 2_000;
    this.heartbeatMs = options.heartbeatMs ?? 20_000;
  }

  start(): void {
    this.lastPost = Date.now() - this.intervalMs + Math.min(this.intervalMs, FIRST_POST_MS);
    this.push({ kind: 'started' });
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
  }

  push(event: WorkerEvent): void {
    if (!this.live) return;
    this.queue.push({ ...event, at: new Date().toISOString() });
    // Bounded: the oldest progress goes first; `started` and `finished` are kept.
    while (this.queue.length > MAX_EVENTS_PER_POST) {
      const i = this.queue.findIndex((e) => e.kind === 'progress');
      this.queue.splice(Math.max(i, 0), 1);
    }
  }

  /**
   * The attempt is ending: says how, and returns the events not yet sent, for
   * the result post to carry. The rest of the log needs no post: once the
   * attempt has ended, its uploaded log is the one shown.
   */
  async finish(status: string): Promise<WorkerEvent[]> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.push({ kind: 'finished', status });
    await this.inFlight;
    this.live = false;
    const left = this.queue;
    this.queue = [];
    return left;
  }

  private tick(): void {
    if (this.inFlight || !this.live) return;
    const since = Date.now() - this.lastPost;
    const news = this.queue.length > 0 || this.pending !== undefined || this.logLength() > this.rawSent;
    if ((news && since >= this.intervalMs) || since >= this.heartbeatMs) {
      this.inFlight = this.post().finally(() => {
        this.inFlight = undefined;
      });
    }
  }

  private logLength(): number {
    return this.options.logText?.().length ?? 0;
  }

  private async post(): Promise<'sent' | 'throttled' | 'failed'> {
    if (!this.live) return 'failed';
    const events = this.queue;
    this.queue = [];
    const chunk = this.nextChunk();
    this.lastPost = Date.now();
    try {
      const answer = await this.api.request<{ live: boolean; log_next?: number }>(
        'POST',
        `${this.base}/progress`,
        {
          body: {
            attempt: this.attempt,
            events,
            ...(chunk ? { log: { offset: chunk.offset, text: chunk.text } } : {}),
          },
          retry: false,
          timeoutMs: POST_TIMEOUT_MS,
        },
      );
      if (chunk) {
        this.pending = undefined;
        this.rawSent += chunk.rawLength;
        this.offset = answer.log_next ?? chunk.offset + chunk.text.length;
      }
      if (answer.live === false) this.live = false;
      return 'sent';
    } catch (err) {
      // Sent again with the next post: the events first, the same log piece (a repeat is stored once).
      this.queue = [...events, ...this.queue].slice(-MAX_EVENTS_PER_POST);
      if (err instanceof OrchestratorApiError && (err.status === 403 || err.status === 404))
        this.live = false;
      return err instanceof OrchestratorApiError && err.status === 429 ? 'throttled' : 'failed';
    }
  }

  /** The log piece to send: the one not yet acknowledged, else the next from where the stored log ends. */
  private nextChunk(): Chunk | undefined {
    if (this.pending) return this.pending;
    if (this.offset >= MAX_LIVE_LOG_CHARS) return undefined;
    const text = this.options.logText?.() ?? '';
    if (text.length <= this.rawSent) return undefined;
    let raw = text.slice(this.rawSent, this.rawSent + LOG_CHUNK_RAW);
    const end = raw.lastIndexOf('\n');
    if (raw.length === LOG_CHUNK_RAW && end > LOG_CHUNK_RAW / 2) raw = raw.slice(0, end + 1);
    const shown = redact(raw, this.options.secrets ?? []).slice(0, 32 * 1024);
    this.pending = { offset: this.offset, text: shown, rawLength: raw.length };
    return this.pending;
  }
}

const reporters = new AsyncLocalStorage<ProgressReporter>();

/** Runs `fn` with `reporter` as the attempt's progress (read by postResult to send the last of it). */
export function withProgress<T>(reporter: ProgressReporter, fn: () => Promise<T>): Promise<T> {
  return reporters.run(reporter, fn);
}

export function currentProgress(): ProgressReporter | undefined {
  return reporters.getStore();
}

/** Longest partial line held while waiting for its end. */
const MAX_PENDING_LINE = 1024 * 1024;

/**
 * Turns a stream-json session's stdout into readable log lines and progress
 * events as it arrives. `flush` takes a last line that had no newline.
 */
export function streamReader(log: { raw(...lines: string[]): void }, progress: ProgressReporter | undefined) {
  const state = newStreamState();
  let pending = '';
  const take = (line: string) => {
    const item = readStreamLine(line, state);
    if (!item) return;
    log.raw(item.log);
    if (item.event) progress?.push(item.event);
  };
  return {
    onOutput(stream: 'stdout' | 'stderr', chunk: string): void {
      if (stream !== 'stdout') return;
      pending += chunk;
      for (let end = pending.indexOf('\n'); end >= 0; end = pending.indexOf('\n')) {
        take(pending.slice(0, end));
        pending = pending.slice(end + 1);
      }
      if (pending.length > MAX_PENDING_LINE) {
        take(pending);
        pending = '';
      }
    },
    flush(): void {
      if (pending) take(pending);
      pending = '';
    },
  };
}
