/**
 * What every Lambda entry point shares: settings from the environment (read
 * once, at cold start, failing loudly when one is missing), SDK clients at
 * module scope (DynamoDB made at once, SQS and S3 on first use:
 * lambda-clients.ts), and the Powertools logger and metrics.
 */
import { randomBytes } from 'node:crypto';
import { Logger } from '@aws-lambda-powertools/logger';
import { MetricUnit, Metrics as PowertoolsMetrics } from '@aws-lambda-powertools/metrics';
import * as z from 'zod';
import { Artifacts } from '../../adapters/artifacts.ts';
import { lambdaClients } from '../../adapters/lambda-clients.ts';
import { tableStores } from '../../adapters/table-stores.ts';
import { WorkQueue } from '../../adapters/work-queue.ts';
import {
  JOB_STATUS_DIMENSION,
  JOBS_FINISHED_METRIC,
  METRIC_NAMESPACE,
  SERVICE_NAME,
} from '../../core/metrics.ts';
import type { Deps, Log, Metrics } from '../../services/deps.ts';
import { SettingsJsonSchema } from '../../services/settings.ts';

const EnvSchema = z.object({
  TABLE_NAME: z.string().min(1),
  QUEUE_URL: z.string().url(),
  BUCKET_NAME: z.string().min(1),
  /** JSON of `Settings`, written at synth from the same config as local mode; checked here, at cold start. */
  JOB_SETTINGS: SettingsJsonSchema,
});

/** The variables every function that builds the use cases' Deps is given (infra: `sharedEnvironment`). */
export type SharedEnv = z.input<typeof EnvSchema>;

export function readEnv<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv = process.env): z.infer<S> {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const missing = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new Error(`invalid Lambda environment: ${missing}`);
  }
  return parsed.data;
}

export const logger = new Logger({ serviceName: SERVICE_NAME });

export const log: Log = {
  debug: (message, extra) => logger.debug(message, extra ?? {}),
  info: (message, extra) => logger.info(message, extra ?? {}),
  warn: (message, extra) => logger.warn(message, extra ?? {}),
  error: (message, extra) => logger.error(message, extra ?? {}),
};

/** Each count is written at once as one EMF line on stdout, which CloudWatch turns into the metric. */
const emf = new PowertoolsMetrics({
  namespace: METRIC_NAMESPACE,
  serviceName: SERVICE_NAME,
  singleMetric: true,
});

export const metrics: Metrics = {
  jobFinished: (status) => {
    emf.addDimension(JOB_STATUS_DIMENSION, status);
    emf.addMetric(JOBS_FINISHED_METRIC, MetricUnit.Count, 1);
  },
};

/** Builds the dependencies of the use cases from the Lambda environment. */
export function depsFromEnv(env: NodeJS.ProcessEnv = process.env): Deps {
  const e = readEnv(EnvSchema, env);
  const clients = lambdaClients(env);
  return {
    ...tableStores(clients.ddb, e.TABLE_NAME),
    queue: new WorkQueue(clients.sqs, e.QUEUE_URL),
    artifacts: new Artifacts(clients.s3, e.BUCKET_NAME),
    settings: e.JOB_SETTINGS,
    log,
    metrics,
    now: () => new Date(),
    randomBytes: (n) => randomBytes(n),
  };
}

/** A Lambda response stream, as the Node.js runtime hands it to a streamed handler. */
export interface ResponseStream extends NodeJS.WritableStream {
  setContentType?(type: string): void;
}

/** What the Node.js Lambda runtime provides as the global `awslambda`, for functions behind streamed routes. */
export interface LambdaStreaming<E> {
  streamifyResponse(fn: (event: E, stream: ResponseStream, context: unknown) => Promise<void>): unknown;
  HttpResponseStream: {
    from(
      stream: ResponseStream,
      metadata: { statusCode: number; headers: Record<string, string> },
    ): ResponseStream;
  };
}

export function lambdaStreaming<E>(): LambdaStreaming<E> {
  return (globalThis as unknown as { awslambda: LambdaStreaming<E> }).awslambda;
}
