/**
 * SDK fault injection for the fault suite: a middleware added to every client
 * of the stack (DynamoDB, SQS, S3) just inside the SDK's retry loop, so the
 * SDK sees each injected error as it would see AWS's and retries it (up to
 * the clients' `maxAttempts`); what survives the retries reaches our code.
 *
 * Kinds (AWS error names the SDK classifies as AWS's own):
 * - `throttle`: ProvisionedThroughputExceededException / RequestThrottled / SlowDown (HTTP 400/503)
 * - `server_error`: InternalServerError / ServiceUnavailable with HTTP 500/503
 * - `timeout`: wait 100-600 ms, then fail with `TimeoutError` (the request never reached the emulator)
 * - `lost_response`: the request is executed, then fails with `TimeoutError` (the caller cannot
 *   know it happened: a retried conditional write fails its condition, a retried send duplicates)
 *
 * The emulators' wire protocol is untouched: faults are thrown before or after the real request.
 * Decisions come from a seeded PRNG (mulberry32). Calls are concurrent, so one seed reproduces the
 * same sequence of decisions, not the same assignment of decisions to calls.
 */
import type { ClientOptions, Service } from '../../functions/adapters/aws-clients.ts';

export const FAULT_KINDS = ['throttle', 'server_error', 'timeout', 'lost_response'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];
export const SERVICES: readonly Service[] = ['DYNAMODB', 'SQS', 'S3'];

/** mulberry32: a small, fast, seedable PRNG returning floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Seed from FAULT_SEED (decimal or 0x-hex) or a random one. */
export function seedFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.FAULT_SEED?.trim();
  if (raw) {
    const n = raw.startsWith('0x') ? Number.parseInt(raw.slice(2), 16) : Number.parseInt(raw, 10);
    if (Number.isFinite(n)) return n >>> 0;
  }
  return Math.floor(Math.random() * 2 ** 32) >>> 0;
}

/** A per-scenario seed derived from the run's seed, so each scenario is reproducible on its own. */
export function deriveSeed(seed: number, label: string): number {
  let h = seed >>> 0;
  for (const ch of label) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  return (mulberry32(h)() * 2 ** 32) >>> 0;
}

export interface FaultPlan {
  /** Share of calls that fail, per service (0..1). */
  rates: Record<Service, number>;
  /** Relative weights of the kinds; a kind with weight 0 is never injected. */
  weights?: Partial<Record<FaultKind, number>>;
}

type Counts = Record<Service, Record<FaultKind, number>>;

/**
 * A targeted fault for deterministic repros: the next `times` requests to `service` whose
 * serialized body contains every string of `bodyIncludes` get `kind` (even while `enabled` is off).
 */
export interface FaultRule {
  service: Service;
  bodyIncludes: string[];
  kind: FaultKind;
  times: number;
  /** How many requests it hit so far. */
  hits?: number;
}

interface MiddlewareContext {
  commandName?: string;
}
type Next = (args: unknown) => Promise<unknown>;
interface StackLike {
  middlewareStack: {
    add(
      mw: (next: Next, context: MiddlewareContext) => (args: unknown) => Promise<unknown>,
      options: { step: 'finalizeRequest'; priority: 'low'; name: string },
    ): void;
  };
}

const THROTTLE_NAME: Record<Service, { name: string; status: number }> = {
  DYNAMODB: { name: 'ProvisionedThroughputExceededException', status: 400 },
  SQS: { name: 'RequestThrottled', status: 400 },
  S3: { name: 'SlowDown', status: 503 },
};

/** Commands whose response must not be dropped after success: a received message would be held for its visibility timeout. */
const NO_LOST_RESPONSE = new Set(['ReceiveMessageCommand']);

export class FaultInjector {
  readonly counts: Counts = emptyCounts();
  readonly calls: Record<Service, number> = { DYNAMODB: 0, SQS: 0, S3: 0 };
  /** Injection is off until the scenario turns it on (provisioning and key creation run clean). */
  enabled = false;
  private readonly random: () => number;
  private readonly weights: [FaultKind, number][];

  constructor(
    readonly seed: number,
    private plan: FaultPlan,
  ) {
    this.random = mulberry32(seed);
    this.weights = FAULT_KINDS.map((k) => [k, plan.weights?.[k] ?? 1] as [FaultKind, number]).filter(
      ([, w]) => w > 0,
    );
  }

  setPlan(plan: FaultPlan): void {
    this.plan = plan;
  }

  get total(): number {
    return SERVICES.reduce((sum, s) => sum + FAULT_KINDS.reduce((n, k) => n + this.counts[s][k], 0), 0);
  }

  byKind(): Record<FaultKind, number> {
    const out = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>;
    for (const s of SERVICES) for (const k of FAULT_KINDS) out[k] += this.counts[s][k];
    return out;
  }

  clientOptions(): ClientOptions {
    return {
      instrument: (client, service) => {
        (client as unknown as StackLike).middlewareStack.add(this.middleware(service), {
          step: 'finalizeRequest',
          // After the retry middleware (priority high): every attempt passes through here.
          priority: 'low',
          name: `faultInjector${service}`,
        });
      },
    };
  }

  private readonly rules: FaultRule[] = [];

  addRule(rule: FaultRule): FaultRule {
    rule.hits = 0;
    this.rules.push(rule);
    return rule;
  }

  private pick(service: Service, command: string, args: unknown): FaultKind | undefined {
    this.calls[service] += 1;
    if (this.rules.length > 0) {
      const raw = (args as { request?: { body?: unknown } }).request?.body;
      const body =
        raw instanceof Uint8Array ? new TextDecoder().decode(raw) : typeof raw === 'string' ? raw : '';
      if (process.env.FAULT_DEBUG_BODIES) console.log(service, command, body.slice(0, 600));
      const rule = this.rules.find(
        (r) =>
          r.service === service && (r.hits ?? 0) < r.times && r.bodyIncludes.every((b) => body.includes(b)),
      );
      if (rule) {
        rule.hits = (rule.hits ?? 0) + 1;
        return rule.kind;
      }
    }
    if (!this.enabled) return undefined;
    const roll = this.random();
    if (roll >= this.plan.rates[service]) return undefined;
    const kinds = this.weights.filter(([k]) => !(k === 'lost_response' && NO_LOST_RESPONSE.has(command)));
    const total = kinds.reduce((n, [, w]) => n + w, 0);
    let r = this.random() * total;
    for (const [k, w] of kinds) {
      r -= w;
      if (r < 0) return k;
    }
    return kinds.at(-1)?.[0];
  }

  private middleware(service: Service) {
    return (next: Next, context: MiddlewareContext) =>
      async (args: unknown): Promise<unknown> => {
        const command = context.commandName ?? 'unknown';
        const kind = this.pick(service, command, args);
        if (!kind) return next(args);
        this.counts[service][kind] += 1;
        switch (kind) {
          case 'throttle': {
            const t = THROTTLE_NAME[service];
            throw sdkError(t.name, `injected throttling on ${command}`, t.status, 'client');
          }
          case 'server_error': {
            const status = this.random() < 0.5 ? 500 : 503;
            const name = status === 500 ? 'InternalServerError' : 'ServiceUnavailable';
            throw sdkError(name, `injected ${status} on ${command}`, status, 'server');
          }
          case 'timeout': {
            await sleep(100 + Math.floor(this.random() * 500));
            throw timeoutError(command);
          }
          case 'lost_response': {
            await next(args);
            throw timeoutError(command);
          }
        }
      };
  }
}

function emptyCounts(): Counts {
  const row = () => Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>;
  return { DYNAMODB: row(), SQS: row(), S3: row() };
}

function sdkError(name: string, message: string, status: number, fault: 'client' | 'server'): Error {
  return Object.assign(new Error(message), {
    name,
    $fault: fault,
    $metadata: { httpStatusCode: status, attempts: 1 },
  });
}

/** What @smithy/node-http-handler throws when `requestTimeout` passes. */
function timeoutError(command: string): Error {
  return Object.assign(new Error(`injected: ${command} timed out (socket timed out without a response)`), {
    name: 'TimeoutError',
    $metadata: {},
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
