/**
 * Lambda entry point: the model gateway, behind an API Gateway REST method
 * with response streaming (`responseTransferMode: STREAM`). The upstream is
 * the Anthropic API with the deployment's key (read from Secrets Manager by
 * this function alone) or Amazon Bedrock with this function's role. The SDK
 * package of the configured upstream alone is loaded, when it is first needed.
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { APIGatewayProxyEvent } from 'aws-lambda';
import * as z from 'zod';
import { bedrockUpstream } from '../../adapters/bedrock-upstream.ts';
import { anthropicUpstream, type ModelUpstream } from '../../adapters/model-upstream.ts';
import { type AnthropicErrorType, anthropicErrorBody } from '../../core/model-metering.ts';
import { serveModelRequest } from '../../services/model-gateway.ts';
import { gatewayRequestOf } from '../gateway-request.ts';
import { depsFromEnv, lambdaStreaming, log, readEnv } from './runtime.ts';

const awslambda = lambdaStreaming<APIGatewayProxyEvent>();

const GatewayEnv = z.discriminatedUnion('MODEL_UPSTREAM', [
  z.object({
    MODEL_UPSTREAM: z.literal('anthropic'),
    MODEL_UPSTREAM_CREDENTIAL_ARN: z.string().min(1),
  }),
  z.object({
    MODEL_UPSTREAM: z.literal('bedrock'),
    BEDROCK_REGION: z.string().min(1),
    BEDROCK_MODELS: z.string().min(2),
  }),
]);

const env = readEnv(GatewayEnv);
const deps = depsFromEnv();
/** The key is re-read now and then, so a rotated key is picked up without a deploy. */
const KEY_TTL_MS = 5 * 60_000;

let cached: { upstream: ModelUpstream; until: number } | undefined;

async function upstream(): Promise<ModelUpstream> {
  if (cached && cached.until > Date.now()) return cached.upstream;
  let next: ModelUpstream;
  if (env.MODEL_UPSTREAM === 'bedrock') {
    const { BedrockRuntimeClient } = await import('../../adapters/sdk/bedrock.ts');
    const client = new BedrockRuntimeClient({
      region: env.BEDROCK_REGION,
      requestHandler: { connectionTimeout: 5_000, requestTimeout: 600_000 },
    });
    next = bedrockUpstream(client, { models: JSON.parse(env.BEDROCK_MODELS) as Record<string, string> });
  } else {
    const { GetSecretValueCommand, SecretsManagerClient } = await import(
      '../../adapters/sdk/secrets-manager.ts'
    );
    const secrets = new SecretsManagerClient({
      requestHandler: { connectionTimeout: 3_000, requestTimeout: 5_000 },
    });
    const out = await secrets.send(
      new GetSecretValueCommand({ SecretId: env.MODEL_UPSTREAM_CREDENTIAL_ARN }),
    );
    const apiKey = out.SecretString?.trim();
    if (!apiKey)
      throw new Error(
        'the Anthropic key secret is empty: put the key in (see the stack output AnthropicSecretCommand)',
      );
    next = anthropicUpstream({
      baseUrl: deps.settings.gateway?.upstreamUrl ?? 'https://api.anthropic.com',
      apiKey,
    });
  }
  cached = { upstream: next, until: Date.now() + KEY_TTL_MS };
  return next;
}

function anthropicError(status: number, type: AnthropicErrorType, message: string) {
  return {
    status,
    headers: { 'content-type': 'application/json' },
    body: anthropicErrorBody(type, message),
  };
}

export const handler = awslambda.streamifyResponse(async (event, responseStream) => {
  let response: { status: number; headers: Record<string, string>; body: AsyncIterable<Uint8Array> | string };
  try {
    response = await serveModelRequest({ ...deps, upstream: await upstream() }, gatewayRequestOf(event));
  } catch (err) {
    log.error('model gateway failed', { error: (err as Error).message });
    response = anthropicError(500, 'api_error', 'the model gateway failed; see its logs');
  }
  const out = awslambda.HttpResponseStream.from(responseStream, {
    statusCode: response.status,
    headers: response.headers,
  });
  const source =
    typeof response.body === 'string'
      ? Readable.from([Buffer.from(response.body, 'utf8')])
      : Readable.from(response.body);
  await pipeline(source, out);
});
