/**
 * The worker's only way out: the orchestrator's HTTP API, with its task
 * token. Every call has a deadline; transient failures (network, 429, 5xx)
 * are retried a bounded number of times with jittered backoff.
 */

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export interface ApiClientOptions {
  baseUrl: string;
  token: string;
  timeoutMs?: number;
  attempts?: number;
  /** Tests shorten the backoff. */
  backoffMs?: number;
}

export class WorkerApiClient {
  private readonly timeoutMs: number;
  private readonly attempts: number;
  private readonly backoffMs: number;

  constructor(private readonly options: ApiClientOptions) {
    this.timeoutMs = options.timeoutMs ?? 15_000;
    this.attempts = options.attempts ?? 6;
    this.backoffMs = options.backoffMs ?? 500;
  }

  async call<T>(
    method: 'GET' | 'POST',
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<T> {
    let lastError: unknown;
    for (let attempt = 1; attempt <= this.attempts; attempt++) {
      try {
        const response = await fetch(joinUrl(this.options.baseUrl, path), {
          method,
          headers: {
            ...headers,
            'x-task-token': this.options.token,
            ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
          },
          ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
          signal: AbortSignal.timeout(this.timeoutMs),
        });
        const text = await response.text();
        if (response.ok) return (text ? JSON.parse(text) : {}) as T;
        const error = new ApiError(
          response.status,
          `${method} ${path} -> ${response.status}: ${text.slice(0, 500)}`,
        );
        if (response.status !== 429 && response.status < 500) throw error;
        lastError = error;
      } catch (err) {
        if (err instanceof ApiError && err.status !== 429 && err.status < 500) throw err;
        lastError = err;
      }
      if (attempt < this.attempts) await sleep(this.backoffMs * 2 ** (attempt - 1) * (0.5 + Math.random()));
    }
    throw lastError;
  }
}

/** PUT a body to a presigned URL, with the same deadline and retry policy. */
export async function putPresigned(
  url: string,
  body: Uint8Array | string,
  attempts = 4,
  timeoutMs = 60_000,
): Promise<void> {
  let lastError: unknown;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    try {
      const response = await fetch(url, { method: 'PUT', body, signal: AbortSignal.timeout(timeoutMs) });
      if (response.ok) return;
      lastError = new Error(
        `upload refused with ${response.status}: ${(await response.text()).slice(0, 300)}`,
      );
      if (response.status < 500 && response.status !== 429) break;
    } catch (err) {
      lastError = err;
    }
    if (attempt < attempts) await sleep(300 * 2 ** (attempt - 1) * (0.5 + Math.random()));
  }
  throw lastError;
}

/**
 * `https://id.execute-api…/v1/` + `/api/v1/jobs` keeps the stage: `new URL(path, base)` would drop
 * the base's path for a path that starts with a slash.
 */
export function joinUrl(baseUrl: string, path: string): string {
  return `${baseUrl.replace(/\/+$/, '')}/${path.replace(/^\/+/, '')}`;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
