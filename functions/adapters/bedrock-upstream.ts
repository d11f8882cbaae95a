/**
 * The model gateway's upstream on Amazon Bedrock: the workers' Messages API
 * requests, sent with the gateway's own role. Only the models of the
 * configured map are reachable, and the role may invoke only those (infra).
 *
 * Bedrock takes the Messages API body with the model in the call instead of
 * the body, `anthropic_version: bedrock-2023-05-31`, and beta flags in the
 * body; a streamed answer arrives as event-stream chunks that each hold one
 * Messages API event as JSON, which go back to the CLI as server-sent events.
 * The Bedrock package is imported by the first request (the gateway's cold
 * start loads the SDK package of its configured upstream alone).
 */
import type { BedrockRuntimeClient, ResponseStream } from '@aws-sdk/client-bedrock-runtime';
import { type AnthropicErrorType, anthropicErrorBody } from '../core/model-metering.ts';
import { awsErrorKind, errorName } from './aws-errors.ts';
import { lazy } from './lazy.ts';
import type { ModelUpstream } from './model-upstream.ts';

/** The Bedrock commands, imported once on first use (each `import()` call resolves the module again). */
const bedrockSdk = lazy(() => import('./sdk/bedrock.ts'));

const BEDROCK_ANTHROPIC_VERSION = 'bedrock-2023-05-31';

type BedrockLike = Pick<BedrockRuntimeClient, 'send'>;

export interface BedrockUpstreamOptions {
  /** Model id as the CLI sends it → Bedrock model or inference profile id. */
  models: Readonly<Record<string, string>>;
}

/** A Bedrock refusal in the shape the CLI reads: `{type: error, error: {type, message}}`. */
function errorBody(status: number, type: AnthropicErrorType, message: string) {
  return {
    status,
    headers: { 'content-type': 'application/json' },
    body: once(anthropicErrorBody(type, message)),
  };
}

async function* once(text: string): AsyncIterable<Uint8Array> {
  yield Buffer.from(text, 'utf8');
}

/** Bedrock's exception names → the status and error type the Messages API would give. */
export function anthropicErrorFor(err: unknown): {
  status: number;
  type: AnthropicErrorType;
  message: string;
} {
  const name = errorName(err);
  const message = (err as Error)?.message || name || 'Bedrock request failed';
  switch (name) {
    case 'ServiceQuotaExceededException':
      return { status: 429, type: 'rate_limit_error', message };
    case 'ValidationException':
      return { status: 400, type: 'invalid_request_error', message };
    case 'ModelTimeoutException':
    case 'ModelNotReadyException':
    case 'ServiceUnavailableException':
      return { status: 529, type: 'overloaded_error', message };
  }
  switch (awsErrorKind(err)) {
    case 'throttling':
      return { status: 429, type: 'rate_limit_error', message };
    case 'access_denied':
      return { status: 403, type: 'permission_error', message };
    case 'not_found':
      return { status: 404, type: 'not_found_error', message };
    default:
      return { status: 500, type: 'api_error', message };
  }
}

/** The Messages API body, rewritten for Bedrock's InvokeModel. */
export function bedrockBody(body: Record<string, unknown>, betaHeader: string | undefined): string {
  const { model: _model, stream: _stream, ...rest } = body;
  const betas = (betaHeader ?? '')
    .split(',')
    .map((b) => b.trim())
    .filter(Boolean);
  return JSON.stringify({
    ...rest,
    anthropic_version: BEDROCK_ANTHROPIC_VERSION,
    ...(betas.length > 0 ? { anthropic_beta: betas } : {}),
  });
}

/** One Bedrock stream event as a server-sent event; Bedrock's own metrics are dropped. */
export function sseFromChunk(bytes: Uint8Array): string {
  const event = JSON.parse(Buffer.from(bytes).toString('utf8')) as Record<string, unknown>;
  delete event['amazon-bedrock-invocationMetrics'];
  return `event: ${String(event.type ?? 'message')}\ndata: ${JSON.stringify(event)}\n\n`;
}

async function* sseEvents(stream: AsyncIterable<ResponseStream>): AsyncIterable<Uint8Array> {
  for await (const part of stream) {
    if (part.chunk?.bytes) {
      yield Buffer.from(sseFromChunk(part.chunk.bytes), 'utf8');
      continue;
    }
    // An error after the stream started: the Messages API reports it as an `error` event.
    const failure = Object.entries(part).find(([k, v]) => k !== 'chunk' && v !== undefined);
    if (failure) {
      const { type, message } = anthropicErrorFor({
        name: failure[0].replace(/^./, (c) => c.toUpperCase()),
        ...(failure[1] as object),
      });
      yield Buffer.from(`event: error\ndata: ${anthropicErrorBody(type, message)}\n\n`, 'utf8');
      return;
    }
  }
}

export function bedrockUpstream(client: BedrockLike, options: BedrockUpstreamOptions): ModelUpstream {
  return {
    async send(req) {
      if (!/^\/v1\/messages\/?(\?.*)?$/.test(req.path))
        return errorBody(404, 'not_found_error', `${req.path.split('?')[0]} is not served through Bedrock`);
      let body: Record<string, unknown>;
      try {
        body = JSON.parse(req.body) as Record<string, unknown>;
      } catch {
        return errorBody(400, 'invalid_request_error', 'the request body is not JSON');
      }
      const model = String(body.model ?? '');
      const modelId = Object.hasOwn(options.models, model) ? options.models[model] : undefined;
      if (!modelId) {
        const known = Object.keys(options.models).join(', ') || '(none)';
        return errorBody(
          400,
          'invalid_request_error',
          `model ${model || '(none)'} is not available on Bedrock here; configured: ${known}`,
        );
      }
      const input = {
        modelId,
        contentType: 'application/json',
        accept: 'application/json',
        body: Buffer.from(bedrockBody(body, req.headers['anthropic-beta']), 'utf8'),
      };
      try {
        const { InvokeModelCommand, InvokeModelWithResponseStreamCommand } = await bedrockSdk();
        if (body.stream === true) {
          const out = await client.send(new InvokeModelWithResponseStreamCommand(input), {
            abortSignal: req.signal,
          });
          if (!out.body) return errorBody(502, 'api_error', 'Bedrock returned no stream');
          return {
            status: 200,
            headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' },
            body: sseEvents(out.body),
          };
        }
        const out = await client.send(new InvokeModelCommand(input), { abortSignal: req.signal });
        return {
          status: 200,
          headers: { 'content-type': 'application/json' },
          body: once(Buffer.from(out.body ?? new Uint8Array()).toString('utf8')),
        };
      } catch (err) {
        const { status, type, message } = anthropicErrorFor(err);
        return errorBody(status, type, message);
      }
    },
  };
}
