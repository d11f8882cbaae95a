/**
 * The gate in front of the embedded emulators. Workers share the machine's
 * loopback with them, so every request is checked before an emulator sees
 * it: it passes if it carries the orchestrator's per-process secret header
 * (added to every request of the orchestrator's own SDK clients), or, for
 * an object GET, PUT or HEAD on the local S3, if it carries a valid SigV4
 * presigned-query signature made with the orchestrator's credentials, not
 * expired, for exactly this method, host, path, query and signed headers.
 * Anything else is answered 403 with an AWS-shaped error and never reaches
 * the emulator, so nothing changes.
 *
 * The gate wraps the emulators' own HTTP servers instead of proxying to
 * them: there is no second, unguarded listener a worker could find, and a
 * 1 GiB bundle is not copied through an extra hop.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, RequestListener, Server, ServerResponse } from 'node:http';
import { EMULATOR_AUTH_HEADER } from '../adapters/aws-clients.ts';

/** What the orchestrator holds and a worker must not: made fresh for each start of the emulators. */
export interface EmulatorAccess {
  /** Value of the auth header. */
  secret: string;
  /** The credentials the orchestrator signs with; presigned URLs are checked against them. */
  credentials: { accessKeyId: string; secretAccessKey: string };
  region: string;
}

export function createEmulatorAccess(region: string): EmulatorAccess {
  return {
    secret: randomBytes(32).toString('hex'),
    credentials: {
      accessKeyId: `LOCAL${randomBytes(8).toString('hex').toUpperCase()}`,
      secretAccessKey: randomBytes(32).toString('base64url'),
    },
    region,
  };
}

export interface Refusal {
  /** S3-style code (AccessDenied, SignatureDoesNotMatch); JSON protocols get AccessDeniedException. */
  code: string;
  message: string;
}

const ALGORITHM = 'AWS4-HMAC-SHA256';
/** S3's own ceiling for X-Amz-Expires. */
const MAX_EXPIRES_SEC = 604_800;
/** How far in the future a signing date may be: the signer is this process, so only clock jitter. */
const MAX_CLOCK_SKEW_MS = 5 * 60_000;
const PRESIGNABLE_METHODS = new Set(['GET', 'PUT', 'HEAD']);

function sameSecret(given: string, expected: string): boolean {
  // Hashing first gives equal lengths, so the comparison takes the same time whatever was sent.
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

/** RFC 3986 encoding, as SigV4 canonicalises query names and values. */
function uriEncode(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function parseQuery(raw: string): [string, string][] | undefined {
  if (raw === '') return [];
  const pairs: [string, string][] = [];
  for (const part of raw.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const name = eq < 0 ? part : part.slice(0, eq);
    const value = eq < 0 ? '' : part.slice(eq + 1);
    try {
      pairs.push([decodeURIComponent(name), decodeURIComponent(value)]);
    } catch {
      return undefined;
    }
  }
  return pairs;
}

/** `20261202T031500Z` → epoch ms; undefined when malformed. */
function parseAmzDate(s: string): number | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, se] = m.map(Number) as [number, number, number, number, number, number, number];
  const t = Date.UTC(y, mo - 1, d, h, mi, se);
  return Number.isNaN(t) ? undefined : t;
}

const hmac = (key: Buffer | string, data: string) => createHmac('sha256', key).update(data, 'utf8').digest();

/**
 * Checks a presigned-query SigV4 request for one object of the local S3, the
 * way S3 does: the signature is recomputed from the request as received
 * (method, raw path, query, the values of the signed headers, UNSIGNED-PAYLOAD)
 * with the orchestrator's secret key and compared in constant time.
 * Returns undefined when the request may pass.
 */
export function checkPresignedRequest(
  req: IncomingMessage,
  access: EmulatorAccess,
  now: number = Date.now(),
): Refusal | undefined {
  const denied = (message: string): Refusal => ({ code: 'AccessDenied', message });
  const method = req.method ?? '';
  const url = req.url ?? '';
  const q = url.indexOf('?');
  const rawPath = q < 0 ? url : url.slice(0, q);
  const query = parseQuery(q < 0 ? '' : url.slice(q + 1));
  if (!query) return denied('Malformed query string');
  const params = new Map<string, string[]>();
  for (const [k, v] of query) params.set(k, [...(params.get(k) ?? []), v]);
  const one = (name: string): string | undefined => {
    const v = params.get(name);
    return v && v.length === 1 ? v[0] : undefined;
  };
  const signature = one('X-Amz-Signature');
  if (!signature) return denied('Access Denied: the request is not signed');
  if (!PRESIGNABLE_METHODS.has(method))
    return denied(`Access Denied: a presigned ${method} is not accepted here`);
  // `/<bucket>/<key>`: only objects, never a bucket listing or bucket-level operation.
  if (!/^\/[^/]+\/.+/.test(rawPath)) return denied('Access Denied: presigned requests must name an object');
  if (one('X-Amz-Algorithm') !== ALGORITHM) return denied('Unsupported X-Amz-Algorithm');

  const credential = one('X-Amz-Credential') ?? '';
  const [accessKeyId, day, region, service, terminator, ...extra] = credential.split('/');
  if (extra.length > 0 || terminator !== 'aws4_request' || service !== 's3')
    return denied('Malformed X-Amz-Credential');
  if (accessKeyId !== access.credentials.accessKeyId)
    return { code: 'InvalidAccessKeyId', message: 'The AWS Access Key Id you provided does not exist' };
  if (region !== access.region)
    return denied(`Malformed X-Amz-Credential: region ${region} is wrong; expecting ${access.region}`);

  const amzDate = one('X-Amz-Date') ?? '';
  const signedAt = parseAmzDate(amzDate);
  if (signedAt === undefined || amzDate.slice(0, 8) !== day) return denied('Malformed X-Amz-Date');
  const expires = Number(one('X-Amz-Expires'));
  if (!Number.isInteger(expires) || expires < 1 || expires > MAX_EXPIRES_SEC)
    return denied('X-Amz-Expires must be a whole number of seconds from 1 to 604800');
  if (signedAt > now + MAX_CLOCK_SKEW_MS) return denied('Request is not valid yet');
  if (now > signedAt + expires * 1000) return denied('Request has expired');

  const signedHeaders = (one('X-Amz-SignedHeaders') ?? '').split(';');
  if (!signedHeaders.includes('host')) return denied('X-Amz-SignedHeaders must include host');
  if (signedHeaders.some((h) => h === '' || h !== h.toLowerCase()))
    return denied('Malformed X-Amz-SignedHeaders');
  const signed = new Set(signedHeaders);
  // As S3 does: an x-amz-* header outside the signature could change what the request does (copy source, ACL).
  const unsigned = Object.keys(req.headers).filter((h) => h.startsWith('x-amz-') && !signed.has(h));
  if (unsigned.length > 0)
    return denied(`There were headers present in the request which were not signed: ${unsigned.join(', ')}`);

  const canonicalHeaders = [...signed]
    .sort()
    .map((h) => {
      const value = headerValue(req, h);
      return `${h}:${(value ?? '').trim().replace(/\s+/g, ' ')}\n`;
    })
    .join('');
  if (signedHeaders.some((h) => headerValue(req, h) === undefined))
    return { code: 'SignatureDoesNotMatch', message: 'A signed header is missing from the request' };
  const canonicalQuery = query
    .filter(([k]) => k !== 'X-Amz-Signature')
    .map(([k, v]) => [uriEncode(k), uriEncode(v)] as const)
    .sort(([ak, av], [bk, bv]) => (ak < bk ? -1 : ak > bk ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const canonicalRequest = [
    method,
    rawPath,
    canonicalQuery,
    canonicalHeaders,
    [...signed].sort().join(';'),
    'UNSIGNED-PAYLOAD',
  ].join('\n');
  const scope = `${day}/${region}/s3/aws4_request`;
  const stringToSign = [
    ALGORITHM,
    amzDate,
    scope,
    createHash('sha256').update(canonicalRequest, 'utf8').digest('hex'),
  ].join('\n');
  let key = hmac(`AWS4${access.credentials.secretAccessKey}`, day as string);
  for (const part of [region as string, 's3', 'aws4_request']) key = hmac(key, part);
  const expected = hmac(key, stringToSign).toString('hex');
  if (!/^[0-9a-f]{64}$/.test(signature) || !timingSafeEqual(Buffer.from(signature), Buffer.from(expected)))
    return {
      code: 'SignatureDoesNotMatch',
      message: 'The request signature we calculated does not match the signature you provided',
    };
  return undefined;
}

/** What one emulator's gate lets through besides the orchestrator's own clients. */
export type GatePolicy = 'secret-only' | 'secret-or-presigned-s3';

/** The refusal for a request, or undefined when it may pass. */
export function checkEmulatorRequest(
  req: IncomingMessage,
  access: EmulatorAccess,
  policy: GatePolicy,
): Refusal | undefined {
  const given = headerValue(req, EMULATOR_AUTH_HEADER);
  if (given !== undefined && sameSecret(given, access.secret)) return undefined;
  if (policy === 'secret-or-presigned-s3' && (req.url ?? '').includes('X-Amz-Signature='))
    return checkPresignedRequest(req, access);
  return {
    code: 'AccessDenied',
    message: 'Access Denied: this local endpoint serves only the orchestrator and its presigned URLs',
  };
}

/** Answers a refused request in the shape its client expects: AWS JSON (DynamoDB, SQS) or S3's XML. */
function refuse(req: IncomingMessage, res: ServerResponse, refusal: Refusal): void {
  // The body of a refused upload is never read: close the connection rather than drain it.
  res.shouldKeepAlive = false;
  res.setHeader('connection', 'close');
  const json = req.headers['x-amz-target'] !== undefined || /json/.test(req.headers['content-type'] ?? '');
  if (json) {
    res.writeHead(403, { 'content-type': 'application/x-amz-json-1.0' });
    res.end(
      JSON.stringify({
        __type: 'com.amazon.coral.service#AccessDeniedException',
        message: `${refusal.code}: ${refusal.message}`,
      }),
    );
    return;
  }
  const xml = (s: string) => s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
  res.writeHead(403, { 'content-type': 'application/xml' });
  res.end(
    req.method === 'HEAD'
      ? undefined
      : `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${xml(refusal.code)}</Code><Message>${xml(refusal.message)}</Message></Error>`,
  );
}

/**
 * Puts the gate in front of every request listener the server already has
 * (an emulator's own handler), so nothing reaches the emulator unchecked.
 * Call before the server takes connections.
 */
export function guardServer(
  server: Server,
  access: EmulatorAccess,
  policy: GatePolicy,
  onRefused?: (req: IncomingMessage, refusal: Refusal) => void,
): void {
  for (const event of ['request', 'checkContinue'] as const) {
    const handlers = server.listeners(event) as RequestListener[];
    if (handlers.length === 0) continue;
    server.removeAllListeners(event);
    server.on(event, (req: IncomingMessage, res: ServerResponse) => {
      const refusal = checkEmulatorRequest(req, access, policy);
      if (refusal) {
        onRefused?.(req, refusal);
        refuse(req, res, refusal);
        return;
      }
      for (const handler of handlers) handler.call(server, req, res);
    });
  }
}
