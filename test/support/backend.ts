/**
 * Where the integration tests' AWS APIs are: the embedded emulators, started
 * per test file, or external endpoints (LocalStack) when `AWS_ENDPOINT_URL`
 * or all of `AWS_ENDPOINT_URL_DYNAMODB`, `_SQS` and `_S3` are set. External
 * endpoints keep state between runs, so resource names get a per-run suffix.
 */
import { randomBytes } from 'node:crypto';
import { endpointFor } from '../../functions/adapters/aws-clients.ts';
import { type Emulators, startEmulators } from '../../functions/local/emulators.ts';

export const EXTERNAL = Boolean(endpointFor('DYNAMODB') && endpointFor('SQS') && endpointFor('S3'));

const RUN = randomBytes(3).toString('hex');

export interface Backend {
  /** Environment for `createAwsClients` and child processes. */
  env: Record<string, string>;
  external: boolean;
  /** Present only when the emulators were started here. */
  emulators?: Emulators;
  stop(): Promise<void>;
}

export async function startBackend(): Promise<Backend> {
  if (EXTERNAL) {
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) if (k.startsWith('AWS_') && v) env[k] = v;
    env.AWS_REGION ??= 'us-east-1';
    return { env, external: true, stop: async () => {} };
  }
  const emulators = await startEmulators();
  return { env: emulators.env, external: false, emulators, stop: () => emulators.stop() };
}

/** `base` against fresh emulators; `base-<run>` against external endpoints (lowercase, S3-safe). */
export function resourceName(base: string): string {
  return EXTERNAL ? `${base}-${RUN}` : base;
}
