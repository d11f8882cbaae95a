/**
 * A scripted stand-in for the Anthropic Messages API, good enough to drive the
 * real `claude` CLI offline: point `ANTHROPIC_BASE_URL` at `url` (see
 * `realClaudeEnv` in `real-claude.ts`) and a script decides every model turn.
 *
 * What the CLI (2.1.197, `-p`, with the environment from `realClaudeEnv`) was observed to send:
 * - `HEAD /` once at start (a connectivity check), answered 200; then only `POST /v1/messages?beta=true`
 *   with `"stream": true`, one request per model turn, each carrying the whole conversation, the CLI's
 *   tools (24 of them: `Bash`, `Edit`, `Read`, `Write`, `Agent`, …, plus `StructuredOutput` with
 *   `--json-schema`), the system prompt as text blocks, `max_tokens` 64000, `thinking`, `metadata`.
 * - `messages` starts with two user messages: the first holds `<system-reminder>` context (date, …)
 *   followed by the prompt (so `prompt` contains it; match with `includes`), the second lists agent types
 *   and skills. Each tool call is an assistant message with the tool_use and a user message with its
 *   tool_result (string content; `is_error: true` e.g. for `<tool_use_error>File has not been read yet.`
 *   when Edit comes before Read). So a text-only answer is a 1-request session, and a session with N tool
 *   calls takes N + 1 requests. Decide from `toolsCalled`/`toolResults`, not from `requestNo`.
 * - With `--json-schema`: calling `StructuredOutput` ends the session at once (its tool_result is never
 *   sent back; the result's `structured_output` is the input, `result` its JSON). A prose answer instead
 *   gets one more request whose last user message says "[structured-output-enforce] You MUST call the
 *   StructuredOutput tool…"; if the model answers in prose again, the CLI ends with `subtype: success`,
 *   `is_error: false`, exit 0 and no `structured_output`.
 * - Non-session requests: with `CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1` none at all (no title, quota
 *   check, count_tokens or telemetry). Without it, the CLI first sends a title request: same endpoint,
 *   `tools` [], `thinking` disabled, `output_config.format` a JSON schema `{title: string}` and one user
 *   message `<session>\n<prompt>\n</session>…`; it also resolves api.anthropic.com (telemetry). A script
 *   can recognise such requests by `tools.length === 0` and answer e.g. `text('{"title":"…"}')`.
 * Any other path is answered with a quick 404 so nothing waits on it.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface MessagesRequest {
  model: string;
  system?: unknown; // as sent (string or blocks)
  messages: { role: 'user' | 'assistant'; content: unknown }[];
  tools: { name: string; input_schema?: unknown }[]; // [] when none
  stream: boolean;
  /** Concatenated text of the first user message (the prompt the CLI was given, plus whatever the CLI adds). */
  prompt: string;
  /** Names of the tools already called in this conversation, in order (from assistant tool_use blocks). */
  toolsCalled: string[];
  /** tool_result blocks sent back so far, in order, as { tool_use_id, content: string, is_error }. */
  toolResults: { toolUseId: string; content: string; isError: boolean }[];
  raw: unknown;
  /** The request's headers (lower-case names), e.g. to see which credential reached the API. */
  headers: Record<string, string>;
}

export type ScriptedBlock =
  | { type: 'text'; text: string }
  | { type: 'tool_use'; name: string; input: unknown; id?: string };

export interface ScriptedReply {
  content: ScriptedBlock[];
  stop_reason?: 'end_turn' | 'tool_use';
  usage?: {
    input_tokens: number;
    output_tokens: number;
    cache_creation_input_tokens?: number;
    cache_read_input_tokens?: number;
  };
}

export type Script = (
  request: MessagesRequest,
  context: { requestNo: number },
) => ScriptedReply | Promise<ScriptedReply>;

export interface MessagesApi {
  /** `http://127.0.0.1:<port>`, no trailing slash: the value for `ANTHROPIC_BASE_URL`. */
  url: string;
  /** Every `POST /v1/messages` in arrival order. */
  requests: MessagesRequest[];
  /** Errors thrown by the script (each also answered with a 500), in order. */
  errors?: Error[];
  /** Closes the server and its connections. */
  stop(): Promise<void>;
}

/** Convenience reply: one text block, `end_turn`. */
export function text(t: string): ScriptedReply {
  return { content: [{ type: 'text', text: t }], stop_reason: 'end_turn' };
}

/** Convenience reply: one tool call, `tool_use`. */
export function toolUse(name: string, input: unknown): ScriptedReply {
  return { content: [{ type: 'tool_use', name, input }], stop_reason: 'tool_use' };
}

const DEFAULT_USAGE = { input_tokens: 100, output_tokens: 20 };
const MAX_BODY_BYTES = 50 * 1024 * 1024;

export async function startMessagesApi(script: Script): Promise<MessagesApi> {
  const requests: MessagesRequest[] = [];
  const errors: Error[] = [];
  let requestCounter = 0;
  let toolCounter = 0;
  let messageCounter = 0;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const rawUrl = req.url ?? '/';
    const q = rawUrl.indexOf('?');
    const path = q < 0 ? rawUrl : rawUrl.slice(0, q);
    const method = req.method ?? 'GET';

    if (path === '/' && (method === 'HEAD' || method === 'GET')) {
      res.writeHead(200, { 'content-type': 'text/plain' }).end(method === 'HEAD' ? undefined : 'ok');
      return;
    }
    if (path !== '/v1/messages' || method !== 'POST') {
      req.resume();
      sendJson(res, 404, {
        type: 'error',
        error: { type: 'not_found_error', message: `${method} ${path} is not served here` },
      });
      return;
    }

    let body: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(await readBody(req));
      if (!isRecord(parsed)) throw new Error('request body is not a JSON object');
      body = parsed;
    } catch (err) {
      sendJson(res, 400, {
        type: 'error',
        error: { type: 'invalid_request_error', message: errorOf(err).message },
      });
      return;
    }

    const request = toMessagesRequest(body);
    request.headers = Object.fromEntries(
      Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(',') : (v ?? '')]),
    );
    requests.push(request);
    const requestNo = ++requestCounter;

    let reply: ScriptedReply;
    try {
      reply = await script(request, { requestNo });
    } catch (err) {
      const error = errorOf(err);
      errors.push(error);
      sendJson(res, 500, { type: 'error', error: { type: 'api_error', message: error.message } });
      return;
    }

    const content = reply.content.map((block) =>
      block.type === 'text'
        ? { type: 'text' as const, text: block.text }
        : {
            type: 'tool_use' as const,
            id: block.id ?? `toolu_${String(++toolCounter).padStart(6, '0')}`,
            name: block.name,
            input: block.input ?? {},
          },
    );
    const stopReason =
      reply.stop_reason ?? (content.some((b) => b.type === 'tool_use') ? 'tool_use' : 'end_turn');
    const usage = reply.usage ?? DEFAULT_USAGE;
    const id = `msg_standin_${String(++messageCounter).padStart(6, '0')}`;
    const model = request.model || 'claude-standin';

    if (!request.stream) {
      sendJson(res, 200, {
        id,
        type: 'message',
        role: 'assistant',
        model,
        content,
        stop_reason: stopReason,
        stop_sequence: null,
        usage: { ...usage },
      });
      return;
    }

    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
    });
    const event = (type: string, data: Record<string, unknown>): void => {
      res.write(`event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`);
    };
    event('message_start', {
      message: {
        id,
        type: 'message',
        role: 'assistant',
        model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { ...usage, output_tokens: 1 },
      },
    });
    content.forEach((block, index) => {
      if (block.type === 'text') {
        event('content_block_start', { index, content_block: { type: 'text', text: '' } });
        event('content_block_delta', { index, delta: { type: 'text_delta', text: block.text } });
      } else {
        event('content_block_start', {
          index,
          content_block: { type: 'tool_use', id: block.id, name: block.name, input: {} },
        });
        const json = JSON.stringify(block.input);
        // Two chunks, as a real stream would split it; the CLI must join them.
        const cut = Math.floor(json.length / 2);
        for (const partial of cut > 0 ? [json.slice(0, cut), json.slice(cut)] : [json]) {
          event('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: partial } });
        }
      }
      event('content_block_stop', { index });
    });
    event('message_delta', {
      delta: { stop_reason: stopReason, stop_sequence: null },
      usage: { output_tokens: usage.output_tokens },
    });
    event('message_stop', {});
    res.end();
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      errors.push(errorOf(err));
      if (!res.headersSent) {
        sendJson(res, 500, { type: 'error', error: { type: 'api_error', message: errorOf(err).message } });
      } else {
        res.destroy();
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    errors,
    stop: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}

function toMessagesRequest(body: Record<string, unknown>): MessagesRequest {
  const messages = (Array.isArray(body.messages) ? body.messages : []).filter(isRecord).map((m) => ({
    role: m.role === 'assistant' ? ('assistant' as const) : ('user' as const),
    content: m.content,
  }));
  const tools = (Array.isArray(body.tools) ? body.tools : []).filter(isRecord).map((t) => ({
    name: typeof t.name === 'string' ? t.name : '',
    input_schema: t.input_schema,
  }));
  const firstUser = messages.find((m) => m.role === 'user');
  const toolsCalled: string[] = [];
  const toolResults: MessagesRequest['toolResults'] = [];
  for (const m of messages) {
    for (const block of blocksOf(m.content)) {
      if (m.role === 'assistant' && block.type === 'tool_use' && typeof block.name === 'string') {
        toolsCalled.push(block.name);
      }
      if (m.role === 'user' && block.type === 'tool_result') {
        toolResults.push({
          toolUseId: typeof block.tool_use_id === 'string' ? block.tool_use_id : '',
          content: textOf(block.content),
          isError: block.is_error === true,
        });
      }
    }
  }
  const request: MessagesRequest = {
    model: typeof body.model === 'string' ? body.model : '',
    messages,
    tools,
    stream: body.stream === true,
    prompt: firstUser ? textOf(firstUser.content) : '',
    toolsCalled,
    toolResults,
    raw: body,
    headers: {},
  };
  if (body.system !== undefined) request.system = body.system;
  return request;
}

function blocksOf(content: unknown): Record<string, unknown>[] {
  if (typeof content === 'string') return [{ type: 'text', text: content }];
  return Array.isArray(content) ? content.filter(isRecord) : [];
}

/** The text of a content value: a string, or the `text` of its text blocks joined by newlines. */
function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  return blocksOf(content)
    .filter((b) => b.type === 'text' && typeof b.text === 'string')
    .map((b) => b.text as string)
    .join('\n');
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function errorOf(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new Error('request body too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
