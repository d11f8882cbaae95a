/** The model gateway's request, read from an API Gateway proxy event. */
import type { APIGatewayProxyEvent } from 'aws-lambda';

export interface GatewayHttpRequest {
  method: string;
  /** As the Messages API knows it, query included: `/v1/messages?beta=true`. */
  path: string;
  /** Lower-cased names. */
  headers: Record<string, string>;
  body: string;
}

/** `/gateway/v1/messages` on the REST API → `/v1/messages` with the same query. */
export function gatewayRequestOf(
  event: Pick<
    APIGatewayProxyEvent,
    'httpMethod' | 'path' | 'headers' | 'multiValueQueryStringParameters' | 'body' | 'isBase64Encoded'
  >,
): GatewayHttpRequest {
  const path = event.path.replace(/^\/gateway(?=\/|$)/, '') || '/';
  const query = new URLSearchParams();
  for (const [k, values] of Object.entries(event.multiValueQueryStringParameters ?? {}))
    for (const v of values ?? []) query.append(k, v);
  const q = query.toString();
  const headers = Object.fromEntries(
    Object.entries(event.headers ?? {}).flatMap(([k, v]) => (v === undefined ? [] : [[k.toLowerCase(), v]])),
  );
  const body = event.body
    ? event.isBase64Encoded
      ? Buffer.from(event.body, 'base64').toString('utf8')
      : event.body
    : '';
  return { method: event.httpMethod, path: q ? `${path}?${q}` : path, headers, body };
}
