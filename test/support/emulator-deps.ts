/**
 * The services' dependencies on the embedded emulators (or the endpoints of
 * AWS_ENDPOINT_URL), for integration tests that call services directly: the
 * real stores, queue and artifacts of one fresh set of resources, default
 * settings, a silent log. `overrides` replaces any part (a clock, a metrics sink).
 */
import { randomBytes } from 'node:crypto';
import { Artifacts } from '../../functions/adapters/artifacts.ts';
import { type AwsClients, createAwsClients } from '../../functions/adapters/aws-clients.ts';
import { ensureResources } from '../../functions/adapters/provision.ts';
import { tableStores } from '../../functions/adapters/table-stores.ts';
import { WorkQueue } from '../../functions/adapters/work-queue.ts';
import { parseConfig } from '../../functions/core/config.ts';
import type { Deps } from '../../functions/services/deps.ts';
import { settingsFromConfig } from '../../functions/services/settings.ts';
import { type Backend, resourceName, startBackend } from './backend.ts';

export const silentLog = { debug() {}, info() {}, warn() {}, error() {} };

export interface EmulatorDeps {
  deps: Deps;
  backend: Backend;
  clients: AwsClients;
  queueUrl: string;
  stop(): Promise<void>;
}

export async function startEmulatorDeps(
  prefix: string,
  overrides: Partial<Deps> = {},
): Promise<EmulatorDeps> {
  const backend = await startBackend();
  const clients = createAwsClients(backend.env);
  const resources = await ensureResources(clients, {
    tableName: resourceName(`${prefix}-table`),
    queueName: resourceName(`${prefix}-work`),
    deadLetterQueueName: resourceName(`${prefix}-dlq`),
    bucketName: resourceName(`${prefix}-artifacts`),
    maxReceiveCount: 5,
    visibilityTimeoutSec: 30,
  });
  const deps: Deps = {
    ...tableStores(clients.ddb, resources.tableName),
    queue: new WorkQueue(clients.sqs, resources.queueUrl),
    artifacts: new Artifacts(clients.s3, resources.bucketName),
    settings: settingsFromConfig(parseConfig(''), 'http://127.0.0.1:1'),
    log: silentLog,
    metrics: { jobFinished: () => {} },
    now: () => new Date(),
    randomBytes: (n) => randomBytes(n),
    ...overrides,
  };
  return {
    deps,
    backend,
    clients,
    queueUrl: resources.queueUrl,
    stop: async () => {
      clients.ddb.destroy();
      clients.sqs.destroy();
      clients.s3.destroy();
      await backend.stop();
    },
  };
}
