/**
 * The hostile-worker stand-in: a test stack whose workers can be held mid-session.
 *
 * A task prompt with `[[hold:LABEL]]` (or a job request with `[[hold_plan:LABEL]]` for the planner)
 * makes the `claude` test double report what it holds (its task token, task id, API URL, whole
 * environment and the results of local probes) to a collector this module runs, then wait until
 * the test releases it. While it waits, its attempt is live, so the test can attack the API with
 * the real token of a running worker, exactly as a prompt-injected agent could.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startTestStack, type TestStack, type TestStackOptions } from './harness.ts';

/** What the double's local probes found (see `holdProbes` in claude-double.mjs). */
export interface HeldProbes {
  /** ORCHESTRATOR_API_KEY, ANTHROPIC_API_KEY, ANTHROPIC_AUTH_TOKEN and AWS_* found in the session's env. */
  secrets: Record<string, string>;
  /** One entry per path in HOSTILE_WRITE_TARGETS: whether the session could write it. */
  writes: { path: string; written: boolean; error?: string }[];
  /** One entry per URL in HOSTILE_PROBE_URLS: whether a TCP connection opened. */
  connections: { url: string; connected: boolean; error?: string }[];
  /** One entry per path in HOSTILE_READ_TARGETS: its text (first 4,000 characters) if it could be read. */
  reads?: { path: string; read: boolean; text?: string; error?: string }[];
  /** One entry per folder in HOSTILE_LIST_TARGETS: its entries as the session sees them (null if unreadable). */
  listings?: { path: string; entries: string[] | null; error?: string }[];
}

/** A session that is holding, as it reported itself. */
export interface HeldWorker {
  label: string;
  token: string;
  /** `<job>/<task>/<attempt>`, the worker's TASK_ID. */
  taskId: string;
  jobId: string;
  taskNo: number;
  attempt: number;
  apiUrl: string;
  env: Record<string, string>;
  probes: HeldProbes;
  cwd: string;
  pid: number;
  /** Lets every session held under this label finish normally (and any later one pass at once). */
  release(): Promise<void>;
}

export interface HostileStackOptions extends TestStackOptions {
  /** How long a held session waits for its release before finishing anyway (HOSTILE_HOLD_MS). */
  holdMs?: number;
  /** Paths the held session tries to write (HOSTILE_WRITE_TARGETS). */
  writeTargets?: string[];
  /** URLs the held session tries to open a TCP connection to (HOSTILE_PROBE_URLS). */
  probeUrls?: string[];
  /** Files the held session tries to read (HOSTILE_READ_TARGETS); `${NAME}` is the session's $NAME. */
  readTargets?: string[];
  /** Folders the held session lists (HOSTILE_LIST_TARGETS); `${NAME}` is the session's $NAME. */
  listTargets?: string[];
}

type ApiResult = Awaited<ReturnType<TestStack['api']>>;

export interface HostileStack extends TestStack {
  /** Where held sessions report; the workers get it as HOSTILE_COLLECTOR_URL. */
  collectorUrl: string;
  /**
   * Submits `body` to POST /api/v1/orchestrate (with `apiKey`, the stack's own by default) and
   * waits for that job's session held under `label` (default: the first hold label in the body).
   */
  capture(body: unknown, label?: string, apiKey?: string, timeoutMs?: number): Promise<HeldWorker>;
  /** Waits for a session held under `label`, of job `jobId` when given (e.g. a second task of a job). */
  held(label: string, jobId?: string, timeoutMs?: number): Promise<HeldWorker>;
  /** Every report received so far, in arrival order. */
  reports(): HeldWorker[];
  /** A call with only the task token: no API key. */
  withToken(
    token: string,
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<ApiResult>;
}

const HOLD_RE = /\[\[hold(?:_plan)?:([A-Za-z0-9_.-]{1,64})\]\]/;

interface RawReport {
  label?: unknown;
  token?: unknown;
  task_id?: unknown;
  api_url?: unknown;
  env?: unknown;
  probes?: unknown;
  cwd?: unknown;
  pid?: unknown;
}

/** A test stack plus the collector its held workers report to; `stop()` stops both. */
export async function startHostileStack(
  configYaml = '',
  workerEnv: NodeJS.ProcessEnv = {},
  options: HostileStackOptions = {},
): Promise<HostileStack> {
  const { holdMs, writeTargets, probeUrls, readTargets, listTargets, ...stackOptions } = options;
  const arrived: HeldWorker[] = [];
  const released = new Set<string>();
  const pollers = new Map<string, ServerResponse[]>();
  const waiters = new Set<() => void>();

  const release = async (label: string): Promise<void> => {
    released.add(label);
    for (const res of pollers.get(label) ?? []) res.writeHead(200).end('released');
    pollers.delete(label);
  };

  const toHeld = (raw: RawReport): HeldWorker => {
    const label = String(raw.label ?? '');
    const taskId = String(raw.task_id ?? '');
    const [jobId = '', taskNo = '', attempt = ''] = taskId.split('/');
    return {
      label,
      token: String(raw.token ?? ''),
      taskId,
      jobId,
      taskNo: Number(taskNo),
      attempt: Number(attempt),
      apiUrl: String(raw.api_url ?? ''),
      env: (raw.env ?? {}) as Record<string, string>,
      probes: (raw.probes ?? { secrets: {}, writes: [], connections: [] }) as HeldProbes,
      cwd: String(raw.cwd ?? ''),
      pid: Number(raw.pid),
      release: () => release(label),
    };
  };

  const collector = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://collector');
    if (req.method === 'POST' && url.pathname === '/held') {
      let text = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => {
        text += c;
      });
      req.on('end', () => {
        try {
          arrived.push(toHeld(JSON.parse(text) as RawReport));
          res.writeHead(200).end('ok');
        } catch {
          res.writeHead(400).end('bad report');
        }
        for (const wake of [...waiters]) wake();
      });
      return;
    }
    const m = /^\/release\/([^/]+)$/.exec(url.pathname);
    if (req.method === 'GET' && m) {
      const label = decodeURIComponent(m[1] as string);
      if (released.has(label)) {
        res.writeHead(200).end('released');
        return;
      }
      // Long poll: answered on release, or dropped by the double's own timeout and asked again.
      const list = pollers.get(label) ?? [];
      list.push(res);
      pollers.set(label, list);
      req.on('close', () => {
        const left = (pollers.get(label) ?? []).filter((r) => r !== res);
        if (left.length) pollers.set(label, left);
        else pollers.delete(label);
      });
      return;
    }
    res.writeHead(404).end('not found');
  });
  await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
  const collectorUrl = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`;

  const closeCollector = async () => {
    for (const label of [...pollers.keys()]) await release(label);
    collector.closeAllConnections();
    await new Promise<void>((resolve) => collector.close(() => resolve()));
  };

  let stack: TestStack;
  try {
    stack = await startTestStack(
      configYaml,
      {
        HOSTILE_COLLECTOR_URL: collectorUrl,
        ...(holdMs !== undefined ? { HOSTILE_HOLD_MS: String(holdMs) } : {}),
        ...(writeTargets ? { HOSTILE_WRITE_TARGETS: writeTargets.join(',') } : {}),
        ...(probeUrls ? { HOSTILE_PROBE_URLS: probeUrls.join(',') } : {}),
        ...(readTargets ? { HOSTILE_READ_TARGETS: readTargets.join(',') } : {}),
        ...(listTargets ? { HOSTILE_LIST_TARGETS: listTargets.join(',') } : {}),
        ...workerEnv,
      },
      stackOptions,
    );
  } catch (err) {
    await closeCollector();
    throw err;
  }

  const held = (label: string, jobId?: string, timeoutMs = 30_000): Promise<HeldWorker> => {
    const find = () => arrived.find((w) => w.label === label && (jobId === undefined || w.jobId === jobId));
    const now = find();
    if (now) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      const wake = () => {
        const w = find();
        if (!w) return;
        clearTimeout(timer);
        waiters.delete(wake);
        resolve(w);
      };
      const timer = setTimeout(() => {
        waiters.delete(wake);
        reject(
          new Error(
            `no session held under "${label}"${jobId ? ` for job ${jobId}` : ''} within ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      waiters.add(wake);
    });
  };

  const capture: HostileStack['capture'] = async (body, label, apiKey, timeoutMs = 30_000) => {
    const wanted = label ?? HOLD_RE.exec(JSON.stringify(body))?.[1];
    if (!wanted) throw new Error('capture: the body has no [[hold:LABEL]] and no label was given');
    const res = await stack.api('POST', '/api/v1/orchestrate', {
      body,
      ...(apiKey ? { headers: { 'x-api-key': apiKey } } : {}),
    });
    if (res.status !== 202) throw new Error(`capture: submit answered ${res.status}: ${res.text}`);
    return held(wanted, res.json.job_id as string, timeoutMs);
  };

  const withToken: HostileStack['withToken'] = (token, method, path, body, headers = {}) =>
    stack.api(method, path, {
      ...(body !== undefined ? { body } : {}),
      headers: { 'x-api-key': '', 'x-task-token': token, ...headers },
    });

  return {
    ...stack,
    collectorUrl,
    capture,
    held,
    reports: () => [...arrived],
    withToken,
    stop: async () => {
      // Released first, so held workers end normally instead of being killed mid-hold.
      for (const w of arrived) released.add(w.label);
      await closeCollector();
      await stack.stop();
    },
  };
}
