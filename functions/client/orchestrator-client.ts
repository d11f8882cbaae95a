/**
 * The one client of the orchestrator's HTTP API: the CLI, `orchestrator
 * spawn`, the worker, the benchmark and the tests all speak through it, and
 * users import it as `claude-fleet/client`. Types come from the zod schemas
 * the server validates with; nothing here imports a server module at run
 * time, so the published bundle is this file and its types only.
 *
 * Every call has a deadline. Network failures, 429 and 5xx are retried with
 * jittered exponential backoff, waiting at least what `Retry-After` asks;
 * submissions carry an Idempotency-Key (made up when the caller gives none)
 * so a retried submit never starts a second job.
 */
import type {
  CancelResponse,
  CreateSourceResponse,
  HealthResponse,
  JobListResponse,
  JobStatusResponse,
  SubmitResponse,
} from '../core/api-responses.ts';
import type { SubmitBody } from '../core/api-schemas.ts';
import type { EventsResponse, JobEvent, LogResponse } from '../core/progress.ts';
import type { JobResult } from '../core/result-format.ts';
import type { JobStatus } from '../core/task-states.ts';

export type {
  CancelResponse,
  CreateSourceResponse,
  EventsResponse,
  HealthResponse,
  JobEvent,
  JobListResponse,
  JobResult,
  JobStatus,
  JobStatusResponse,
  LogResponse,
  SubmitBody as SubmitRequest,
  SubmitResponse,
};

export interface ClientOptions {
  /** A caller's API key (`X-API-Key`). */
  apiKey?: string | undefined;
  /** A worker's task token (`X-Task-Token`), instead of an API key. */
  taskToken?: string | undefined;
  /** Deadline of one HTTP request, in ms (default 30 s). */
  timeoutMs?: number;
  /** Tries per call, the first included (default 6). */
  attempts?: number;
  /** First backoff step in ms (default 500); doubles per retry. */
  backoffMs?: number;
  /** Longest wait between tries, Retry-After included (default 60 s). */
  maxBackoffMs?: number;
  /** Headers sent with every request. */
  headers?: Record<string, string>;
  /** How requests are sent; `fetch` by default. */
  transport?: HttpTransport;
}

/**
 * One HTTP exchange, body read whole. The default is `fetch`; a worker passes
 * `nodeHttpTransport` (node-transport.ts): on Node 20 the first `fetch` of a
 * process loads undici, which took 55-77 ms of a worker's start here, and
 * node:http about 10.
 */
export type HttpTransport = (url: string, init: HttpInit) => Promise<HttpReply>;

export interface HttpInit {
  method: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
  signal: AbortSignal;
}

export interface HttpReply {
  status: number;
  headers: HeaderReader;
  text: string;
}

/** What a reply's headers are read through: `Headers` has this shape. */
export interface HeaderReader {
  get(name: string): string | null;
}

export const fetchTransport: HttpTransport = async (url, init) => {
  const response = await fetch(url, init);
  return { status: response.status, headers: response.headers, text: await response.text() };
};

export interface RequestOptions {
  body?: unknown;
  /** Sent as is, instead of `body` as JSON. */
  rawBody?: string | Uint8Array;
  headers?: Record<string, string>;
  query?: Record<string, string | number | undefined>;
  /** False: one try only (tests that assert a status). */
  retry?: boolean;
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface RawResponse {
  status: number;
  headers: HeaderReader;
  text: string;
  /** The body as JSON, or undefined when it is not JSON. */
  // biome-ignore lint/suspicious/noExplicitAny: callers read error and test bodies field by field
  json: any;
}

/**
 * A non-2xx answer: the status and the API's `{error, code, issues}`. The
 * message holds the body as sent (bounded), so fields such as `limit` stay
 * visible wherever the message is shown; `reason` is its `error` alone.
 */
export class OrchestratorApiError extends Error {
  readonly code: string | undefined;
  readonly reason: string;
  readonly issues: { path: string; message: string }[] | undefined;

  constructor(
    readonly status: number,
    readonly method: string,
    readonly path: string,
    readonly body: unknown,
    text: string,
  ) {
    const b = (body ?? {}) as { error?: unknown; code?: unknown; issues?: unknown };
    super(`${method} ${path} -> ${status}: ${text.slice(0, 500)}`);
    this.reason = typeof b.error === 'string' ? b.error : text.slice(0, 500);
    this.name = 'OrchestratorApiError';
    this.code = typeof b.code === 'string' ? b.code : undefined;
    this.issues = Array.isArray(b.issues) ? (b.issues as { path: string; message: string }[]) : undefined;
  }
}

export interface OrchestrateOptions {
  maxWorkers?: number;
  enableRecursion?: boolean;
  /** A repeat with the same key returns the job the first call created. */
  idempotencyKey?: string;
  headers?: Record<string, string>;
}

export interface WaitOptions {
  /** Give up after this long (default: no limit but the signal). */
  timeoutMs?: number;
  /** Between status reads (default 1 s). */
  pollMs?: number;
  signal?: AbortSignal;
  /** Called with every status read. */
  onStatus?: (status: JobStatusResponse) => void;
}

const TERMINAL: ReadonlySet<string> = new Set(['completed', 'partial', 'failed', 'cancelled']);

export class OrchestratorClient {
  readonly apiUrl: string;
  private readonly options: ClientOptions;

  constructor(apiUrl: string, apiKey?: string, options: ClientOptions = {}) {
    if (!/^https?:\/\//.test(apiUrl)) throw new Error(`apiUrl must be an http(s) URL, got "${apiUrl}"`);
    this.apiUrl = apiUrl.replace(/\/+$/, '');
    this.options = { ...options, apiKey: apiKey ?? options.apiKey };
  }

  /** Submits a request; the orchestrator plans it into subtasks unless `body.tasks` gives them. */
  async orchestrate(request: string | SubmitBody, options: OrchestrateOptions = {}): Promise<SubmitResponse> {
    const body: SubmitBody = typeof request === 'string' ? { request } : { ...request };
    if (options.maxWorkers !== undefined || options.enableRecursion !== undefined) {
      body.config = {
        ...body.config,
        ...(options.maxWorkers !== undefined ? { max_workers: options.maxWorkers } : {}),
        ...(options.enableRecursion !== undefined ? { enable_recursion: options.enableRecursion } : {}),
      };
    }
    return this.request<SubmitResponse>('POST', '/api/v1/orchestrate', {
      body,
      headers: {
        'idempotency-key': options.idempotencyKey ?? globalThis.crypto.randomUUID(),
        ...options.headers,
      },
    });
  }

  status(jobId: string): Promise<JobStatusResponse> {
    return this.request('GET', `/api/v1/jobs/${encodeURIComponent(jobId)}/status`);
  }

  /** The job's result, with every descendant job's workers (result.json). */
  result(jobId: string): Promise<JobResult> {
    return this.request('GET', `/api/v1/jobs/${encodeURIComponent(jobId)}`);
  }

  /** FINAL_RESULT.md, with short-lived links to every artifact. */
  report(jobId: string): Promise<string> {
    return this.request('GET', `/api/v1/jobs/${encodeURIComponent(jobId)}/report`);
  }

  cancel(jobId: string): Promise<CancelResponse> {
    return this.request('POST', `/api/v1/jobs/${encodeURIComponent(jobId)}/cancel`);
  }

  jobs(page: { limit?: number; cursor?: string } = {}): Promise<JobListResponse> {
    return this.request('GET', '/api/v1/jobs', { query: { limit: page.limit, cursor: page.cursor } });
  }

  health(): Promise<HealthResponse> {
    return this.request('GET', '/api/v1/health');
  }

  openapi(): Promise<Record<string, unknown>> {
    return this.request('GET', '/api/v1/openapi.json');
  }

  /**
   * The job tree's events as they happen (workers' turns, tools, tokens,
   * cost, last text), oldest first, until the job ends. Each request waits up
   * to `waitSec` (20) for news, so following a quiet job costs a request per
   * 20 s; `after` resumes from an event id.
   */
  async *events(
    jobId: string,
    options: { after?: string; waitSec?: number; signal?: AbortSignal } = {},
  ): AsyncGenerator<JobEvent, void, undefined> {
    const waitSec = options.waitSec ?? 20;
    let after = options.after;
    for (;;) {
      const page = await this.request<EventsResponse>(
        'GET',
        `/api/v1/jobs/${encodeURIComponent(jobId)}/events`,
        {
          query: { after, wait: waitSec },
          timeoutMs: (waitSec + 15) * 1000,
          ...(options.signal ? { signal: options.signal } : {}),
        },
      );
      for (const event of page.events) yield event;
      after = page.cursor ?? after;
      if (page.done) return;
    }
  }

  /** One page of a worker's log (redacted) from offset `after`; `next` is where the next page starts. */
  log(
    jobId: string,
    workerId: string,
    options: { attempt?: number; after?: number } = {},
  ): Promise<LogResponse> {
    return this.request(
      'GET',
      `/api/v1/jobs/${encodeURIComponent(jobId)}/logs/${encodeURIComponent(workerId)}`,
      {
        query: { attempt: options.attempt, after: options.after },
      },
    );
  }

  /** Uploads a git bundle for `source.bundle_id`; returns the id. */
  async uploadSource(bundle: Uint8Array): Promise<string> {
    const created = await this.request<CreateSourceResponse>('POST', '/api/v1/sources', {
      body: { size_bytes: bundle.byteLength },
    });
    await this.putPresigned(created.upload.url, bundle, { attempts: 4, timeoutMs: 15 * 60_000 });
    return created.bundle_id;
  }

  /** Reads the status until the job ends, then returns its result. */
  async wait(jobId: string, options: WaitOptions = {}): Promise<JobResult> {
    const deadline = options.timeoutMs !== undefined ? Date.now() + options.timeoutMs : Infinity;
    for (;;) {
      options.signal?.throwIfAborted();
      const status = await this.status(jobId);
      options.onStatus?.(status);
      if (TERMINAL.has(status.status)) return this.result(jobId);
      if (Date.now() >= deadline)
        throw new Error(`job ${jobId} did not finish within ${options.timeoutMs} ms (${status.status})`);
      await sleep(Math.min(options.pollMs ?? 1000, Math.max(0, deadline - Date.now())), options.signal);
    }
  }

  /** A call whose 2xx body is returned (JSON parsed, else text); anything else throws OrchestratorApiError. */
  async request<T>(method: string, path: string, init: RequestOptions = {}): Promise<T> {
    const response = await this.send(method, path, init);
    if (response.status >= 200 && response.status < 300)
      return (response.json !== undefined ? response.json : response.text) as T;
    throw new OrchestratorApiError(response.status, method, path, response.json, response.text);
  }

  /** A call whose answer is returned whatever its status; only network failures throw (after retries). */
  async send(method: string, path: string, init: RequestOptions = {}): Promise<RawResponse> {
    const attempts = init.retry === false ? 1 : (this.options.attempts ?? 6);
    const url = this.url(path, init.query);
    const headers = this.headers(init);
    const body = init.rawBody ?? (init.body !== undefined ? JSON.stringify(init.body) : undefined);
    let lastError: unknown;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      let wait = this.backoff(attempt);
      try {
        const reply = await (this.options.transport ?? fetchTransport)(url, {
          method,
          headers,
          ...(body !== undefined ? { body } : {}),
          signal: withTimeout(init.timeoutMs ?? this.options.timeoutMs ?? 30_000, init.signal),
        });
        const raw = readResponse(reply);
        if (!isRetryable(raw.status) || attempt === attempts) return raw;
        wait = Math.max(wait, retryAfterMs(reply.headers.get('retry-after')) ?? 0);
        lastError = new OrchestratorApiError(raw.status, method, path, raw.json, raw.text);
      } catch (err) {
        if (init.signal?.aborted) throw err;
        lastError = err;
        if (attempt === attempts) break;
      }
      await sleep(Math.min(wait, this.options.maxBackoffMs ?? 60_000), init.signal);
    }
    throw lastError;
  }

  /** PUT a body to a presigned URL (an upload link), through this client's transport. */
  putPresigned(
    url: string,
    body: Uint8Array | string,
    options: { attempts?: number; timeoutMs?: number } = {},
  ) {
    return putPresigned(url, body, { ...options, transport: this.options.transport });
  }

  private url(path: string, query: RequestOptions['query']): string {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) params.set(k, String(v));
    const qs = params.toString();
    // Joined as text: `new URL(path, base)` would drop a stage such as `/v1` from the base.
    return `${this.apiUrl}/${path.replace(/^\/+/, '')}${qs ? `?${qs}` : ''}`;
  }

  private headers(init: RequestOptions): Record<string, string> {
    const headers: Record<string, string> = {
      accept: 'application/json, text/*;q=0.9',
      ...this.options.headers,
    };
    if (this.options.apiKey) headers['x-api-key'] = this.options.apiKey;
    if (this.options.taskToken) headers['x-task-token'] = this.options.taskToken;
    if (init.body !== undefined) headers['content-type'] = 'application/json';
    Object.assign(headers, init.headers);
    // An empty value removes a header (tests send requests without credentials this way).
    for (const [k, v] of Object.entries(headers)) if (v === '') delete headers[k];
    return headers;
  }

  private backoff(attempt: number): number {
    return (this.options.backoffMs ?? 500) * 2 ** (attempt - 1) * (0.5 + Math.random());
  }
}

/** PUT a body to a presigned URL, retrying network failures, 429 and 5xx. */
export async function putPresigned(
  url: string,
  body: Uint8Array | string,
  options: { attempts?: number; timeoutMs?: number; transport?: HttpTransport | undefined } = {},
): Promise<void> {
  const attempts = options.attempts ?? 4;
  const send = options.transport ?? fetchTransport;
  let lastError: unknown;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    try {
      const reply = await send(url, {
        method: 'PUT',
        body,
        signal: AbortSignal.timeout(options.timeoutMs ?? 60_000),
      });
      if (reply.status >= 200 && reply.status < 300) return;
      lastError = new Error(`upload refused with ${reply.status}: ${reply.text.slice(0, 300)}`);
      if (!isRetryable(reply.status)) break;
    } catch (err) {
      lastError = err;
    }
    if (attempt < attempts) await sleep(300 * 2 ** (attempt - 1) * (0.5 + Math.random()));
  }
  throw lastError;
}

function isRetryable(status: number): boolean {
  return status === 429 || status >= 500;
}

/** `Retry-After` as ms: seconds or an HTTP date; undefined when absent or unreadable. */
export function retryAfterMs(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

function readResponse(response: HttpReply): RawResponse {
  const text = response.text;
  let json: unknown;
  if ((response.headers.get('content-type') ?? '').includes('json') || /^\s*[[{]/.test(text)) {
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
  }
  return { status: response.status, headers: response.headers, text, json };
}

function withTimeout(ms: number, signal: AbortSignal | undefined): AbortSignal {
  const timeout = AbortSignal.timeout(ms);
  return signal ? AbortSignal.any([timeout, signal]) : timeout;
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
