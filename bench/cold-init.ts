/**
 * Section 4 of `npm run bench`: each Lambda bundled with the options of
 * infra/defaults.ts, then imported and invoked once in fresh node processes
 * against the emulators, BENCH_COLD_RUNS (5) times, next to a baseline that
 * only imports the SDK clients.
 *
 * `npm run bench:cold` runs this section alone: a local stack, one job run
 * through it (the API and queue-consumer events name it), then the bundles.
 * BENCH_COLD_ONLY=queue-consumer,sdk-only measures only those bundles.
 * BENCH_COLD_COMPARE=<another checkout of this repository, e.g. from `git
 * worktree add` or `git archive`> also bundles that tree's Lambdas with its
 * own infra/defaults.ts and measures them in the same run, as "<name> (compare)".
 *
 * The runs are interleaved (run 1 of every bundle, then run 2, ...), so a
 * busy spell of the machine weighs on every bundle alike.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';
import { LAMBDA_ESBUILD_OPTIONS, lambdaBuildOptions } from '../infra/defaults.ts';
import { startTestStack, type TestStack } from '../test/support/harness.ts';
import { apiCall, percentile, sideStores, table, waitForJobs } from './common.ts';

const exec = promisify(execFile);
const int = (v: string | undefined, d: number) => (v && Number.isFinite(Number(v)) ? Number(v) : d);
export const COLD_RUNS = int(process.env.BENCH_COLD_RUNS, 5);
const ONLY = process.env.BENCH_COLD_ONLY?.split(',').map((s) => s.trim());
const COMPARE = process.env.BENCH_COLD_COMPARE;
const COMPARE_SUFFIX = ' (compare)';
const REPO = fileURLToPath(new URL('..', import.meta.url));
const ms = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : '-');

export interface BundleRow {
  name: string;
  /** index.mjs */
  bytes: number;
  /** index.mjs and the chunks it imports statically: what a cold start loads. */
  startBytes: number;
  /** Every .mjs file of the asset. */
  totalBytes: number;
  mapBytes: number;
  gzipBytes: number;
  importMs: number[];
  invokeMs: number[];
  wallMs: number[];
  outcome: string;
}

const RUNNER = `
// What the Node.js Lambda runtime provides for response streaming (the model gateway).
import { PassThrough } from 'node:stream';
globalThis.awslambda ??= {
  streamifyResponse: (fn) => async (event, context) => {
    const out = new PassThrough();
    const chunks = [];
    out.on('data', (c) => chunks.push(c));
    await fn(event, out, context);
    return Buffer.concat(chunks).toString('utf8');
  },
  HttpResponseStream: { from: (stream) => stream },
};
const t0 = performance.now();
const mod = await import(process.argv[2]);
const t1 = performance.now();
let outcome = 'ok';
try {
  const r = await mod.handler(JSON.parse(process.argv[3]), { functionName: 'bench', awsRequestId: 'bench-1', getRemainingTimeInMillis: () => 30000 });
  outcome = 'ok ' + JSON.stringify(r).slice(0, 60);
} catch (e) { outcome = 'threw: ' + String(e && e.message).slice(0, 60); }
const t2 = performance.now();
process.stdout.write('\\nBENCH ' + JSON.stringify({ importMs: t1 - t0, invokeMs: t2 - t1, bootMs: t0, outcome }) + '\\n');
process.exit(0);
`;

type Defaults = Partial<typeof import('../infra/defaults.ts')>;

/** Bundles every Lambda entry point of the repository at `root` with that repository's own options. */
async function bundleAll(
  root: string,
  outDir: string,
  suffix = '',
): Promise<{ name: string; file: string }[]> {
  const defaults: Defaults =
    root === REPO
      ? { lambdaBuildOptions }
      : ((await import(pathToFileURL(join(root, 'infra/defaults.ts')).href)) as Defaults);
  const dir = join(root, 'functions/handlers/lambda');
  const entries = (await readdir(dir)).filter((f) => f.endsWith('.ts') && f !== 'runtime.ts');
  const out: { name: string; file: string }[] = [];
  for (const f of entries) {
    const name = basename(f, '.ts');
    if (ONLY && !ONLY.includes(name)) continue;
    const folder = join(outDir, `${name}${suffix ? '-compare' : ''}`);
    // What `cdk synth` bundles (infra/defaults.ts); a tree from before lambdaBuildOptions had one file.
    await build(
      defaults.lambdaBuildOptions
        ? { ...defaults.lambdaBuildOptions(join(dir, f), folder), logLevel: 'error' }
        : {
            ...defaults.LAMBDA_ESBUILD_OPTIONS,
            entryPoints: [join(dir, f)],
            outfile: join(folder, 'index.mjs'),
            bundle: true,
            logLevel: 'error',
          },
    );
    out.push({ name: `${name}${suffix}`, file: join(folder, 'index.mjs') });
  }
  return out;
}

/**
 * Sizes of a bundle's asset: the files loaded at start (index.mjs and the chunks it imports
 * statically, transitively) and every .mjs file (chunks imported with `import()` on first use too).
 */
async function assetBytes(indexFile: string): Promise<{ start: number; total: number }> {
  const folder = dirname(indexFile);
  let total = 0;
  for (const f of await readdir(folder)) if (f.endsWith('.mjs')) total += (await stat(join(folder, f))).size;
  let start = 0;
  const seen = new Set<string>();
  const queue = [basename(indexFile)];
  while (queue.length > 0) {
    const f = queue.pop() as string;
    if (seen.has(f)) continue;
    seen.add(f);
    const code = await readFile(join(folder, f), 'utf8');
    start += Buffer.byteLength(code);
    // esbuild's static imports of its chunks: `import"./x.mjs"` and `from"./x.mjs"`, not `import("./x.mjs")`.
    for (const m of code.matchAll(/(?:\bimport|\bfrom)\s*["']\.\/([^"']+\.mjs)["']/g))
      queue.push(m[1] as string);
  }
  return { start, total };
}

export async function runColdInit(stack: TestStack, jobId: string): Promise<BundleRow[]> {
  const bundleRows: BundleRow[] = [];
  const outDir = await mkdtemp(join(tmpdir(), 'bench-bundles-'));
  try {
    // Externals, if the options leave any (@aws-sdk/* when the runtime's SDK is used), resolve from the repo.
    await symlink(join(REPO, 'node_modules'), join(outDir, 'node_modules'), 'dir');
    const bundles = await bundleAll(REPO, outDir);
    if (COMPARE) bundles.push(...(await bundleAll(COMPARE, outDir, COMPARE_SUFFIX)));
    const runner = join(outDir, 'runner.mjs');
    await writeFile(runner, RUNNER);
    const sqsRecord = (body: unknown) => ({
      messageId: 'bench-1',
      receiptHandle: 'r',
      body: JSON.stringify(body),
      attributes: { ApproximateReceiveCount: '5', SentTimestamp: String(Date.now()) },
      messageAttributes: {},
      md5OfBody: '',
      eventSource: 'aws:sqs',
      eventSourceARN: 'arn:aws:sqs:us-east-1:000000000000:bench',
      awsRegion: 'us-east-1',
    });
    const events: Record<string, unknown> = {
      api: {
        httpMethod: 'GET',
        resource: '/api/v1/jobs/{id}',
        path: `/api/v1/jobs/${jobId}`,
        pathParameters: { id: jobId },
        headers: {},
        queryStringParameters: null,
        body: null,
        isBase64Encoded: false,
        requestContext: { authorizer: { kind: 'caller', tenant: 'tenant-a', keyId: 'bench' } },
      },
      // What this function is for: the job's events as server-sent events. The job is finished, so
      // the stream ends after its first page. (It used to be given no event, answered "no route".)
      events: {
        httpMethod: 'GET',
        resource: '/api/v1/jobs/{id}/events',
        path: `/api/v1/jobs/${jobId}/events`,
        pathParameters: { id: jobId },
        headers: { accept: 'text/event-stream' },
        queryStringParameters: null,
        body: null,
        isBase64Encoded: false,
        requestContext: { authorizer: { kind: 'caller', tenant: 'tenant-a', keyId: 'bench' } },
      },
      authorizer: {
        type: 'REQUEST',
        methodArn: 'arn:aws:execute-api:us-east-1:000000000000:abc/prod/GET/api/v1/jobs',
        headers: { 'x-api-key': stack.apiKey },
      },
      'queue-consumer': { Records: [sqsRecord({ type: 'aggregate', jobId })] },
      'dead-letters': { Records: [sqsRecord({ type: 'run', jobId, taskNo: 1, attempt: 1 })] },
      reconciler: { 'detail-type': 'Scheduled Event', source: 'aws.events', detail: {} },
      // The CLI's connectivity probe: answered without a token or an upstream call.
      gateway: {
        httpMethod: 'HEAD',
        path: '/gateway',
        headers: {},
        multiValueQueryStringParameters: null,
        body: null,
        isBase64Encoded: false,
      },
    };
    const lambdaEnv: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      NODE_OPTIONS: '--enable-source-maps',
      POWERTOOLS_LOG_LEVEL: 'ERROR',
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'local',
      AWS_SECRET_ACCESS_KEY: 'local',
      ...stack.dataPlane.env,
      TABLE_NAME: stack.dataPlane.tableName,
      QUEUE_URL: 'http://127.0.0.1:1/000000000000/bench-unused',
      BUCKET_NAME: stack.deps.artifacts.bucket,
      JOB_SETTINGS: JSON.stringify(stack.deps.settings),
      AUTH_KIND: 'caller',
      CLUSTER_ARN: 'arn:aws:ecs:us-east-1:000000000000:cluster/bench',
      TASK_DEFINITION_ARN: 'arn:aws:ecs:us-east-1:000000000000:task-definition/bench:1',
      GIT_TASK_DEFINITION_ARN: 'arn:aws:ecs:us-east-1:000000000000:task-definition/bench-git:1',
      CONTAINER_NAME: 'worker',
      SUBNET_IDS: 'subnet-0abc',
      SECURITY_GROUP_IDS: 'sg-0abc',
      ASSIGN_PUBLIC_IP: 'true',
      CAPACITY_PROVIDER: 'FARGATE_SPOT',
      TASK_SEAL_KMS_ARN: 'arn:aws:kms:us-east-1:000000000000:key/bench',
      MODEL_UPSTREAM: 'bedrock',
      BEDROCK_REGION: 'us-east-1',
      BEDROCK_MODELS: '{}',
    };
    // The baseline: the SDK clients alone, imported from node_modules as a function that takes the
    // runtime's SDK loads them, before any code of its own.
    const sdkOnly = join(outDir, 'sdk-only', 'index.mjs');
    await mkdir(join(outDir, 'sdk-only'), { recursive: true });
    await writeFile(
      sdkOnly,
      "import '@aws-sdk/client-dynamodb'; import '@aws-sdk/lib-dynamodb'; import '@aws-sdk/client-sqs'; import '@aws-sdk/client-s3'; import '@aws-sdk/client-ecs';\nexport const handler = async () => 'noop';\n",
    );
    await writeFile(`${sdkOnly}.map`, '{}');
    if (!ONLY || ONLY.includes('sdk-only')) bundles.push({ name: 'sdk-only', file: sdkOnly });
    for (const b of bundles) {
      const code = await readFile(b.file);
      bundleRows.push({
        name: b.name,
        bytes: code.byteLength,
        ...(await assetBytes(b.file).then((a) => ({ startBytes: a.start, totalBytes: a.total }))),
        mapBytes: (await stat(`${b.file}.map`)).size,
        gzipBytes: gzipSync(code).byteLength,
        importMs: [],
        invokeMs: [],
        wallMs: [],
        outcome: '',
      });
    }
    for (let i = 0; i < COLD_RUNS; i++) {
      for (const [k, b] of bundles.entries()) {
        const row = bundleRows[k] as BundleRow;
        const event = events[b.name.replace(COMPARE_SUFFIX, '')] ?? {};
        const t = performance.now();
        const { stdout } = await exec(process.execPath, [runner, b.file, JSON.stringify(event)], {
          env: lambdaEnv,
          timeout: 30_000,
          maxBuffer: 10 * 1024 * 1024,
        });
        row.wallMs.push(performance.now() - t);
        const line = stdout.split('\n').find((l) => l.startsWith('BENCH '));
        if (!line) throw new Error(`cold init of ${b.name}: no result line in ${stdout.slice(-300)}`);
        const r = JSON.parse(line.slice(6)) as { importMs: number; invokeMs: number; outcome: string };
        row.importMs.push(r.importMs);
        row.invokeMs.push(r.invokeMs);
        row.outcome = r.outcome;
      }
    }
    return bundleRows;
  } finally {
    await rm(outDir, { recursive: true, force: true });
  }
}

export function printBundleTable(bundleRows: readonly BundleRow[]): void {
  console.log(
    `\nLambda bundles (esbuild, infra/defaults.ts options) and cold init over ${COLD_RUNS} fresh node ${process.version} processes`,
  );
  console.log(
    table(
      [
        'bundle',
        'index.mjs KB',
        'loaded at start KB',
        'all .mjs KB',
        'index .map KB',
        'index gzip KB',
        'all < 1 MB',
        'import p50 ms',
        'first invoke p50 ms',
        'init p50 ms',
        'init max ms',
        'process wall p50 ms',
        'first invocation',
      ],
      [...bundleRows]
        .sort((a, b) =>
          a.name === 'sdk-only' ? 1 : b.name === 'sdk-only' ? -1 : a.name.localeCompare(b.name),
        )
        .map((b) => {
          const init = b.importMs.map((x, i) => x + (b.invokeMs[i] ?? 0));
          const target =
            b.name === 'queue-consumer'
              ? percentile(init, 50) < 300
                ? ' (< 300: met)'
                : ' (< 300: MISSED)'
              : '';
          return [
            b.name === 'queue-consumer'
              ? 'queue-consumer (dispatcher)'
              : b.name === 'sdk-only'
                ? '(baseline: the 5 SDK clients alone)'
                : b.name,
            (b.bytes / 1024).toFixed(0),
            (b.startBytes / 1024).toFixed(0),
            (b.totalBytes / 1024).toFixed(0),
            (b.mapBytes / 1024).toFixed(0),
            (b.gzipBytes / 1024).toFixed(0),
            b.totalBytes < 1024 * 1024 ? 'met' : 'MISSED',
            ms(percentile(b.importMs, 50)),
            ms(percentile(b.invokeMs, 50)),
            `${ms(percentile(init, 50))}${target}`,
            ms(Math.max(...init)),
            ms(percentile(b.wallMs, 50)),
            b.outcome,
          ];
        }),
    ),
  );
  console.log(
    `init = import of the bundle (externals: ${JSON.stringify(LAMBDA_ESBUILD_OPTIONS.external ?? [])}, from node_modules) + first handler call against the emulators; process wall adds node start-up.`,
  );
}

/** Init (import + first invocation) p50 of one bundle, NaN when it was not measured. */
export function initP50(bundleRows: readonly BundleRow[], name: string): number {
  const row = bundleRows.find((b) => b.name === name);
  return row
    ? percentile(
        row.importMs.map((x, i) => x + (row.invokeMs[i] ?? 0)),
        50,
      )
    : Number.NaN;
}

async function main(): Promise<void> {
  const started = performance.now();
  const stack = await startTestStack('workers: {max_workers: 2}');
  let rows: BundleRow[];
  try {
    const res = await apiCall(stack, 'POST', '/api/v1/orchestrate', {
      request: 'cold-init bench job',
      tasks: [{ prompt: 'cold-init bench task 1' }, { prompt: 'cold-init bench task 2' }],
    });
    if (res.status !== 202) throw new Error(`submit: ${res.status} ${JSON.stringify(res.json)}`);
    const jobId = res.json.job_id as string;
    const [status] = [...(await waitForJobs(sideStores(stack).jobs, [jobId], 60_000)).values()];
    if (status !== 'completed') throw new Error(`bench job ${jobId} ended ${status}`);
    rows = await runColdInit(stack, jobId);
  } finally {
    await stack.stop();
  }
  printBundleTable(rows);
  const baseline = initP50(rows, 'sdk-only');
  for (const name of ['queue-consumer', `queue-consumer${COMPARE_SUFFIX}`]) {
    const dispatcher = initP50(rows, name);
    if (Number.isFinite(dispatcher) && Number.isFinite(baseline))
      console.log(
        `${name} / baseline init p50: ${(dispatcher / baseline).toFixed(2)} (${ms(dispatcher)} / ${ms(baseline)} ms)`,
      );
  }
  console.log(`\nbench:cold: ${((performance.now() - started) / 1000).toFixed(0)} s`);
  process.exit(0);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
