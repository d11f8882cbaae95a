/**
 * The gateway's metering: usage read from a Messages API stream however its
 * chunks fall, prices, the bound on a request's cost, and Anthropic errors.
 */
import { describe, expect, it } from 'vitest';
import {
  anthropicErrorBody,
  chargeFor,
  DEFAULT_PRICES,
  maxRequestCost,
  modelPrice,
  parseMessagesRequest,
  priceOf,
  priceTable,
  priceUsage,
  SseMeter,
  usageOfMessageBody,
} from '../../functions/core/model-metering.ts';

const SONNET = modelPrice({ input: 3, output: 15, cache_write: 3.75, cache_read: 0.3 });

/** A stream as the API sends it: message_start with the input usage, a text block, message_delta with the output. */
function stream(text = 'Hello, wörld ✓', opts: { crlf?: boolean } = {}): string {
  const ev = (type: string, data: Record<string, unknown>) =>
    `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
  const out = [
    ev('message_start', {
      message: {
        id: 'msg_1',
        type: 'message',
        role: 'assistant',
        content: [],
        usage: {
          input_tokens: 1200,
          cache_creation_input_tokens: 3000,
          cache_read_input_tokens: 40000,
          output_tokens: 1,
          cache_creation: { ephemeral_5m_input_tokens: 2000, ephemeral_1h_input_tokens: 1000 },
        },
      },
    }),
    ': a comment line\n\n',
    ev('ping', {}),
    ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
    ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text } }),
    ev('content_block_stop', { index: 0 }),
    ev('message_delta', { delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 150 } }),
    ev('message_delta', { delta: {}, usage: { output_tokens: 321 } }),
    ev('message_stop', {}),
  ].join('');
  return opts.crlf ? out.replace(/\n/g, '\r\n') : out;
}

const EXPECTED = {
  inputTokens: 1200,
  cacheCreationInputTokens: 3000,
  cacheWrite1hTokens: 1000,
  cacheReadInputTokens: 40000,
  outputTokens: 321,
  webSearchRequests: 0,
};

function meterIn(pieces: Uint8Array[]) {
  const meter = new SseMeter();
  for (const p of pieces) meter.push(p);
  return meter.end();
}

describe('SseMeter', () => {
  it('reads the input usage of message_start and the cumulative output of the last message_delta', () => {
    const state = meterIn([Buffer.from(stream())]);
    expect(state.usage).toEqual(EXPECTED);
    expect(state).toMatchObject({ started: true, completed: true, errored: false, overflowed: false });
    expect(state.deliveredChars).toBe('Hello, wörld ✓'.length);
  });

  it('reads the same usage whatever the chunk boundaries: every split point, mid-event, mid-character, mid-CRLF', () => {
    for (const crlf of [false, true]) {
      const bytes = Buffer.from(stream('Hello, wörld ✓', { crlf }));
      for (let cut = 1; cut < bytes.length; cut++) {
        const state = meterIn([bytes.subarray(0, cut), bytes.subarray(cut)]);
        expect(state.usage, `cut at ${cut}${crlf ? ' (CRLF)' : ''}`).toEqual(EXPECTED);
        expect(state.completed).toBe(true);
      }
      // One byte at a time.
      const state = meterIn([...bytes].map((b) => Uint8Array.of(b)));
      expect(state.usage).toEqual(EXPECTED);
      expect(state.deliveredChars).toBe('Hello, wörld ✓'.length);
    }
  });

  it('keeps the larger count when a message_delta repeats input usage cumulatively', () => {
    const meter = new SseMeter();
    meter.push(
      'data: {"type":"message_start","message":{"usage":{"input_tokens":10,"output_tokens":1}}}\n\n' +
        'data: {"type":"message_delta","usage":{"input_tokens":10,"output_tokens":7,"server_tool_use":{"web_search_requests":2}}}\n\n' +
        'data: {"type":"message_delta","usage":{"output_tokens":5}}\n\n',
    );
    const state = meter.end();
    expect(state.usage).toMatchObject({ inputTokens: 10, outputTokens: 7, webSearchRequests: 2 });
    expect(state.completed).toBe(false);
  });

  it('counts an event the stream ends inside of, and notes an error event', () => {
    const meter = new SseMeter();
    meter.push('event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"x"}}');
    expect(meter.end()).toMatchObject({ errored: true, completed: false });
  });

  it('ignores lines that are not JSON and gives up reading (flagged) an event too large to be real', () => {
    const meter = new SseMeter();
    meter.push('data: not json\n\n');
    meter.push(`data: ${'x'.repeat(5 * 1024 * 1024)}`);
    meter.push('\n\ndata: {"type":"message_stop"}\n\n');
    const state = meter.end();
    expect(state.overflowed).toBe(true);
    expect(state.completed).toBe(true);
  });
});

describe('prices', () => {
  it('prices each kind of token at its rate, 1-hour cache writes apart (the CLI formula)', () => {
    const cost = priceUsage(EXPECTED, SONNET);
    const expected = (1200 * 3 + 2000 * 3.75 + 1000 * 6 + 40000 * 0.3 + 321 * 15) / 1e6;
    expect(cost).toBeCloseTo(expected, 12);
    expect(priceUsage({ ...EXPECTED, webSearchRequests: 3 }, SONNET)).toBeCloseTo(expected + 0.03, 12);
  });

  it('has the ids the CLI sends for opus (its default), sonnet and haiku, and config entries add to it', () => {
    for (const id of ['claude-opus-4-8', 'claude-sonnet-5', 'claude-haiku-4-5-20251001']) {
      expect(DEFAULT_PRICES[id], id).toBeDefined();
    }
    const table = priceTable({ 'my-model': { input: 1, output: 2, cache_write: 3, cache_read: 4 } });
    expect(priceOf(table, 'my-model')).toMatchObject({ input: 1, output: 2, cacheWrite1h: 2 });
    expect(priceOf(table, 'claude-opus-4-8')).toMatchObject({ input: 5, output: 25 });
    expect(priceOf(table, '__proto__')).toBeUndefined();
    expect(priceOf(table, 'toString')).toBeUndefined();
  });
});

describe('the bound on a request', () => {
  const body = (extra: Record<string, unknown> = {}) =>
    JSON.stringify({
      model: 'claude-sonnet-5',
      max_tokens: 64000,
      stream: true,
      messages: [{ role: 'user', content: [{ type: 'text', text: 'héllo '.repeat(1000) }] }],
      ...extra,
    });

  it('bounds input tokens by the body bytes (plus an allowance) and output by max_tokens, at the dearest input rate', () => {
    const parsed = parseMessagesRequest(body());
    if (!parsed.ok) throw new Error(parsed.message);
    expect(parsed).toMatchObject({ model: 'claude-sonnet-5', stream: true });
    expect(parsed.shape.bodyBytes).toBe(Buffer.byteLength(body()));
    const max = maxRequestCost(parsed.shape, SONNET);
    expect(max).toBeCloseTo(((parsed.shape.bodyBytes + 4096) * 6 + 64000 * 15) / 1e6, 12);
    // Whatever the answer's usage within the bound, it costs no more than the bound.
    const worst = {
      inputTokens: 0,
      cacheCreationInputTokens: parsed.shape.bodyBytes,
      cacheWrite1hTokens: parsed.shape.bodyBytes,
      cacheReadInputTokens: 0,
      outputTokens: 64000,
      webSearchRequests: 0,
    };
    expect(priceUsage(worst, SONNET)).toBeLessThanOrEqual(max);
  });

  it('adds allowances for images, documents (also inside tool results) and server tools with their searches', () => {
    const plain = parseMessagesRequest(body());
    const rich = parseMessagesRequest(
      body({
        messages: [
          {
            role: 'user',
            content: [
              { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'AA==' } },
              { type: 'tool_result', tool_use_id: 't', content: [{ type: 'document', source: {} }] },
            ],
          },
        ],
        tools: [
          { name: 'Bash', input_schema: {} },
          { type: 'web_search_20250305', name: 'web_search', max_uses: 3 },
        ],
      }),
    );
    if (!plain.ok || !rich.ok) throw new Error('unparsed');
    expect(rich.shape).toMatchObject({ images: 1, documents: 1, serverTools: 1, webSearches: 3 });
    expect(maxRequestCost(rich.shape, SONNET)).toBeGreaterThan(
      ((5_000 + 100_000 + 100_000) * 6) / 1e6 + 3 * 0.01,
    );
  });

  it('refuses bodies without a model, a max_tokens, or that are not JSON objects', () => {
    expect(parseMessagesRequest('nope')).toMatchObject({
      ok: false,
      message: expect.stringContaining('JSON'),
    });
    expect(parseMessagesRequest('[1]')).toMatchObject({ ok: false });
    expect(parseMessagesRequest('{"max_tokens":1}')).toMatchObject({
      ok: false,
      message: expect.stringContaining('model'),
    });
    expect(parseMessagesRequest('{"model":"m","max_tokens":0}')).toMatchObject({
      ok: false,
      message: expect.stringContaining('max_tokens'),
    });
    expect(parseMessagesRequest('{"model":"m","max_tokens":1.5}')).toMatchObject({ ok: false });
  });
});

describe('what a request is charged', () => {
  const reserved = 1;
  it('charges the reported usage of a whole answer', () => {
    const state = meterIn([Buffer.from(stream())]);
    expect(chargeFor(state, SONNET, reserved)).toBeCloseTo(priceUsage(EXPECTED, SONNET), 12);
  });

  it('charges an answer cut short at least the output it delivered, and never more than the reservation', () => {
    const meter = new SseMeter();
    meter.push(
      'data: {"type":"message_start","message":{"usage":{"input_tokens":1000,"output_tokens":1}}}\n\n',
    );
    meter.push(
      `data: ${JSON.stringify({ type: 'content_block_delta', delta: { type: 'text_delta', text: 'y'.repeat(5000) } })}\n\n`,
    );
    const state = meter.end();
    expect(state.completed).toBe(false);
    expect(chargeFor(state, SONNET, reserved)).toBeCloseTo((1000 * 3 + 5000 * 15) / 1e6, 12);
    expect(chargeFor(state, SONNET, 0.01)).toBe(0.01);
  });

  it('reads the usage of a non-streamed answer', () => {
    expect(
      usageOfMessageBody(JSON.stringify({ type: 'message', usage: { input_tokens: 5, output_tokens: 6 } })),
    ).toMatchObject({ inputTokens: 5, outputTokens: 6 });
    expect(usageOfMessageBody('{"type":"error"}')).toBeUndefined();
  });
});

it('writes errors the way the Messages API does', () => {
  expect(JSON.parse(anthropicErrorBody('billing_error', 'spent'))).toEqual({
    type: 'error',
    error: { type: 'billing_error', message: 'spent' },
  });
});
