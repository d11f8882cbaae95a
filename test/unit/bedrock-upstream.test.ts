/**
 * The gateway's Bedrock upstream against a fake Bedrock Runtime client: what
 * it sends (model from the configured map only, Bedrock's body), and that a
 * streamed answer comes back as the server-sent events the CLI reads.
 */
import {
  InvokeModelCommand,
  InvokeModelWithResponseStreamCommand,
  ThrottlingException,
} from '@aws-sdk/client-bedrock-runtime';
import { describe, expect, it } from 'vitest';
import {
  anthropicErrorFor,
  bedrockBody,
  bedrockUpstream,
} from '../../functions/adapters/bedrock-upstream.ts';
import { gatewayRequestOf } from '../../functions/handlers/gateway-request.ts';

const MODELS = { 'claude-sonnet-4-5-20250929': 'global.anthropic.claude-sonnet-4-5-20250929-v1:0' };

async function text(body: AsyncIterable<Uint8Array>): Promise<string> {
  let out = '';
  for await (const chunk of body) out += Buffer.from(chunk).toString('utf8');
  return out;
}

const chunk = (event: unknown) => ({ chunk: { bytes: Buffer.from(JSON.stringify(event), 'utf8') } });

async function* events(...parts: unknown[]) {
  for (const p of parts) yield p;
}

function fakeClient(answer: (command: unknown) => unknown) {
  const sent: unknown[] = [];
  return {
    sent,
    client: {
      send: async (command: unknown) => {
        sent.push(command);
        return answer(command);
      },
    } as never,
  };
}

const request = (body: unknown, path = '/v1/messages?beta=true') => ({
  path,
  headers: { 'anthropic-version': '2023-06-01', 'anthropic-beta': 'a-beta, b-beta' },
  body: JSON.stringify(body),
  signal: AbortSignal.timeout(5_000),
});

describe('the Bedrock upstream', () => {
  it('streams a configured model as server-sent events, without Bedrock metrics', async () => {
    const { client, sent } = fakeClient(() => ({
      body: events(
        chunk({ type: 'message_start', message: { usage: { input_tokens: 12, output_tokens: 1 } } }),
        chunk({ type: 'content_block_delta', delta: { type: 'text_delta', text: 'hi' } }),
        chunk({
          type: 'message_delta',
          usage: { output_tokens: 7 },
          'amazon-bedrock-invocationMetrics': { inputTokenCount: 12 },
        }),
        chunk({ type: 'message_stop' }),
      ),
    }));
    const res = await bedrockUpstream(client, { models: MODELS }).send(
      request({ model: 'claude-sonnet-4-5-20250929', stream: true, max_tokens: 100, messages: [] }),
    );
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/event-stream');
    const sse = await text(res.body);
    expect(
      sse
        .split('\n\n')
        .filter(Boolean)
        .map((e) => e.split('\n')[0]),
    ).toEqual([
      'event: message_start',
      'event: content_block_delta',
      'event: message_delta',
      'event: message_stop',
    ]);
    expect(sse).not.toContain('amazon-bedrock');
    const command = sent[0] as InvokeModelWithResponseStreamCommand;
    expect(command).toBeInstanceOf(InvokeModelWithResponseStreamCommand);
    expect(command.input.modelId).toBe(MODELS['claude-sonnet-4-5-20250929']);
    const body = JSON.parse(Buffer.from(command.input.body as Uint8Array).toString('utf8'));
    expect(body).toEqual({
      max_tokens: 100,
      messages: [],
      anthropic_version: 'bedrock-2023-05-31',
      anthropic_beta: ['a-beta', 'b-beta'],
    });
  });

  it('answers a request without streaming with the JSON body', async () => {
    const { client, sent } = fakeClient(() => ({ body: Buffer.from('{"type":"message"}') }));
    const res = await bedrockUpstream(client, { models: MODELS }).send(
      request({ model: 'claude-sonnet-4-5-20250929', max_tokens: 5, messages: [] }),
    );
    expect(sent[0]).toBeInstanceOf(InvokeModelCommand);
    expect(await text(res.body)).toBe('{"type":"message"}');
  });

  it('refuses a model outside the configured map without calling Bedrock', async () => {
    const { client, sent } = fakeClient(() => ({}));
    const res = await bedrockUpstream(client, { models: MODELS }).send(
      request({ model: 'claude-opus-4-1', stream: true, messages: [] }),
    );
    expect(res.status).toBe(400);
    const body = JSON.parse(await text(res.body));
    expect(body.error.type).toBe('invalid_request_error');
    expect(body.error.message).toContain('claude-opus-4-1');
    expect(body.error.message).toContain('claude-sonnet-4-5-20250929');
    expect(sent).toEqual([]);
    // Prototype keys are not models either.
    const proto = await bedrockUpstream(client, { models: MODELS }).send(request({ model: 'constructor' }));
    expect(proto.status).toBe(400);
  });

  it('answers paths other than /v1/messages with 404, and Bedrock errors in the Messages API shape', async () => {
    const { client } = fakeClient(() => {
      throw new ThrottlingException({ message: 'slow down', $metadata: {} });
    });
    const upstream = bedrockUpstream(client, { models: MODELS });
    expect((await upstream.send(request({}, '/v1/messages/count_tokens'))).status).toBe(404);
    const res = await upstream.send(
      request({ model: 'claude-sonnet-4-5-20250929', stream: true, messages: [] }),
    );
    expect(res.status).toBe(429);
    expect(JSON.parse(await text(res.body))).toEqual({
      type: 'error',
      error: { type: 'rate_limit_error', message: 'slow down' },
    });
    expect(anthropicErrorFor({ name: 'AccessDeniedException', message: 'no' }).status).toBe(403);
  });

  it('reports an error inside the stream as an error event and stops', async () => {
    const { client } = fakeClient(() => ({
      body: events(chunk({ type: 'message_start', message: {} }), {
        modelStreamErrorException: { message: 'model broke' },
      }),
    }));
    const res = await bedrockUpstream(client, { models: MODELS }).send(
      request({ model: 'claude-sonnet-4-5-20250929', stream: true, messages: [] }),
    );
    const sse = await text(res.body);
    expect(sse).toContain('event: error');
    expect(sse).toContain('model broke');
  });

  it('keeps no beta list when none is asked for', () => {
    expect(JSON.parse(bedrockBody({ model: 'm', stream: true, max_tokens: 1 }, undefined))).toEqual({
      max_tokens: 1,
      anthropic_version: 'bedrock-2023-05-31',
    });
  });
});

describe('the gateway request from API Gateway', () => {
  it('drops the /gateway prefix, keeps the query, lower-cases headers and decodes base64 bodies', () => {
    const req = gatewayRequestOf({
      httpMethod: 'POST',
      path: '/gateway/v1/messages',
      headers: { 'X-Api-Key': 'tt1.x', 'Anthropic-Version': '2023-06-01' },
      multiValueQueryStringParameters: { beta: ['true'] },
      body: Buffer.from('{"a":1}').toString('base64'),
      isBase64Encoded: true,
    });
    expect(req).toEqual({
      method: 'POST',
      path: '/v1/messages?beta=true',
      headers: { 'x-api-key': 'tt1.x', 'anthropic-version': '2023-06-01' },
      body: '{"a":1}',
    });
    expect(
      gatewayRequestOf({
        httpMethod: 'HEAD',
        path: '/gateway',
        headers: {},
        multiValueQueryStringParameters: null,
        body: null,
        isBase64Encoded: false,
      }).path,
    ).toBe('/');
  });
});
