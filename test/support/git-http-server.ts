/**
 * A git smart-HTTP server for tests: Node's `http` on a free loopback port in
 * front of git's own `git http-backend` CGI, so clones and pushes go through
 * the real protocol (v2, gzip bodies, receive-pack) with an optional token.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface GitHttpServer {
  /** `http://127.0.0.1:<port>`, no trailing slash. */
  url: string;
  /** URL of the bare repository `<root>/<name>.git`. */
  repoUrl(name: string): string;
  /** Every request in arrival order; `path` is the URL path without the query. */
  requests: { method: string; path: string; authorized: boolean }[];
  /** Closes the server and its connections and kills running CGI processes. */
  stop(): Promise<void>;
}

export interface GitHttpServerOptions {
  /** Directory holding the bare repositories (`<name>.git`). */
  root: string;
  /** When set, requests need `Basic base64(<user>:<token>)` or `Bearer <token>`; otherwise all are allowed. */
  token?: string;
  /** When set, Basic credentials must carry this user; it is also REMOTE_USER for Bearer and open access. */
  username?: string;
}

/** A stuck fetch or push must fail the test, not hang it. */
const CGI_TIMEOUT_MS = 60_000;

export async function startGitHttpServer(options: GitHttpServerOptions): Promise<GitHttpServer> {
  const requests: GitHttpServer['requests'] = [];
  const running = new Set<ChildProcessWithoutNullStreams>();

  const server = createServer((req, res) => {
    const raw = req.url ?? '/';
    const q = raw.indexOf('?');
    let path: string;
    try {
      path = decodeURIComponent(q < 0 ? raw : raw.slice(0, q));
    } catch {
      // A malformed escape would otherwise throw out of the handler and take the test process down.
      res.writeHead(400).end();
      return;
    }
    const user = authenticate(req.headers.authorization, options);
    requests.push({ method: req.method ?? 'GET', path, authorized: user !== undefined });
    if (user === undefined) {
      // The challenge makes git ask its credential helpers (or fail, with GIT_TERMINAL_PROMPT=0).
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="git"' }).end();
      return;
    }
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      // The CGI must not pick up the developer's git config.
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_CONFIG_GLOBAL: '/dev/null',
      GIT_PROJECT_ROOT: options.root,
      GIT_HTTP_EXPORT_ALL: '1',
      // Push is off by default for anonymous users; allow it explicitly as well as via REMOTE_USER.
      GIT_CONFIG_COUNT: '1',
      GIT_CONFIG_KEY_0: 'http.receivepack',
      GIT_CONFIG_VALUE_0: 'true',
      REMOTE_USER: user,
      REMOTE_ADDR: req.socket.remoteAddress ?? '127.0.0.1',
      PATH_INFO: path,
      REQUEST_METHOD: req.method ?? 'GET',
      QUERY_STRING: q < 0 ? '' : raw.slice(q + 1),
      CONTENT_TYPE: req.headers['content-type'] ?? '',
      // git sends gzip request bodies and protocol v2 in a header; http-backend reads both from here.
      HTTP_CONTENT_ENCODING: req.headers['content-encoding'] ?? '',
      GIT_PROTOCOL: String(req.headers['git-protocol'] ?? ''),
    };
    // Without CONTENT_LENGTH (chunked pushes) http-backend reads stdin to EOF.
    if (req.headers['content-length']) env.CONTENT_LENGTH = req.headers['content-length'];
    runCgi(env, req, res, running);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    repoUrl: (name) => `${url}/${name}.git`,
    requests,
    stop: async () => {
      const exits = [...running].map((child) => new Promise((r) => child.once('close', r)));
      for (const child of running) killGroup(child);
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await Promise.all(exits);
    },
  };
}

/** The REMOTE_USER for an acceptable request, or undefined when it must be refused. */
function authenticate(authorization: string | undefined, options: GitHttpServerOptions): string | undefined {
  const fallback = options.username ?? 'git';
  if (options.token === undefined) return fallback;
  const [scheme = '', credentials = ''] = (authorization ?? '').split(' ', 2);
  if (scheme.toLowerCase() === 'bearer') return credentials === options.token ? fallback : undefined;
  if (scheme.toLowerCase() !== 'basic') return undefined;
  const decoded = Buffer.from(credentials, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0 || decoded.slice(colon + 1) !== options.token) return undefined;
  const user = decoded.slice(0, colon);
  return options.username === undefined || user === options.username ? user || fallback : undefined;
}

/** Runs one `git http-backend` request: body to stdin, CGI headers parsed, the rest streamed back. */
function runCgi(
  env: NodeJS.ProcessEnv,
  req: IncomingMessage,
  res: ServerResponse,
  running: Set<ChildProcessWithoutNullStreams>,
): void {
  // Its own process group: http-backend hands our pipes to upload-pack/receive-pack, which must die with it.
  const child = spawn('git', ['http-backend'], { env, detached: true });
  running.add(child);
  const timer = setTimeout(() => killGroup(child), CGI_TIMEOUT_MS);
  let stderr = '';
  child.stderr.on('data', (c) => (stderr = (stderr + c).slice(-4096)));
  child.on('close', () => {
    clearTimeout(timer);
    running.delete(child);
  });
  child.on('error', (err) => {
    clearTimeout(timer);
    running.delete(child);
    fail(500, `cannot run git http-backend: ${err.message}`);
  });
  // The CGI may exit without reading the whole body (e.g. a 404); that EPIPE is not an error here.
  child.stdin.on('error', () => {});
  req.pipe(child.stdin);
  // A client that goes away must not leave a pack being computed for nobody.
  res.on('close', () => {
    if (!res.writableFinished) killGroup(child);
  });

  let head = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    head = Buffer.concat([head, chunk]);
    // latin1 maps bytes 1:1, so string offsets are buffer offsets.
    const end = /\r?\n\r?\n/.exec(head.toString('latin1'));
    if (!end) return;
    child.stdout.off('data', onData);
    let status = 200;
    for (const line of head.subarray(0, end.index).toString('latin1').split(/\r?\n/)) {
      const colon = line.indexOf(':');
      const name = line.slice(0, colon).trim();
      const value = line.slice(colon + 1).trim();
      if (name.toLowerCase() === 'status') status = Number.parseInt(value, 10) || 500;
      else if (colon > 0) res.appendHeader(name, value);
    }
    res.writeHead(status);
    res.write(head.subarray(end.index + end[0].length));
    child.stdout.pipe(res);
  };
  child.stdout.on('data', onData);
  child.stdout.on('end', () => {
    if (!res.headersSent) fail(502, `git http-backend sent no headers: ${stderr}`);
  });

  function fail(status: number, message: string): void {
    if (res.headersSent) res.destroy();
    else res.writeHead(status, { 'Content-Type': 'text/plain' }).end(message);
  }
}

function killGroup(child: ChildProcessWithoutNullStreams): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {} // Already gone.
}
