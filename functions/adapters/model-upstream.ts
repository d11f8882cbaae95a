/**
 * Where the model gateway sends the workers' Messages API requests. The
 * Anthropic API (or any service that speaks it: ANTHROPIC_BASE_URL) with the
 * deployment's own key; the worker's token never goes further than the
 * gateway. Bedrock lives beside it (bedrock-upstream.ts).
 */

export interface UpstreamRequest {
  /** Path and query as the Messages API knows them, e.g. `/v1/messages?beta=true`. */
  path: string;
  /** The worker's request headers, lower-case; only the protocol ones are passed on. */
  headers: Record<string, string>;
  body: string;
  /** Aborted when the worker goes away or the gateway gives up: the upstream request stops too. */
  signal: AbortSignal;
}

export interface UpstreamResponse {
  status: number;
  headers: Record<string, string>;
  body: AsyncIterable<Uint8Array>;
}

export interface ModelUpstream {
  send(req: UpstreamRequest): Promise<UpstreamResponse>;
}

export interface AnthropicUpstreamOptions {
  /** e.g. `https://api.anthropic.com` (no trailing `/v1`). */
  baseUrl: string;
  /** Sent as `x-api-key`. */
  apiKey?: string | undefined;
  /** Sent as `Authorization: Bearer` (ANTHROPIC_AUTH_TOKEN, for gateways that take one) when there is no key. */
  authToken?: string | undefined;
  /** Until the response headers arrive; a non-streamed answer of a long output can take minutes. @default 600000 */
  headersTimeoutMs?: number;
  /** Between two chunks of the body; the API sends `ping` events while it works. @default 300000 */
  idleTimeoutMs?: number;
  /** Whole request, body included. @default 3600000 */
  totalTimeoutMs?: number;
}

/** Request headers of the protocol itself, passed through as the worker sent them. */
const PASSED_REQUEST_HEADERS = ['anthropic-version', 'anthropic-beta', 'content-type', 'accept'] as const;
/** Response headers the CLI reads (retry advice, request id for support, rate limits). */
const PASSED_RESPONSE_HEADERS =
  /^(content-type|request-id|retry-after|x-should-retry|anthropic-ratelimit-.*)$/;

export class UpstreamTimeoutError extends Error {
  constructor(what: string) {
    super(`the model upstream ${what}`);
    this.name = 'UpstreamTimeoutError';
  }
}

/** The Anthropic Messages API with the deployment's credential. */
export function anthropicUpstream(options: AnthropicUpstreamOptions): ModelUpstream {
  const base = options.baseUrl.replace(/\/+$/, '');
  if (!options.apiKey && !options.authToken)
    throw new Error('the Anthropic upstream needs an API key (ANTHROPIC_API_KEY) or a token');
  const headersTimeout = options.headersTimeoutMs ?? 600_000;
  const idleTimeout = options.idleTimeoutMs ?? 300_000;
  const totalTimeout = options.totalTimeoutMs ?? 3_600_000;
  return {
    async send(req) {
      const headers: Record<string, string> = {};
      for (const name of PASSED_REQUEST_HEADERS) {
        const value = req.headers[name];
        if (value !== undefined) headers[name] = value;
      }
      headers['content-type'] ??= 'application/json';
      headers['anthropic-version'] ??= '2023-06-01';
      if (options.apiKey) headers['x-api-key'] = options.apiKey;
      else headers.authorization = `Bearer ${options.authToken}`;

      const controller = new AbortController();
      const abort = (reason: unknown) => controller.abort(reason);
      const onCallerAbort = () => abort(req.signal.reason);
      if (req.signal.aborted) onCallerAbort();
      else req.signal.addEventListener('abort', onCallerAbort, { once: true });
      const total = setTimeout(
        () => abort(new UpstreamTimeoutError(`took longer than ${totalTimeout} ms`)),
        totalTimeout,
      );
      total.unref();
      const cleanup = () => {
        clearTimeout(total);
        req.signal.removeEventListener('abort', onCallerAbort);
      };
      const waitHeaders = setTimeout(
        () => abort(new UpstreamTimeoutError(`sent no response within ${headersTimeout} ms`)),
        headersTimeout,
      );
      let response: Response;
      try {
        response = await fetch(`${base}${req.path}`, {
          method: 'POST',
          headers,
          body: req.body,
          signal: controller.signal,
          redirect: 'error',
        });
      } catch (err) {
        cleanup();
        throw controller.signal.reason instanceof UpstreamTimeoutError ? controller.signal.reason : err;
      } finally {
        clearTimeout(waitHeaders);
      }
      const out: Record<string, string> = {};
      response.headers.forEach((value, name) => {
        if (PASSED_RESPONSE_HEADERS.test(name)) out[name] = value;
      });
      return {
        status: response.status,
        headers: out,
        body: bodyOf(response, controller, idleTimeout, cleanup),
      };
    },
  };
}

/** The response body, chunk by chunk; a pause longer than `idleMs` aborts the request. */
async function* bodyOf(
  response: Response,
  controller: AbortController,
  idleMs: number,
  cleanup: () => void,
): AsyncIterable<Uint8Array> {
  if (!response.body) {
    cleanup();
    return;
  }
  const reader = response.body.getReader();
  let idle: NodeJS.Timeout | undefined;
  try {
    for (;;) {
      idle = setTimeout(
        () => controller.abort(new UpstreamTimeoutError(`sent nothing for ${idleMs} ms`)),
        idleMs,
      );
      let chunk: Awaited<ReturnType<typeof reader.read>>;
      try {
        chunk = await reader.read();
      } catch (err) {
        throw controller.signal.reason instanceof UpstreamTimeoutError ? controller.signal.reason : err;
      } finally {
        clearTimeout(idle);
      }
      if (chunk.done) return;
      yield chunk.value;
    }
  } finally {
    // Stopped early (the worker left): release the connection instead of reading the rest.
    if (!controller.signal.aborted) await reader.cancel().catch(() => {});
    reader.releaseLock();
    cleanup();
  }
}
