/**
 * The client's requests through node:http and node:https instead of `fetch`.
 *
 * A worker makes its first request (its assignment) right after it starts,
 * and on Node 20 the first `fetch` of a process loads and compiles undici:
 * 55-77 ms on a 2-core machine, against about 10 ms for node:http, out of a
 * start of about 250. The worker's later requests and uploads use the same
 * transport, so undici is never loaded at all. node:https is loaded only for
 * an https URL (the API and S3 in AWS); locally everything is plain http.
 */
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import type { HeaderReader, HttpTransport } from './orchestrator-client.ts';

export const nodeHttpTransport: HttpTransport = async (url, init) => {
  const target = new URL(url);
  const send = target.protocol === 'https:' ? (await import('node:https')).request : httpRequest;
  const body = typeof init.body === 'string' ? Buffer.from(init.body, 'utf8') : init.body;
  init.signal.throwIfAborted();
  return new Promise((resolve, reject) => {
    const req = send(
      target,
      {
        method: init.method,
        headers: { ...init.headers, ...(body ? { 'content-length': String(body.byteLength) } : {}) },
        signal: init.signal,
      },
      (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('close', () => {
          if (!res.complete)
            reject(
              init.signal.aborted ? init.signal.reason : new Error('the connection closed mid-response'),
            );
        });
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: headerReader(res.headers),
            text: Buffer.concat(chunks).toString('utf8'),
          }),
        );
      },
    );
    // With `signal`, an abort destroys the request with an AbortError: that is the rejection.
    req.on('error', reject);
    req.end(body);
  });
};

function headerReader(headers: IncomingHttpHeaders): HeaderReader {
  return {
    get(name: string) {
      const value = headers[name.toLowerCase()];
      if (value === undefined) return null;
      return Array.isArray(value) ? value.join(', ') : value;
    },
  };
}
