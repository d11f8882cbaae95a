/** Routes that take no credentials: they read nothing of any tenant. */
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { VERSION } from '../../core/version.ts';
import type { Deps } from '../../services/deps.ts';
import { json } from '../http.ts';
import { buildOpenApiDocument } from './openapi.ts';

export async function health(deps: Deps): Promise<APIGatewayProxyResult> {
  return json(200, { status: 'ok', version: VERSION, time: deps.now().toISOString() });
}

/** Built once per deployment's limits (and so once per process on AWS). */
const documents = new WeakMap<object, string>();

export async function openapi(deps: Deps, event: APIGatewayProxyEvent): Promise<APIGatewayProxyResult> {
  const limits = deps.settings.limits;
  const document = documents.get(limits) ?? JSON.stringify(buildOpenApiDocument(limits, serverUrl(event)));
  documents.set(limits, document);
  return {
    statusCode: 200,
    headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'public, max-age=300' },
    body: document,
  };
}

/** The base the document's paths hang from: `/v1` behind API Gateway's stage, `/` locally. */
function serverUrl(event: APIGatewayProxyEvent): string {
  const stage = event.requestContext?.stage;
  return stage && event.requestContext.apiId !== 'local' ? `/${stage}` : '/';
}
