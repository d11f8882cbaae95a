/**
 * Reading `claude -p --output-format stream-json --verbose` as it runs: one
 * JSON object per line (the session's init, each assistant and user message,
 * the final result). The worker turns each into a compact progress event and
 * a readable log line; the final line is the same result object that
 * `--output-format json` prints, so judging the run does not change.
 */
import type { WorkerEvent } from './progress.ts';

export interface StreamState {
  turn: number;
  tokens: { input: number; output: number; cache_read: number; cache_creation: number };
  /** Assistant message ids already counted: the CLI prints one line per content block of a message. */
  counted: Set<string>;
}

export function newStreamState(): StreamState {
  return { turn: 0, tokens: { input: 0, output: 0, cache_read: 0, cache_creation: 0 }, counted: new Set() };
}

export interface StreamItem {
  /** What to send as progress (none for lines that say nothing new). */
  event?: WorkerEvent;
  /** What the attempt's log shows for the line. */
  log: string;
}

const MAX_DETAIL = 200;
const MAX_TEXT = 300;
const MAX_LOG_TEXT = 2000;

/** One stream line: the progress it makes and its log line. Lines that are not JSON are logged as they are. */
export function readStreamLine(line: string, state: StreamState): StreamItem | undefined {
  const trimmed = line.trim();
  if (!trimmed) return undefined;
  let msg: Record<string, unknown>;
  try {
    msg = JSON.parse(trimmed) as Record<string, unknown>;
  } catch {
    return { log: clip(trimmed, MAX_LOG_TEXT) };
  }
  switch (msg.type) {
    case 'system':
      return msg.subtype === 'init'
        ? { log: `[session] ${String(msg.session_id ?? '')} model ${String(msg.model ?? '?')}` }
        : undefined;
    case 'assistant':
      return assistantItem(msg, state);
    case 'user':
      return userItem(msg);
    case 'result':
      // Kept whole: it is the run's result, and the log should hold it as the CLI printed it.
      return {
        event: {
          kind: 'progress',
          turn: typeof msg.num_turns === 'number' ? msg.num_turns : state.turn,
          tokens: { ...state.tokens },
          ...(typeof msg.total_cost_usd === 'number' ? { cost_usd: msg.total_cost_usd } : {}),
          text: clip(lastLine(String(msg.result ?? '')), MAX_TEXT),
        },
        log: trimmed,
      };
    default:
      return undefined;
  }
}

function assistantItem(msg: Record<string, unknown>, state: StreamState): StreamItem | undefined {
  const message = (msg.message ?? {}) as {
    id?: string;
    content?: { type?: string; text?: string; name?: string; input?: unknown }[];
    usage?: Record<string, unknown>;
  };
  // Subagents' messages (parent_tool_use_id set) are part of the turn that called them.
  if (message.id && !state.counted.has(message.id) && !msg.parent_tool_use_id) {
    state.counted.add(message.id);
    state.turn += 1;
    const u = message.usage ?? {};
    state.tokens.input += count(u.input_tokens);
    state.tokens.output += count(u.output_tokens);
    state.tokens.cache_read += count(u.cache_read_input_tokens);
    state.tokens.cache_creation += count(u.cache_creation_input_tokens);
  }
  const logs: string[] = [];
  let event: WorkerEvent | undefined;
  for (const block of message.content ?? []) {
    if (block.type === 'text' && block.text?.trim()) {
      logs.push(`[turn ${state.turn}] ${clip(block.text.trim(), MAX_LOG_TEXT)}`);
      event = { kind: 'progress', turn: state.turn, text: clip(lastLine(block.text), MAX_TEXT) };
    } else if (block.type === 'tool_use') {
      const detail = toolDetail(block.input);
      logs.push(`[turn ${state.turn}] ${block.name ?? 'tool'}${detail ? ` ${detail}` : ''}`);
      event = {
        kind: 'progress',
        turn: state.turn,
        tool: clip(block.name ?? 'tool', 100),
        ...(detail ? { detail } : {}),
      };
    }
  }
  if (logs.length === 0) return undefined;
  return { ...(event ? { event: { ...event, tokens: { ...state.tokens } } } : {}), log: logs.join('\n') };
}

function userItem(msg: Record<string, unknown>): StreamItem | undefined {
  const content = ((msg.message ?? {}) as { content?: unknown }).content;
  if (!Array.isArray(content)) return undefined;
  const results = content.filter((b) => (b as { type?: string }).type === 'tool_result') as {
    content?: unknown;
    is_error?: boolean;
  }[];
  if (results.length === 0) return undefined;
  const lines = results.map((r) => {
    const text = typeof r.content === 'string' ? r.content : JSON.stringify(r.content ?? '');
    return `  ${r.is_error ? '! ' : '→ '}${clip(text.replace(/\s+/g, ' '), 300)}`;
  });
  return { log: lines.join('\n') };
}

/** The short argument that says what a tool call does: a path, a command's first line, a pattern, a URL. */
export function toolDetail(input: unknown): string | undefined {
  if (!input || typeof input !== 'object') return undefined;
  const i = input as Record<string, unknown>;
  for (const key of [
    'file_path',
    'path',
    'notebook_path',
    'command',
    'pattern',
    'url',
    'query',
    'description',
    'prompt',
  ]) {
    const value = i[key];
    if (typeof value === 'string' && value.trim())
      return clip(value.trim().split('\n')[0] as string, MAX_DETAIL);
  }
  return undefined;
}

function count(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? Math.floor(value) : 0;
}

function lastLine(text: string): string {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  return lines.at(-1) ?? '';
}

function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
