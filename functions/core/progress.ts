/**
 * Live progress: what a worker posts while it runs (its turn, the tool in
 * use, tokens and cost so far, the last line of text, and the new part of
 * its log), and the events and log pages callers read back. Every field is
 * bounded, so a hostile worker can store only a bounded amount per post, and
 * the API limits how often it may post.
 */
import * as z from 'zod';
import {
  MAX_EVENTS_PER_POST,
  MAX_LIVE_LOG_CHARS,
  MAX_LOG_CHUNK_CHARS,
  MIN_POST_INTERVAL_MS,
} from './progress-limits.ts';

export { MAX_EVENTS_PER_POST, MAX_LIVE_LOG_CHARS, MAX_LOG_CHUNK_CHARS, MIN_POST_INTERVAL_MS };

/** Events and live logs expire (DynamoDB TTL) this long after they were written. */
export const EVENT_RETENTION_SEC = 3 * 24 * 3600;
/** How long `GET /events` holds a request open for new events. */
export const MAX_EVENT_WAIT_SEC = 20;
/**
 * Events are returned only once they are this old: a write stamped just
 * before a reader's query may land just after it, and a cursor past it would
 * skip it.
 */
export const EVENT_SETTLE_MS = 300;

export const EVENT_KINDS = ['started', 'progress', 'finished'] as const;
export type EventKind = (typeof EVENT_KINDS)[number];

const tokenCount = z.number().int().min(0).max(1e12);

export const TokensSchema = z.strictObject({
  input: tokenCount.default(0),
  output: tokenCount.default(0),
  cache_read: tokenCount.default(0),
  cache_creation: tokenCount.default(0),
});

/** One thing a worker reports; `at` is the worker's clock (informational: the server stamps its own). */
export const WorkerEventSchema = z.strictObject({
  kind: z.enum(EVENT_KINDS),
  at: z.string().max(40).optional(),
  turn: z.number().int().min(0).max(1e6).optional(),
  /** The tool in use: `Edit`, `Bash`, ... */
  tool: z.string().max(100).optional(),
  /** The tool's short argument: a path, a command's first line. */
  detail: z.string().max(300).optional(),
  /** The last line of Claude's text. */
  text: z.string().max(500).optional(),
  tokens: TokensSchema.optional(),
  cost_usd: z.number().min(0).max(1_000_000).optional(),
  /** `finished` only: how the attempt ended. */
  status: z.string().max(40).optional(),
});

export type WorkerEvent = z.infer<typeof WorkerEventSchema>;

/** `POST /jobs/{id}/tasks/{taskNo}/progress`. */
export const ProgressBodySchema = z.strictObject({
  attempt: z.number().int().min(1),
  events: z.array(WorkerEventSchema).max(MAX_EVENTS_PER_POST).default([]),
  /** The log from `offset` on; a repeat of the same offset is stored once. */
  log: z
    .strictObject({
      offset: z.number().int().min(0).max(MAX_LIVE_LOG_CHARS),
      text: z.string().min(1).max(MAX_LOG_CHUNK_CHARS),
    })
    .optional(),
});

export type ProgressBody = z.infer<typeof ProgressBodySchema>;

export const ProgressResponseSchema = z.object({
  accepted: z.number().int().describe('events stored'),
  /** Where the live log now ends: the next piece starts here. */
  log_next: z.number().int().optional(),
  /** False when the attempt is over (cancelled, timed out, replaced): the worker should stop. */
  live: z.boolean(),
});

/** An event as callers read it. */
export const JobEventSchema = z.object({
  /** Pass the last one as `?after=` to read on. */
  id: z.string(),
  /** When the API stored it. */
  at: z.string(),
  job_id: z.string(),
  worker_id: z.string(),
  task_no: z.number().int(),
  attempt: z.number().int(),
  kind: z.enum(EVENT_KINDS),
  turn: z.number().int().optional(),
  tool: z.string().optional(),
  detail: z.string().optional(),
  text: z.string().optional(),
  tokens: z
    .object({ input: z.number(), output: z.number(), cache_read: z.number(), cache_creation: z.number() })
    .optional(),
  cost_usd: z.number().optional(),
  status: z.string().optional(),
});

export type JobEvent = z.infer<typeof JobEventSchema>;

export const EventsQuerySchema = z.strictObject({
  after: z.string().max(200).optional(),
  wait: z.coerce.number().int().min(0).max(MAX_EVENT_WAIT_SEC).default(MAX_EVENT_WAIT_SEC),
  limit: z.coerce.number().int().min(1).max(500).default(200),
});

export const EventsResponseSchema = z.object({
  events: z.array(JobEventSchema),
  /** Where to read on from; unchanged when nothing new arrived. */
  cursor: z.string().nullable(),
  job_status: z.string(),
  /** The job has ended and every event of it has been returned. */
  done: z.boolean(),
});

export type EventsResponse = z.infer<typeof EventsResponseSchema>;

export const LogQuerySchema = z.strictObject({
  attempt: z.coerce.number().int().min(1).max(1000).optional(),
  after: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(0),
});

export const LogResponseSchema = z.object({
  worker_id: z.string(),
  job_id: z.string(),
  task_no: z.number().int(),
  attempt: z.number().int(),
  /** Attempts made so far; each keeps its own log. */
  attempts: z.number().int(),
  state: z.string(),
  /** The log from `after` on, redacted. */
  text: z.string(),
  /** Pass as `?after=` to read on. */
  next: z.number().int(),
  /** The attempt has ended and its whole log has been returned. */
  done: z.boolean(),
  /** `live` while the attempt runs (what the worker has posted), `stored` once its log is uploaded. */
  source: z.enum(['live', 'stored', 'none']),
});

export type LogResponse = z.infer<typeof LogResponseSchema>;

/**
 * Event ids sort by the time the API stored them; the rest makes each one
 * unique and keeps one post's events in order.
 */
export function eventId(
  storedAtMs: number,
  jobId: string,
  taskNo: number,
  attempt: number,
  index: number,
): string {
  return `${String(storedAtMs).padStart(13, '0')}.${jobId}.${taskNo}.${attempt}.${String(index).padStart(2, '0')}`;
}

/**
 * Whether a worker of job path `path` is inside the subtree of the job at
 * `jobPath` (`''` is the root; `2` is worker_2's child job, `2_1` below it).
 */
export function inSubtree(path: string, jobPath: string): boolean {
  return jobPath === '' || path === jobPath || path.startsWith(`${jobPath}_`);
}

/** `worker_2_1` -> task numbers along the lineage `[2, 1]`; undefined when it is not a worker id. */
export function parseWorkerId(workerId: string): number[] | undefined {
  const m = /^worker_(\d{1,6}(?:_\d{1,6}){0,20})$/.exec(workerId);
  return m ? (m[1] as string).split('_').map(Number) : undefined;
}
