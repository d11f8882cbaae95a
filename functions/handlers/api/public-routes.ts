/** Routes that take no credentials: they read nothing of any tenant. */
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { VERSION } from '../../core/version.ts';
import type { Deps } from '../../services/deps.ts';
import { json } from '../http.ts';

export async function health(deps: Deps): Promise<APIGatewayProxyResult> {
  return json(200, { status: 'ok', version: VERSION, time: deps.now().toISOString() });
}

/** Built once per deployment's limits (and so once per process on AWS). */
const documents = new WeakMap<object, string>();

/**
 * The generator and the response schemas it describes are loaded by the
 * first request for the document: no other route needs them, and a Lambda's
 * cold start would otherwise compile and build them for every function
 * that serves the API.
 */
export async function openapi(deps: Deps, event: APIGatewayProxyEvent): Promise<APIGatewayProxyResult> {
  const limits = deps.settings.limits;
  let document = documents.get(limits);
  if (document === undefined) {
    const { buildOpenApiDocument } = await import('./openapi.ts');
    document = JSON.stringify(buildOpenApiDocument(limits, serverUrl(event)));
  }
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
