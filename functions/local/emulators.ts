/**
 * Embedded AWS emulators for local mode and the test suite: `dynalite` for
 * DynamoDB and `fauxqs` for SQS and S3 (one port serves both). Both bind
 * 127.0.0.1 on free ports; the returned `env` points child processes (and
 * `createAwsClients`) at them through the SDK's own endpoint variables.
 *
 * Workers share that loopback, so neither emulator takes a request its gate
 * (emulator-guard.ts) refuses: only callers holding this start's secret
 * (`ORCHESTRATOR_EMULATOR_SECRET`, sent as a header by `createAwsClients`),
 * and for S3 objects, URLs presigned with this start's random credentials.
 * `env` carries both: give it to the orchestrator's own processes, never to
 * a worker.
 *
 * Known gaps against AWS (see also docs/architecture.md, "Embedded emulators"):
 * - `startFauxqs()` always listens on 0.0.0.0, so we build the app with the
 *   exported `buildApp()` and listen on 127.0.0.1 ourselves.
 * - fauxqs queue URLs use the host `sqs.<region>.localhost:<port>`, which does
 *   not resolve here; clients must keep the configured endpoint
 *   (`useQueueUrlAsEndpoint: false`, as `createAwsClients` does). fauxqs looks
 *   queues up by the exact URL string, so pass URLs through unchanged.
 * - fauxqs keeps everything in memory. With `dataDir`, DynamoDB (dynalite's
 *   LevelDB, `<dataDir>/dynamodb`) and S3 objects (durable-s3.ts,
 *   `<dataDir>/s3`, written through before each answer) survive a restart;
 *   queues and messages do not: the sweep re-sends what a task still needs.
 * - fauxqs refuses a request body over 11 MiB; we replace its catch-all body
 *   parser with one that takes up to 1 GiB, so repository bundles (up to
 *   limits.max_source_mb) go up in one presigned PUT as they do on S3. It
 *   checks no signatures or checksums itself (the gate checks presigned
 *   signatures, expiry and a signed content-length, not checksums), so it
 *   accepts a presigned PutObject URL signed with the CRC32 of an empty body
 *   (the SDK default `requestChecksumCalculation: 'WHEN_SUPPORTED'` does
 *   that), which real S3 rejects for non-empty uploads.
 * - The gate wraps the emulators' own servers rather than proxying to them:
 *   no second, unguarded listener exists for a worker to find (a unix socket
 *   in a private folder would still be open to an unsandboxed worker of the
 *   same user), and large bodies are not copied through an extra hop.
 * - Endpoints use port 0, so they change on every start: never persist queue
 *   URLs or endpoints in the (optionally on-disk) DynamoDB data.
 * - dynalite has no transactions, PartiQL, TTL or Streams.
 */
import { mkdir } from 'node:fs/promises';
import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { type BuildAppOptions, buildApp } from 'fauxqs';
import { EMULATOR_SECRET_ENV } from '../adapters/aws-clients.ts';
import { durableS3Store } from './durable-s3.ts';
import { createEmulatorAccess, type EmulatorAccess, guardServer } from './emulator-guard.ts';

export interface EmulatorEndpoints {
  dynamodb: string;
  sqs: string;
  s3: string;
}

export interface Emulators {
  endpoints: EmulatorEndpoints;
  /**
   * `AWS_ENDPOINT_URL_DYNAMODB`, `_SQS`, `_S3`, `AWS_REGION`, the credentials
   * and `ORCHESTRATOR_EMULATOR_SECRET`, for `createAwsClients` and the
   * orchestrator's own child processes (never a worker's).
   */
  env: Record<string, string>;
  /** The secret and credentials the gate accepts. */
  access: EmulatorAccess;
  /** Closes both servers and their connections; safe to call more than once. */
  stop(): Promise<void>;
}

export interface StartEmulatorsOptions {
  /** Keep DynamoDB data and S3 objects on disk under this directory (in memory when omitted). */
  dataDir?: string;
  /** Region advertised to clients; defaults to AWS_REGION, AWS_DEFAULT_REGION, then us-east-1. */
  region?: string;
}

interface DynaliteOptions {
  createTableMs?: number;
  deleteTableMs?: number;
  updateTableMs?: number;
  path?: string;
}
type Dynalite = (options: DynaliteOptions) => Server;

const require = createRequire(import.meta.url);
const HOST = '127.0.0.1';
/** Largest object body the embedded S3 accepts in one request. */
const MAX_OBJECT_BYTES = 1024 * 1024 * 1024;

async function startDynalite(
  dataDir: string | undefined,
  access: EmulatorAccess,
): Promise<{ server: Server; url: string }> {
  const dynalite = require('dynalite') as Dynalite;
  if (dataDir) await mkdir(dataDir, { recursive: true });
  const server = dynalite({
    createTableMs: 0,
    deleteTableMs: 0,
    updateTableMs: 0,
    ...(dataDir ? { path: dataDir } : {}),
  });
  guardServer(server, access, 'secret-only');
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen(0, HOST, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  return { server, url: `http://${HOST}:${port}` };
}

function closeDynalite(server: Server): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    // dynalite's close() also closes its LevelDB store once the HTTP server has stopped.
    server.close((err?: Error) => (err ? reject(err) : resolve()));
    // Keep-alive sockets from SDK clients would otherwise hold close() open.
    server.closeAllConnections();
  });
}

export async function startEmulators(opts: StartEmulatorsOptions = {}): Promise<Emulators> {
  const region = opts.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1';
  const access = createEmulatorAccess(region);
  const ddb = await startDynalite(opts.dataDir && join(opts.dataDir, 'dynamodb'), access);

  // forceCloseConnections is set by buildApp, so close() does not wait on keep-alive sockets;
  // its preClose hook releases long-polling ReceiveMessage waiters.
  const s3Store = opts.dataDir ? await durableS3Store(join(opts.dataDir, 's3')) : undefined;
  const fauxqs = buildApp({
    logger: false,
    defaultRegion: region,
    // Only the S3 store is replaced; fauxqs makes its own SQS and SNS stores.
    ...(s3Store ? { stores: { s3Store } as unknown as NonNullable<BuildAppOptions['stores']> } : {}),
  });
  // S3 takes one PUT of up to 5 GB; fauxqs' app-wide 11 MiB cap is for its own multipart tests.
  fauxqs.removeContentTypeParser('*');
  fauxqs.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: MAX_OBJECT_BYTES }, (_req, body, done) =>
    done(null, body),
  );
  guardServer(fauxqs.server, access, 'secret-or-presigned-s3');
  let fauxqsUrl: string;
  try {
    const address = await fauxqs.listen({ port: 0, host: HOST });
    fauxqsUrl = `http://${HOST}:${new URL(address).port}`;
  } catch (err) {
    await Promise.allSettled([fauxqs.close(), closeDynalite(ddb.server)]);
    throw err;
  }

  const endpoints: EmulatorEndpoints = { dynamodb: ddb.url, sqs: fauxqsUrl, s3: fauxqsUrl };
  let stopping: Promise<void> | undefined;
  return {
    endpoints,
    env: {
      AWS_ENDPOINT_URL_DYNAMODB: endpoints.dynamodb,
      AWS_ENDPOINT_URL_SQS: endpoints.sqs,
      AWS_ENDPOINT_URL_S3: endpoints.s3,
      AWS_REGION: region,
      AWS_ACCESS_KEY_ID: access.credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: access.credentials.secretAccessKey,
      [EMULATOR_SECRET_ENV]: access.secret,
    },
    access,
    stop() {
      stopping ??= (async () => {
        const results = await Promise.allSettled([fauxqs.close(), closeDynalite(ddb.server)]);
        const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (failed) throw failed.reason;
      })();
      return stopping;
    },
  };
}
