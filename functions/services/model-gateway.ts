/**
 * The model gateway: workers' Messages API requests (the `claude` CLI with
 * ANTHROPIC_BASE_URL pointing here and its task token as the key), checked,
 * bounded and metered on the server. Each request reserves its maximum cost
 * on its attempt and on the job tree with conditional writes before it is
 * sent, streams through untouched while its usage is read, then settles to
 * what it cost. A request neither budget can cover is refused with an
 * Anthropic-shaped 402, which ends the CLI's session at once with the message.
 */
import type { ModelUpstream } from '../adapters/model-upstream.ts';
import { roundUsd } from '../core/accounting.ts';
import type { OrchestratorConfig } from '../core/config.ts';
import type { AttemptMeter, JobRecord, TaskRecord, WorkerOutcome } from '../core/model.ts';
import {
  type AnthropicErrorType,
  anthropicErrorBody,
  chargeFor,
  ERROR_STATUS,
  MIN_HEADROOM_USD,
  type ModelPrice,
  maxRequestCost,
  parseMessagesRequest,
  priceOf,
  priceTable,
  priceUsage,
  SseMeter,
  usageOfMessageBody,
  usd,
} from '../core/model-metering.ts';
import { isLiveAttempt } from '../core/task-states.ts';
import { authenticateWorker } from './auth.ts';
import type { Deps, GatewaySettings, Settings } from './deps.ts';

export interface GatewayRequest {
  method: string;
  /** Path below the gateway's root, with the query: `/`, `/v1/messages?beta=true`. */
  path: string;
  /** Lower-case header names. */
  headers: Record<string, string>;
  body: string;
  /** Aborted when the worker disconnects (optional: ending the body iteration does the same). */
  signal?: AbortSignal | undefined;
}

export interface GatewayResponse {
  status: number;
  headers: Record<string, string>;
  /**
   * Iterate it to the end or stop it with `return()`: either settles the
   * request. A body left alone keeps its reservation until the attempt ends.
   */
  body: AsyncIterable<Uint8Array>;
}

export type GatewayDeps = Pick<
  Deps,
  'jobs' | 'tasks' | 'budget' | 'settings' | 'log' | 'now' | 'randomBytes'
> & {
  upstream?: ModelUpstream | undefined;
  /** Waits between reservation tries; injectable for tests. */
  sleep?: (ms: number) => Promise<void>;
};

/** Prefix of every refusal the gateway itself writes, so a user can tell it from the API's own. */
export const GATEWAY_NAME = 'claude-fleet model gateway';
/** How long a request waits for other requests' reservations to settle before it is told to retry. */
export const RESERVE_WAIT_MS = 30_000;
/** Largest upstream error or non-streamed body the gateway reads to meter or pass on. */
const MAX_BUFFERED_BODY = 32 * 1024 * 1024;
/** Task kinds whose attempts run a Claude session. */
const MODEL_TASK_KINDS: ReadonlySet<TaskRecord['kind']> = new Set(['plan', 'work', 'merge']);

/**
 * The gateway's settings from the config. `enabled: auto` turns it on when
 * `env` (the orchestrator's environment) holds a credential for the upstream;
 * a deployment passes its own decision in `overrides`.
 */
export function gatewaySettingsFromConfig(
  config: Pick<OrchestratorConfig, 'gateway'>,
  env: Readonly<Record<string, string | undefined>>,
  overrides: Partial<GatewaySettings> = {},
): GatewaySettings {
  const { enabled, upstream_url: upstreamUrl, prices } = config.gateway;
  return {
    enabled: enabled === 'auto' ? Boolean(env.ANTHROPIC_API_KEY || env.ANTHROPIC_AUTH_TOKEN) : enabled,
    prices: priceTable(prices),
    upstreamUrl: upstreamUrl ?? (env.ANTHROPIC_BASE_URL || 'https://api.anthropic.com'),
    ...overrides,
  };
}

/** Whether workers go through the gateway. */
export function gatewayEnabled(settings: Pick<Settings, 'gateway'>): boolean {
  return settings.gateway?.enabled === true;
}

/**
 * Workers' ANTHROPIC_BASE_URL: `gateway.baseUrl`, else `/gateway` below the
 * API's URL; a path (the API's own URL unknown, as in a deployment's
 * settings) is taken by the worker as below its API_URL.
 */
export function gatewayBaseUrl(settings: Pick<Settings, 'gateway' | 'apiUrl'>): string {
  return settings.gateway?.baseUrl ?? `${settings.apiUrl.replace(/\/+$/, '')}/gateway`;
}

/** The metered cost of the task's current attempt: settled plus still reserved; undefined when not metered. */
export function meteredCostOf(task: Pick<TaskRecord, 'attempt' | 'meter'>): number | undefined {
  const meter = currentMeter(task);
  if (!meter) return undefined;
  const open = Object.values(meter.open ?? {}).reduce((sum, v) => sum + v, 0);
  return roundUsd(meter.meteredUsd + open);
}

function currentMeter(task: Pick<TaskRecord, 'attempt' | 'meter'>): AttemptMeter | undefined {
  return task.meter && task.meter.attempt === task.attempt ? task.meter : undefined;
}

/**
 * The attempt ended: requests still open (a worker stopped mid-answer, a
 * gateway that died) are charged their whole reservation, since what they
 * cost is unknown. Each is settled once, whoever gets to it first.
 */
export async function closeAttemptMeter(
  deps: Pick<Deps, 'tasks' | 'budget' | 'log'>,
  task: Pick<TaskRecord, 'jobId' | 'taskNo' | 'rootJobId' | 'meter'>,
): Promise<number> {
  let charged = 0;
  for (const [requestId, reserved] of Object.entries(task.meter?.open ?? {})) {
    if (!(await deps.tasks.settleRequest(task, requestId, reserved, reserved))) continue;
    await deps.budget.settleSpend(task.rootJobId, reserved, reserved);
    charged += reserved;
  }
  if (charged > 0)
    deps.log.warn('model requests still open when their attempt ended: charged their reservation', {
      jobId: task.jobId,
      taskNo: task.taskNo,
      usd: charged,
    });
  return charged;
}

/**
 * An attempt ends with the gateway's meter on it: its cost is the metered
 * figure, and the worker's own report is kept beside it for comparison only.
 * A refusal for good (the tree's budget) makes a failure final, with the
 * gateway's message.
 */
export async function withMeteredCost(
  deps: Pick<Deps, 'tasks'>,
  task: TaskRecord,
  outcome: WorkerOutcome,
  reported = true,
): Promise<WorkerOutcome> {
  if (!task.meter) return outcome;
  // Read again: the attempt's last requests may have settled since the caller read the task.
  const fresh = (await deps.tasks.getTask(task.jobId, task.taskNo)) ?? task;
  const metered = meteredCostOf({ attempt: outcome.attempt, meter: fresh.meter });
  if (metered === undefined) return outcome;
  const refusal = fresh.meter?.refusal;
  return {
    ...outcome,
    costUsd: metered,
    ...(reported ? { reportedCostUsd: outcome.costUsd } : {}),
    ...(refusal && outcome.status !== 'succeeded' ? { retryable: false, error: refusal } : {}),
  };
}

/**
 * After an attempt ended: true when the gateway metered it (its requests
 * settled the tree's spend themselves; any still open are charged now), so
 * the caller must not settle a reported cost on top.
 */
export async function settleMeteredAttempt(
  deps: Pick<Deps, 'tasks' | 'budget' | 'log'>,
  task: TaskRecord,
): Promise<boolean> {
  if (!task.meter) return false;
  const fresh = (await deps.tasks.getTask(task.jobId, task.taskNo)) ?? task;
  const meter = fresh.meter?.attempt === task.attempt ? fresh.meter : undefined;
  if (!meter) return false;
  await closeAttemptMeter(deps, { ...fresh, meter });
  return true;
}

/** Opens the gateway's meter for an attempt at dispatch (a replay finds it open and changes nothing). */
export async function openAttemptMeter(
  deps: Pick<Deps, 'tasks' | 'budget' | 'log' | 'settings'>,
  task: TaskRecord,
  attempt: number,
): Promise<void> {
  if (task.meter && task.meter.attempt !== attempt) await closeAttemptMeter(deps, task);
  await deps.tasks.openMeter(task.jobId, task.taskNo, attempt, deps.settings.limits.maxTaskBudgetUsd);
}

export async function serveModelRequest(deps: GatewayDeps, req: GatewayRequest): Promise<GatewayResponse> {
  const method = req.method.toUpperCase();
  const path = req.path.split('?')[0] ?? '';
  // The CLI checks the base URL with `HEAD` first (a connectivity probe), without needing a token.
  if ((method === 'HEAD' || method === 'GET') && (path === '' || path === '/'))
    return { status: 200, headers: { 'content-type': 'text/plain; charset=utf-8' }, body: bytes('') };
  if (method !== 'POST' || path.replace(/\/+$/, '') !== '/v1/messages')
    return refuse('not_found_error', `${method} ${path} is not served by the ${GATEWAY_NAME}`);
  if (!gatewayEnabled(deps.settings) || !deps.upstream)
    return refuse('not_found_error', `the ${GATEWAY_NAME} is not enabled on this deployment`);

  const token = tokenOf(req.headers);
  // One read proves the token and gives the task.
  const found = await authenticateWorker(deps.tasks, token);
  if (!found) return refuse('authentication_error', 'missing or unknown task token (send it as x-api-key)');
  const { scope: principal, task } = found;
  if (!isLiveAttempt(task, principal.attempt)) {
    deps.log.warn('model request refused: attempt no longer active', { ...principal, state: task?.state });
    return refuse(
      'permission_error',
      `task ${principal.taskNo} attempt ${principal.attempt} is no longer active; its token is no longer valid`,
    );
  }
  if (!MODEL_TASK_KINDS.has(task.kind))
    return refuse('permission_error', `the ${task.kind} step runs no Claude session`);

  const parsed = parseMessagesRequest(req.body);
  if (!parsed.ok) return refuse('invalid_request_error', parsed.message);
  const prices = deps.settings.gateway?.prices ?? {};
  const price = priceOf(prices, parsed.model);
  if (!price) {
    const known = Object.keys(prices).sort().join(', ') || '(none)';
    return refuse(
      'invalid_request_error',
      `model ${parsed.model.slice(0, 100)} has no price in gateway.prices, so the ${GATEWAY_NAME} cannot meter it; configured: ${known}`,
    );
  }
  const maxUsd = roundUp(maxRequestCost(parsed.shape, price));
  const requestId = deps.randomBytes(12).toString('base64url');
  const grant = await reserve(deps, task, principal.attempt, requestId, maxUsd);
  if (grant.kind !== 'granted') {
    deps.log.info('model request refused', {
      jobId: task.jobId,
      taskNo: task.taskNo,
      attempt: principal.attempt,
      reason: grant.kind,
      maxUsd,
    });
    if (grant.kind === 'ended') return refuse('permission_error', grant.message);
    if (grant.kind === 'busy')
      return refuse('rate_limit_error', grant.message, { 'retry-after': '5', 'x-should-retry': 'true' });
    if (grant.kind === 'tree')
      await deps.tasks.markMeterRefusal(task, principal.attempt, grant.message).catch(() => {});
    return refuse('billing_error', grant.message, { 'x-should-retry': 'false' });
  }

  const ledger = new Ledger(deps, task, requestId, maxUsd, grant.root);
  const controller = new AbortController();
  const onClientAbort = () => controller.abort(new Error('the worker disconnected'));
  if (req.signal?.aborted) onClientAbort();
  else req.signal?.addEventListener('abort', onClientAbort, { once: true });
  let upstream: Awaited<ReturnType<ModelUpstream['send']>>;
  try {
    upstream = await deps.upstream.send({
      path: req.path,
      headers: req.headers,
      body: req.body,
      signal: controller.signal,
    });
  } catch (err) {
    await ledger.settle(0);
    req.signal?.removeEventListener('abort', onClientAbort);
    deps.log.warn('model upstream unreachable', { error: (err as Error).message });
    return refuse('api_error', `the model upstream could not be reached: ${(err as Error).message}`, {}, 502);
  }
  const done = async (chargeUsd: number) => {
    req.signal?.removeEventListener('abort', onClientAbort);
    await ledger.settle(chargeUsd);
  };
  if (upstream.status < 200 || upstream.status >= 300) {
    // Refused upstream (rate limit, overload, bad request): nothing was generated, nothing is charged.
    const text = await readAll(upstream.body, MAX_BUFFERED_BODY).catch(() => '');
    await done(0);
    return { status: upstream.status, headers: upstream.headers, body: bytes(text) };
  }
  const streamed = (upstream.headers['content-type'] ?? '').includes('text/event-stream');
  return {
    status: upstream.status,
    headers: streamed ? { ...upstream.headers, 'cache-control': 'no-cache' } : upstream.headers,
    body: streamed
      ? meteredStream(upstream.body, price, maxUsd, controller, done, deps)
      : meteredMessage(upstream.body, price, maxUsd, controller, done),
  };
}

type Grant =
  | { kind: 'granted'; root: JobRecord | undefined }
  | { kind: 'busy' | 'attempt' | 'tree' | 'ended'; message: string };

/**
 * Reserves `maxUsd` on the attempt, then on the tree. When only other
 * requests' reservations stand in the way, it waits for them to settle
 * (bounded); when the spent amount itself leaves too little, it refuses.
 */
async function reserve(
  deps: GatewayDeps,
  first: TaskRecord,
  attempt: number,
  requestId: string,
  maxUsd: number,
): Promise<Grant> {
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const limitUsd =
    first.meter?.attempt === attempt ? first.meter.limitUsd : deps.settings.limits.maxTaskBudgetUsd;
  const started = Date.now();
  let task = first;
  for (let round = 0; ; round++) {
    if (!currentMeter(task)) {
      // Dispatched before the gateway was on (or its meter write was lost): open it now.
      await openAttemptMeter(deps, task, attempt);
      task = (await deps.tasks.getTask(task.jobId, task.taskNo)) ?? task;
      if (!isLiveAttempt(task, attempt)) return ended(task, attempt);
    }
    // The tree first: when it is spent, no retry can help, and the refusal says so.
    const root = await deps.jobs.getJob(task.rootJobId);
    const budget = root?.budget;
    if (budget && budget.spentUsd + maxUsd > budget.maxSpendUsd + 1e-9) {
      return {
        kind: 'tree',
        message:
          `${GATEWAY_NAME}: budget exhausted: the job tree has spent ${usd(budget.spentUsd)} of its ` +
          `max_budget_usd ${usd(budget.maxSpendUsd)}, and this request could cost up to ${usd(maxUsd)}`,
      };
    }
    const meter = currentMeter(task);
    const limit = meter?.limitUsd ?? limitUsd;
    const metered = meter?.meteredUsd ?? 0;
    // The attempt's limit is soft by one request (see reserveRequest); the tree's above is hard.
    if (metered > limit - MIN_HEADROOM_USD + 1e-9) {
      return {
        kind: 'attempt',
        message:
          `${GATEWAY_NAME}: budget exhausted: this attempt has spent ${usd(metered)} of its ${usd(limit)} ` +
          '(limits.max_task_budget_usd)',
      };
    }
    if (await deps.tasks.reserveRequest(task, attempt, requestId, maxUsd, limit)) {
      if (!root || !budget || (await deps.budget.reserveSpend(root, maxUsd)))
        return { kind: 'granted', root };
      await deps.tasks.settleRequest(task, requestId, maxUsd, 0);
    }
    const fresh = await deps.tasks.getTask(task.jobId, task.taskNo);
    if (!fresh || !isLiveAttempt(fresh, attempt)) return ended(fresh ?? task, attempt);
    task = fresh;
    if (Date.now() - started >= RESERVE_WAIT_MS) {
      return {
        kind: 'busy',
        message: `${GATEWAY_NAME}: the budget is held by other requests in flight; retry shortly`,
      };
    }
    await sleep(Math.min(1_000, 100 * 2 ** Math.min(round, 4)));
  }
}

function ended(task: TaskRecord, attempt: number): Grant {
  return {
    kind: 'ended',
    message: `task ${task.taskNo} attempt ${attempt} is no longer active; its token is no longer valid`,
  };
}

/** Settles one request's reservation, once: on the attempt, then (only if that removed it) on the tree. */
class Ledger {
  private settled = false;

  constructor(
    private readonly deps: GatewayDeps,
    private readonly task: TaskRecord,
    private readonly requestId: string,
    private readonly reservedUsd: number,
    private readonly root: JobRecord | undefined,
  ) {}

  async settle(actualUsd: number): Promise<void> {
    if (this.settled) return;
    this.settled = true;
    const actual = roundUsd(actualUsd);
    const { deps, task, requestId, reservedUsd } = this;
    const removed = await retry(() => deps.tasks.settleRequest(task, requestId, reservedUsd, actual));
    if (removed === undefined) {
      deps.log.error('model request not settled; the attempt settles it when it ends', {
        jobId: task.jobId,
        taskNo: task.taskNo,
        requestId,
      });
      return;
    }
    // Someone else (the attempt's end) settled it already, on the tree too.
    if (!removed || !this.root?.budget) return;
    const rootJobId = this.root.jobId;
    const tree = await retry(() => deps.budget.settleSpend(rootJobId, reservedUsd, actual).then(() => true));
    if (tree === undefined)
      deps.log.error('the tree spend of a model request was not settled', { rootJobId, reservedUsd, actual });
    deps.log.debug('model request settled', { jobId: task.jobId, taskNo: task.taskNo, reservedUsd, actual });
  }
}

async function retry<T>(write: () => Promise<T>): Promise<T | undefined> {
  for (let i = 0; i < 3; i++) {
    try {
      return await write();
    } catch {
      await new Promise((r) => setTimeout(r, 100 * 2 ** i));
    }
  }
  return undefined;
}

/**
 * The upstream's server-sent events, passed on byte for byte while a meter
 * reads them. Ending the iteration early (the worker left) stops the upstream
 * request; an upstream failure mid-stream becomes an `error` event, as the
 * API itself sends. Either way the request settles exactly once.
 */
function meteredStream(
  source: AsyncIterable<Uint8Array>,
  price: ModelPrice,
  reservedUsd: number,
  controller: AbortController,
  done: (chargeUsd: number) => Promise<void>,
  deps: Pick<GatewayDeps, 'log'>,
): AsyncIterable<Uint8Array> {
  const meter = new SseMeter();
  const finish = () => done(chargeFor(meter.end(), price, reservedUsd));
  return guarded(source, {
    onChunk: (chunk) => meter.push(chunk),
    onEnd: finish,
    onError: async (err) => {
      deps.log.warn('model upstream failed mid-stream', { error: err.message });
      await finish();
      return `event: error\ndata: ${anthropicErrorBody('api_error', `the model upstream failed: ${err.message}`)}\n\n`;
    },
    onStop: async () => {
      controller.abort(new Error('the worker disconnected'));
      await finish();
    },
  });
}

/** A non-streamed answer: its usage is in the JSON body, read once it is whole. */
function meteredMessage(
  source: AsyncIterable<Uint8Array>,
  price: ModelPrice,
  reservedUsd: number,
  controller: AbortController,
  done: (chargeUsd: number) => Promise<void>,
): AsyncIterable<Uint8Array> {
  const chunks: Buffer[] = [];
  let size = 0;
  const cutShort = () => done(reservedUsd);
  return guarded(source, {
    onChunk: (chunk) => {
      size += chunk.byteLength;
      if (size <= MAX_BUFFERED_BODY) chunks.push(Buffer.from(chunk));
    },
    onEnd: async () => {
      const usage =
        size <= MAX_BUFFERED_BODY ? usageOfMessageBody(Buffer.concat(chunks).toString('utf8')) : undefined;
      await done(usage ? priceUsage(usage, price) : reservedUsd);
    },
    onError: async () => {
      await cutShort();
      return undefined;
    },
    onStop: async () => {
      controller.abort(new Error('the worker disconnected'));
      await cutShort();
    },
  });
}

interface Guard {
  onChunk(chunk: Uint8Array): void;
  /** The source ended normally. */
  onEnd(): Promise<void>;
  /** The source failed: optionally a last chunk for the client, then the end. */
  onError(err: Error): Promise<string | undefined>;
  /** The consumer stopped early. */
  onStop(): Promise<void>;
}

/**
 * An iterable over `source` whose end is reported exactly once, whichever way
 * it comes: done, failed, or stopped by the consumer with `return()`.
 */
function guarded(source: AsyncIterable<Uint8Array>, guard: Guard): AsyncIterable<Uint8Array> {
  return {
    [Symbol.asyncIterator]() {
      const it = source[Symbol.asyncIterator]();
      let finished = false;
      let tail: Uint8Array | undefined;
      return {
        async next(): Promise<IteratorResult<Uint8Array>> {
          if (tail) {
            const last = tail;
            tail = undefined;
            return { done: false, value: last };
          }
          if (finished) return { done: true, value: undefined };
          let step: IteratorResult<Uint8Array>;
          try {
            step = await it.next();
          } catch (err) {
            finished = true;
            const last = await guard.onError(err instanceof Error ? err : new Error(String(err)));
            if (last === undefined) throw err;
            return { done: false, value: Buffer.from(last, 'utf8') };
          }
          if (step.done) {
            finished = true;
            await guard.onEnd();
            return step;
          }
          guard.onChunk(step.value);
          return step;
        },
        async return(): Promise<IteratorResult<Uint8Array>> {
          if (!finished) {
            finished = true;
            tail = undefined;
            await guard.onStop();
            await it.return?.().catch(() => {});
          }
          return { done: true, value: undefined };
        },
      };
    },
  };
}

function tokenOf(headers: Record<string, string>): string | undefined {
  const key = headers['x-api-key']?.trim();
  if (key) return key;
  const auth = /^Bearer\s+(\S+)\s*$/i.exec(headers.authorization ?? '');
  return auth?.[1];
}

function refuse(
  type: AnthropicErrorType,
  message: string,
  headers: Record<string, string> = {},
  status = ERROR_STATUS[type],
): GatewayResponse {
  return {
    status,
    headers: { 'content-type': 'application/json', ...headers },
    body: bytes(anthropicErrorBody(type, message)),
  };
}

async function* bytes(text: string): AsyncIterable<Uint8Array> {
  if (text) yield Buffer.from(text, 'utf8');
}

async function readAll(body: AsyncIterable<Uint8Array>, max: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.byteLength;
    if (size > max) break;
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Reservations round up, so a bound is never rounded below itself. */
function roundUp(value: number): number {
  return Math.ceil(value * 1e6) / 1e6;
}
