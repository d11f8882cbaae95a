/**
 * Metering for the model gateway: the usage a Messages API answer reports
 * (streamed or not), its price from a price table, the most a request can
 * cost before it is sent, and errors in the shape the Anthropic API (and so
 * the `claude` CLI) uses. Pure: no I/O, no clock.
 */

/** Token counts of one answer, as the Messages API reports them in `usage`. */
export interface ModelUsage {
  inputTokens: number;
  /** Tokens written to the prompt cache; `cacheWrite1hTokens` of them with the 1-hour lifetime. */
  cacheCreationInputTokens: number;
  cacheWrite1hTokens: number;
  cacheReadInputTokens: number;
  outputTokens: number;
  /** Server-side web searches (`usage.server_tool_use.web_search_requests`), billed per search. */
  webSearchRequests: number;
}

/** USD per million tokens (and per web search), for one model. */
export interface ModelPrice {
  input: number;
  output: number;
  /** Prompt cache writes with the default 5-minute lifetime. */
  cacheWrite: number;
  cacheRead: number;
  /** Prompt cache writes with the 1-hour lifetime; the API charges twice the input price. */
  cacheWrite1h: number;
  /** USD per server-side web search. */
  webSearch: number;
}

/** Model id as the CLI sends it in the request body → its price. */
export type PriceTable = Readonly<Record<string, ModelPrice>>;

export const EMPTY_USAGE: Readonly<ModelUsage> = Object.freeze({
  inputTokens: 0,
  cacheCreationInputTokens: 0,
  cacheWrite1hTokens: 0,
  cacheReadInputTokens: 0,
  outputTokens: 0,
  webSearchRequests: 0,
});

/** A price from the four figures a price list gives; the 1-hour cache write and web search follow the API's rules. */
export function modelPrice(p: {
  input: number;
  output: number;
  cache_write: number;
  cache_read: number;
  cache_write_1h?: number | undefined;
  web_search?: number | undefined;
}): ModelPrice {
  return {
    input: p.input,
    output: p.output,
    cacheWrite: p.cache_write,
    cacheRead: p.cache_read,
    cacheWrite1h: p.cache_write_1h ?? 2 * p.input,
    webSearch: p.web_search ?? 0.01,
  };
}

const SONNET = { input: 3, output: 15, cache_write: 3.75, cache_read: 0.3 };
const OPUS_4_0 = { input: 15, output: 75, cache_write: 18.75, cache_read: 1.5 };
const OPUS_4_5 = { input: 5, output: 25, cache_write: 6.25, cache_read: 0.5 };
const HAIKU_4_5 = { input: 1, output: 5, cache_write: 1.25, cache_read: 0.1 };
const HAIKU_3_5 = { input: 0.8, output: 4, cache_write: 1, cache_read: 0.08 };

/**
 * Anthropic's list prices (USD per million tokens) for the model ids the
 * `claude` CLI sends: the ids its aliases resolve to in 2.1.197 (`opus` →
 * claude-opus-4-8, the default; `sonnet` → claude-sonnet-5; `haiku` →
 * claude-haiku-4-5-20251001) and the dated ids of earlier models. The same
 * figures as the CLI's own table. `gateway.prices` in the config adds to it.
 */
export const DEFAULT_PRICES: Readonly<Record<string, Parameters<typeof modelPrice>[0]>> = {
  'claude-opus-4-8': OPUS_4_5,
  'claude-opus-4-7': OPUS_4_5,
  'claude-opus-4-6': OPUS_4_5,
  'claude-opus-4-5': OPUS_4_5,
  'claude-opus-4-5-20251101': OPUS_4_5,
  'claude-opus-4-1': OPUS_4_0,
  'claude-opus-4-1-20250805': OPUS_4_0,
  'claude-opus-4-0': OPUS_4_0,
  'claude-opus-4-20250514': OPUS_4_0,
  'claude-sonnet-5': SONNET,
  'claude-sonnet-4-6': SONNET,
  'claude-sonnet-4-5': SONNET,
  'claude-sonnet-4-5-20250929': SONNET,
  'claude-sonnet-4-0': SONNET,
  'claude-sonnet-4-20250514': SONNET,
  'claude-3-7-sonnet-20250219': SONNET,
  'claude-haiku-4-5': HAIKU_4_5,
  'claude-haiku-4-5-20251001': HAIKU_4_5,
  'claude-3-5-haiku-20241022': HAIKU_3_5,
};

/** The default table plus `extra` (config entries win), as prices. */
export function priceTable(
  extra: Readonly<Record<string, Parameters<typeof modelPrice>[0]>> = {},
): PriceTable {
  const merged = { ...DEFAULT_PRICES, ...extra };
  return Object.fromEntries(Object.entries(merged).map(([model, p]) => [model, modelPrice(p)]));
}

/** The price of `model`, if the table has it (own keys only: `__proto__` is no model). */
export function priceOf(table: PriceTable, model: string): ModelPrice | undefined {
  return Object.hasOwn(table, model) ? table[model] : undefined;
}

/** What `usage` costs at `price`, in USD (the CLI's own formula: 1-hour cache writes apart). */
export function priceUsage(usage: ModelUsage, price: ModelPrice): number {
  const write1h = Math.min(usage.cacheWrite1hTokens, usage.cacheCreationInputTokens);
  const write5m = usage.cacheCreationInputTokens - write1h;
  const perMillion =
    usage.inputTokens * price.input +
    write5m * price.cacheWrite +
    write1h * price.cacheWrite1h +
    usage.cacheReadInputTokens * price.cacheRead +
    usage.outputTokens * price.output;
  return perMillion / 1e6 + usage.webSearchRequests * price.webSearch;
}

/**
 * A model request is admitted while at least this much of its attempt's limit
 * is uncommitted: the attempt's limit is soft by one request's worst case, so
 * a $5 attempt can use its $5 even when one request may cost $2.50. The tree's
 * limit stays hard (a request must fit in it whole).
 */
export const MIN_HEADROOM_USD = 0.01;

/**
 * Input tokens a request may carry beyond what its body bytes bound: the
 * system prompt the API adds for tools (a few hundred tokens), and slack.
 */
export const INPUT_OVERHEAD_TOKENS = 4_096;
/** An image block: the API scales images to at most about 1.15 megapixels (~1,600 tokens); kept wide. */
export const IMAGE_TOKENS = 5_000;
/** A document block (a PDF: text plus an image of each page) whose pages the gateway does not count. */
export const DOCUMENT_TOKENS = 100_000;
/** A server tool (web search, web fetch, code execution) brings results into the input. */
export const SERVER_TOOL_TOKENS = 100_000;
/** Web searches a request may make when its tool sets no `max_uses`. */
export const DEFAULT_MAX_WEB_SEARCHES = 10;

/** What the gateway reads from a request body to bound its cost. */
export interface RequestShape {
  /** UTF-8 length of the body. */
  bodyBytes: number;
  /** `max_tokens`: the most output (thinking included) the answer may have. */
  maxTokens: number;
  images: number;
  documents: number;
  /** Server tools offered (`tools[].type` set, e.g. `web_search_20250305`), and their web searches. */
  serverTools: number;
  webSearches: number;
}

/**
 * The most a request can cost before it is sent. The bound:
 * - input: every token of text covers at least one byte of its UTF-8
 *   encoding, and the body holds every text the model reads (as JSON, with
 *   more bytes than text), so text input tokens ≤ body bytes; images,
 *   documents and server-tool results, which cost more tokens than their
 *   bytes, add a fixed allowance each, and `INPUT_OVERHEAD_TOKENS` covers
 *   what the API adds. All input is priced at the dearest input rate (plain,
 *   5-minute or 1-hour cache write), since the request decides how much is
 *   cached.
 * - output: `max_tokens` (thinking counts within it) at the output price.
 * - web searches: `max_uses` of each web search tool at the search price.
 * A PDF of more than a few dozen dense pages can exceed its allowance; the
 * gateway then charges what the answer reports, so the overshoot is bounded
 * by that one request.
 */
export function maxRequestCost(shape: RequestShape, price: ModelPrice): number {
  const inputTokens =
    shape.bodyBytes +
    INPUT_OVERHEAD_TOKENS +
    shape.images * IMAGE_TOKENS +
    shape.documents * DOCUMENT_TOKENS +
    shape.serverTools * SERVER_TOOL_TOKENS;
  const inputRate = Math.max(price.input, price.cacheWrite, price.cacheWrite1h);
  return (
    (inputTokens * inputRate + shape.maxTokens * price.output) / 1e6 + shape.webSearches * price.webSearch
  );
}

export type ParsedRequest =
  | { ok: true; model: string; stream: boolean; shape: RequestShape }
  | { ok: false; message: string };

/** The fields the gateway needs from a Messages API request body, or why it cannot take it. */
export function parseMessagesRequest(body: string): ParsedRequest {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return { ok: false, message: 'the request body is not JSON' };
  }
  if (!isRecord(parsed)) return { ok: false, message: 'the request body is not a JSON object' };
  const { model, max_tokens: maxTokens, stream } = parsed;
  if (typeof model !== 'string' || model === '')
    return { ok: false, message: 'model: a model id is required' };
  if (typeof maxTokens !== 'number' || !Number.isInteger(maxTokens) || maxTokens < 1)
    return { ok: false, message: 'max_tokens: a whole number of at least 1 is required' };
  if (stream !== undefined && typeof stream !== 'boolean')
    return { ok: false, message: 'stream: must be true or false' };
  const counts = { images: 0, documents: 0 };
  countBlocks(parsed.messages, counts, 0);
  countBlocks(parsed.system, counts, 0);
  let serverTools = 0;
  let webSearches = 0;
  for (const tool of Array.isArray(parsed.tools) ? parsed.tools : []) {
    if (!isRecord(tool) || typeof tool.type !== 'string' || tool.type === 'custom') continue;
    serverTools += 1;
    if (tool.type.startsWith('web_search')) {
      const uses = tool.max_uses;
      webSearches +=
        typeof uses === 'number' && Number.isInteger(uses) && uses >= 0 ? uses : DEFAULT_MAX_WEB_SEARCHES;
    }
  }
  return {
    ok: true,
    model,
    stream: stream === true,
    shape: {
      bodyBytes: Buffer.byteLength(body, 'utf8'),
      maxTokens,
      images: counts.images,
      documents: counts.documents,
      serverTools,
      webSearches,
    },
  };
}

/** Image and document blocks anywhere in the content (tool results hold blocks too); depth-bounded. */
function countBlocks(value: unknown, counts: { images: number; documents: number }, depth: number): void {
  if (depth > 8) return;
  if (Array.isArray(value)) {
    for (const item of value) countBlocks(item, counts, depth + 1);
    return;
  }
  if (!isRecord(value)) return;
  if (value.type === 'image') counts.images += 1;
  else if (value.type === 'document') counts.documents += 1;
  if (value.content !== undefined) countBlocks(value.content, counts, depth + 1);
}

/** The usage object of a message (`usage` of a non-streamed answer, or of `message_start`). */
export function usageOf(raw: unknown): ModelUsage {
  const usage = { ...EMPTY_USAGE };
  mergeUsage(usage, raw);
  return usage;
}

/**
 * Takes every count `raw` carries, keeping the larger: `message_delta`
 * repeats counts cumulatively, so a later figure replaces an earlier one and
 * never adds to it.
 */
function mergeUsage(into: ModelUsage, raw: unknown): void {
  if (!isRecord(raw)) return;
  const take = (key: keyof ModelUsage, value: unknown) => {
    if (typeof value === 'number' && Number.isFinite(value) && value > into[key]) into[key] = value;
  };
  take('inputTokens', raw.input_tokens);
  take('cacheCreationInputTokens', raw.cache_creation_input_tokens);
  take('cacheReadInputTokens', raw.cache_read_input_tokens);
  take('outputTokens', raw.output_tokens);
  if (isRecord(raw.cache_creation)) take('cacheWrite1hTokens', raw.cache_creation.ephemeral_1h_input_tokens);
  if (isRecord(raw.server_tool_use)) take('webSearchRequests', raw.server_tool_use.web_search_requests);
}

/** The usage of a non-streamed answer's JSON body; undefined when it is not a message. */
export function usageOfMessageBody(body: string): ModelUsage | undefined {
  try {
    const parsed: unknown = JSON.parse(body);
    if (!isRecord(parsed) || parsed.type !== 'message') return undefined;
    return usageOf(parsed.usage);
  } catch {
    return undefined;
  }
}

/** What a metered stream has shown so far. */
export interface StreamMeterState {
  usage: ModelUsage;
  /** `message_start` arrived: the request was taken and its input is billed. */
  started: boolean;
  /** `message_stop` arrived: the answer is whole and its usage final. */
  completed: boolean;
  /** An `error` event arrived in the stream. */
  errored: boolean;
  /**
   * Characters of generated content delivered (text, tool input JSON,
   * thinking): an estimate of the output tokens of an answer cut short before
   * `message_delta` reported them, since a token is at least one character.
   */
  deliveredChars: number;
  /** An event too large to read: the usage may be incomplete. */
  overflowed: boolean;
}

/** Largest single server-sent event the meter reads; Messages API events are far smaller. */
export const MAX_EVENT_CHARS = 4 * 1024 * 1024;

/**
 * Reads a Messages API stream of server-sent events as it passes, chunk by
 * chunk: chunks may split an event, a line, a `\r\n` or a UTF-8 character
 * anywhere. Only usage and progress are kept; the bytes pass on untouched.
 */
export class SseMeter {
  readonly state: StreamMeterState = {
    usage: { ...EMPTY_USAGE },
    started: false,
    completed: false,
    errored: false,
    deliveredChars: 0,
    overflowed: false,
  };
  private readonly decoder = new TextDecoder('utf-8');
  private pending = '';
  private data: string[] = [];
  private dataChars = 0;

  push(chunk: Uint8Array | string): void {
    const text = typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
    this.consume(text, false);
  }

  /** The stream ended: an event not closed by a blank line still counts. */
  end(): StreamMeterState {
    this.consume(this.decoder.decode(), true);
    this.dispatch();
    return this.state;
  }

  private consume(text: string, final: boolean): void {
    let buffer = this.pending + text;
    let start = 0;
    for (;;) {
      const cr = buffer.indexOf('\r', start);
      const lf = buffer.indexOf('\n', start);
      const at = cr < 0 ? lf : lf < 0 ? cr : Math.min(cr, lf);
      if (at < 0) break;
      // A `\r` at the very end may be the first half of `\r\n`: wait for the next chunk.
      if (at === cr && at === buffer.length - 1 && !final) break;
      this.line(buffer.slice(start, at));
      start = at + (buffer[at] === '\r' && buffer[at + 1] === '\n' ? 2 : 1);
    }
    buffer = buffer.slice(start);
    if (buffer.length > MAX_EVENT_CHARS) {
      // A line this long is no Messages API event: stop reading it, keep passing bytes on.
      this.state.overflowed = true;
      buffer = '';
    }
    this.pending = final ? '' : buffer;
    if (final && buffer) this.line(buffer);
  }

  private line(line: string): void {
    if (line === '') {
      this.dispatch();
      return;
    }
    if (!line.startsWith('data:')) return; // `event:` (the type is in the data too), `id:`, comments
    const value = line.slice(line[5] === ' ' ? 6 : 5);
    this.dataChars += value.length;
    if (this.dataChars > MAX_EVENT_CHARS) {
      this.state.overflowed = true;
      return;
    }
    this.data.push(value);
  }

  private dispatch(): void {
    if (this.data.length === 0) return;
    const text = this.data.join('\n');
    this.data = [];
    this.dataChars = 0;
    let event: unknown;
    try {
      event = JSON.parse(text);
    } catch {
      return;
    }
    if (isRecord(event)) this.apply(event);
  }

  private apply(event: Record<string, unknown>): void {
    const s = this.state;
    switch (event.type) {
      case 'message_start':
        s.started = true;
        if (isRecord(event.message)) mergeUsage(s.usage, event.message.usage);
        break;
      case 'message_delta':
        mergeUsage(s.usage, event.usage);
        break;
      case 'message_stop':
        s.completed = true;
        break;
      case 'error':
        s.errored = true;
        break;
      case 'content_block_delta': {
        const d = event.delta;
        if (!isRecord(d)) break;
        for (const key of ['text', 'partial_json', 'thinking'] as const) {
          const v = d[key];
          if (typeof v === 'string') s.deliveredChars += v.length;
        }
        break;
      }
    }
  }
}

/**
 * What a request is charged when its answer ended: the usage it reported
 * when whole. Cut short (client gone, upstream failed, stream broken), the
 * output is at least what was delivered, and the charge never exceeds the
 * reservation, which bounded the request from the start.
 */
export function chargeFor(state: StreamMeterState, price: ModelPrice, reservedUsd: number): number {
  if (state.completed && !state.overflowed) return priceUsage(state.usage, price);
  if (state.overflowed) return reservedUsd;
  const usage = { ...state.usage, outputTokens: Math.max(state.usage.outputTokens, state.deliveredChars) };
  return Math.min(reservedUsd, priceUsage(usage, price));
}

/** Error types of the Messages API and the statuses it sends them with. */
export type AnthropicErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'billing_error'
  | 'permission_error'
  | 'not_found_error'
  | 'request_too_large'
  | 'rate_limit_error'
  | 'api_error'
  | 'overloaded_error';

export const ERROR_STATUS: Readonly<Record<AnthropicErrorType, number>> = {
  invalid_request_error: 400,
  authentication_error: 401,
  billing_error: 402,
  permission_error: 403,
  not_found_error: 404,
  request_too_large: 413,
  rate_limit_error: 429,
  api_error: 500,
  overloaded_error: 529,
};

/** `{"type":"error","error":{"type":…,"message":…}}`, as the Messages API answers an error. */
export function anthropicErrorBody(type: AnthropicErrorType, message: string): string {
  return JSON.stringify({ type: 'error', error: { type, message } });
}

/** USD with four decimals, for messages. */
export function usd(value: number): string {
  return `$${value.toFixed(4)}`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
