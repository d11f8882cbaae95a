/**
 * Shared helpers for `bench/load.ts` and `bench/bench.ts`: SDK call counting,
 * an RSS sampler, the table's stores on an uninstrumented client (so the benchmark's own
 * polling is not counted), bounded waits and the test double's invocation log.
 */
import { readFile } from 'node:fs/promises';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { S3Client } from '@aws-sdk/client-s3';
import type { SQSClient } from '@aws-sdk/client-sqs';
import { createAwsClients, type Service } from '../functions/adapters/aws-clients.ts';
import type { JobStore } from '../functions/adapters/job-store.ts';
import { type TableStores, tableStores } from '../functions/adapters/table-stores.ts';
import { isTerminalJobStatus, type JobStatus } from '../functions/core/task-states.ts';
import type { DoubleInvocation, TestStack } from '../test/support/harness.ts';

export type CallKey = `${Service}.${string}`;

/** Counts every SDK call of the stack's clients, by service and command; records when S3 keys were written. */
export class CallCounter {
  counts = new Map<CallKey, number>();
  /** Key → ms epoch when its PutObject returned. */
  readonly putDone = new Map<string, number>();
  /** Called after every call with its input and output (timing probes). */
  // biome-ignore lint/suspicious/noExplicitAny: SDK inputs and outputs differ per command
  readonly hooks: ((service: Service, command: string, input: any, output: any, endMs: number) => void)[] =
    [];
  readonly instrument = (client: DynamoDBClient | SQSClient | S3Client, service: Service): void => {
    // biome-ignore lint/suspicious/noExplicitAny: one middleware for three client types
    (client.middlewareStack as any).add(
      // biome-ignore lint/suspicious/noExplicitAny: SDK middleware signature differs per client
      (next: any, ctx: any) => async (args: any) => {
        const key = `${service}.${String(ctx.commandName).replace(/Command$/, '')}` as CallKey;
        // biome-ignore lint/suspicious/noExplicitAny: the handler output differs per client
        let out: any;
        try {
          out = await next(args);
        } finally {
          // A presigned URL runs the middleware but sends nothing: not an AWS call.
          if (!out?.output?.presigned) this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
        }
        if (out?.output?.presigned) return out;
        const end = Date.now();
        if (service === 'S3' && ctx.commandName === 'PutObjectCommand' && args?.input?.Key) {
          this.putDone.set(String(args.input.Key), end);
        }
        for (const hook of this.hooks) hook(service, String(ctx.commandName), args?.input, out?.output, end);
        return out;
      },
      { step: 'initialize', name: 'benchCallCounter' },
    );
  };

  snapshot(): Map<CallKey, number> {
    return new Map(this.counts);
  }

  /** Calls made since `before`. */
  since(before: Map<CallKey, number>): Map<CallKey, number> {
    const out = new Map<CallKey, number>();
    for (const [k, v] of this.counts) {
      const d = v - (before.get(k) ?? 0);
      if (d > 0) out.set(k, d);
    }
    return out;
  }
}

export function byService(calls: Map<CallKey, number>): Record<Service, number> {
  const out: Record<Service, number> = { DYNAMODB: 0, SQS: 0, S3: 0 };
  for (const [k, v] of calls) out[k.split('.')[0] as Service] += v;
  return out;
}

/** Samples this process's RSS every `everyMs`. */
export function startRssSampler(everyMs = 100): { peakMb(): number; stop(): number } {
  let peak = process.memoryUsage().rss;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, everyMs);
  timer.unref();
  return {
    peakMb: () => peak / 1024 / 1024,
    stop: () => {
      clearInterval(timer);
      peak = Math.max(peak, process.memoryUsage.rss());
      return peak / 1024 / 1024;
    },
  };
}

/** The table's stores on their own (uncounted) client, against the stack's emulators. */
export function sideStores(stack: TestStack): TableStores {
  return tableStores(createAwsClients({ ...stack.dataPlane.env }).ddb, stack.dataPlane.tableName);
}

/** Counts worker launches on the stack's launcher (every launch starts one worker process). */
export function countLaunches(stack: TestStack): { count(): number } {
  let n = 0;
  const launcher = stack.launcher;
  const original = launcher.launch.bind(launcher);
  launcher.launch = async (request) => {
    n += 1;
    return original(request);
  };
  return { count: () => n };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Waits for every job to be terminal, polling the first unfinished one (jobs
 * finish roughly in submission order, so this stays cheap), bounded by `timeoutMs`.
 */
export async function waitForJobs(
  jobs: JobStore,
  jobIds: readonly string[],
  timeoutMs: number,
  onProgress?: (done: number) => void,
): Promise<Map<string, JobStatus>> {
  const deadline = Date.now() + timeoutMs;
  const done = new Map<string, JobStatus>();
  let lastReport = Date.now();
  for (const id of jobIds) {
    for (;;) {
      const job = await jobs.getJob(id);
      if (job && isTerminalJobStatus(job.status)) {
        done.set(id, job.status);
        break;
      }
      if (Date.now() > deadline) {
        throw new Error(
          `timeout: ${jobIds.length - done.size} of ${jobIds.length} jobs not terminal after ${timeoutMs} ms (first: ${id} ${job?.status})`,
        );
      }
      if (onProgress && Date.now() - lastReport > 10_000) {
        onProgress(done.size);
        lastReport = Date.now();
      }
      await sleep(250);
    }
  }
  return done;
}

export async function readInvocations(file: string): Promise<DoubleInvocation[]> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as DoubleInvocation);
}

const CWD_RE = /task-([^/]+?)-(\d+)-a(\d+)-[^/]*$/;
const DECIDE_RE = /^[ \t]*ORCHESTRATOR-DECIDE[ \t]*$/m;

/** The task (job, number, attempt) a double invocation ran for, from its cwd; and whether it was a decide run. */
export function invocationTask(
  inv: DoubleInvocation,
): { jobId: string; taskNo: number; attempt: number; decide: boolean } | undefined {
  const m = CWD_RE.exec(inv.cwd);
  if (!m) return undefined;
  return {
    jobId: m[1] as string,
    taskNo: Number(m[2]),
    attempt: Number(m[3]),
    decide: DECIDE_RE.test(inv.prompt ?? ''),
  };
}

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx] as number;
}

/** Renders rows as a fixed-width text table. */
export function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  return [
    line(header),
    `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`,
    ...cells.slice(1).map(line),
  ].join('\n');
}

/** POST/GET against the local API with a bounded timeout. */
export async function apiCall(
  stack: TestStack,
  method: string,
  path: string,
  body?: unknown,
  timeoutMs = 120_000,
  // biome-ignore lint/suspicious/noExplicitAny: response bodies are read field by field
): Promise<{ status: number; json: any }> {
  // One try, as the tests do: a benchmark reports what the API answered, not what a retry hid.
  const res = await stack.client.send(method, path, { body, timeoutMs, retry: false });
  return { status: res.status, json: res.json ?? { raw: res.text } };
}
