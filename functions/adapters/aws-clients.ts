/**
 * SDK v3 clients, configured once per process. The same code talks to AWS,
 * to LocalStack and to the embedded emulators: only the endpoint differs, and
 * it comes from the SDK's own variables (`AWS_ENDPOINT_URL`,
 * `AWS_ENDPOINT_URL_DYNAMODB`, `_SQS`, `_S3`).
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';

export interface AwsClients {
  ddb: DynamoDBDocumentClient;
  sqs: SQSClient;
  s3: S3Client;
}

export type Service = 'DYNAMODB' | 'SQS' | 'S3';

/** Every call has a deadline: a hung connection must not hold a Lambda or the local loop. */
const REQUEST_HANDLER = { connectionTimeout: 3_000, requestTimeout: 30_000 };

export function endpointFor(service: Service, env: NodeJS.ProcessEnv = process.env): string | undefined {
  return env[`AWS_ENDPOINT_URL_${service}`] || env.AWS_ENDPOINT_URL || undefined;
}

export interface ClientOptions {
  /**
   * Called once per client, e.g. to add SDK middleware that counts calls
   * (benchmarks) or injects faults (the fault suite). Production passes none.
   */
  instrument?: (client: DynamoDBClient | SQSClient | S3Client, service: Service) => void;
}

export function createAwsClients(
  env: NodeJS.ProcessEnv = process.env,
  options: ClientOptions = {},
): AwsClients {
  const region = env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1';
  const anyEndpoint = endpointFor('DYNAMODB', env) ?? endpointFor('SQS', env) ?? endpointFor('S3', env);
  // Against an endpoint, the keys in `env` itself: the embedded emulators' gate checks presigned URLs
  // against the random keys of its start, which are in the env given here, not in process.env.
  // Other emulators accept any signature; AWS itself never sees these.
  const credentials = !anyEndpoint
    ? undefined
    : env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY
      ? {
          accessKeyId: env.AWS_ACCESS_KEY_ID,
          secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
          ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}),
        }
      : !env.AWS_ACCESS_KEY_ID && !env.AWS_PROFILE
        ? { accessKeyId: 'local', secretAccessKey: 'local' }
        : undefined;
  const common = {
    region,
    requestHandler: REQUEST_HANDLER,
    maxAttempts: 3,
    ...(credentials ? { credentials } : {}),
  };

  const ddbEndpoint = endpointFor('DYNAMODB', env);
  const sqsEndpoint = endpointFor('SQS', env);
  const s3Endpoint = endpointFor('S3', env);
  const rawDdb = new DynamoDBClient({ ...common, ...(ddbEndpoint ? { endpoint: ddbEndpoint } : {}) });
  const ddb = DynamoDBDocumentClient.from(rawDdb, {
    marshallOptions: { removeUndefinedValues: true, convertClassInstanceToMap: false },
  });
  const sqs = new SQSClient({
    ...common,
    ...(sqsEndpoint ? { endpoint: sqsEndpoint } : {}),
    // Emulators return queue URLs on hosts that do not resolve here; keep using the configured endpoint.
    useQueueUrlAsEndpoint: !sqsEndpoint,
  });
  const s3 = new S3Client({
    ...common,
    // Otherwise presigned PUT URLs carry the CRC32 of an empty body and real S3 refuses any upload.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    ...(s3Endpoint ? { endpoint: s3Endpoint, forcePathStyle: true } : {}),
  });
  const emulatorSecret = anyEndpoint ? env[EMULATOR_SECRET_ENV] : undefined;
  if (emulatorSecret) {
    for (const client of [rawDdb, sqs, s3]) addEmulatorAuth(client, emulatorSecret);
  }
  if (options.instrument) {
    // The document client shares the raw client's middleware stack.
    options.instrument(rawDdb, 'DYNAMODB');
    options.instrument(sqs, 'SQS');
    options.instrument(s3, 'S3');
  }
  return { ddb, sqs, s3 };
}

/** Where the embedded emulators' secret is found in the env given to `createAwsClients`. */
export const EMULATOR_SECRET_ENV = 'ORCHESTRATOR_EMULATOR_SECRET';
/** The header that carries it (functions/local/emulator-guard.ts checks it). */
export const EMULATOR_AUTH_HEADER = 'x-fleet-emulator-auth';

/**
 * Sends the embedded emulators' secret with every request the client makes.
 * At the deserialize step, the last before the wire: after signing, so it is
 * in no signature, and never reached when a URL is presigned (the presigner
 * stops the stack at signing), so no presigned URL carries or needs it.
 */
function addEmulatorAuth(client: DynamoDBClient | SQSClient | S3Client, secret: string): void {
  type Args = { request?: unknown };
  const stack = client.middlewareStack as unknown as {
    add(
      middleware: (next: (args: Args) => Promise<unknown>) => (args: Args) => Promise<unknown>,
      options: { step: 'deserialize'; name: string; priority: 'low' },
    ): void;
  };
  stack.add(
    (next) => async (args) => {
      const request = args.request as { headers?: Record<string, string> } | undefined;
      if (request?.headers) request.headers[EMULATOR_AUTH_HEADER] = secret;
      return next(args);
    },
    { step: 'deserialize', name: 'emulatorAuthMiddleware', priority: 'low' },
  );
}

let shared: AwsClients | undefined;

/** Module-scope clients for Lambda handlers: created on first use, reused across invocations. */
export function awsClients(): AwsClients {
  shared ??= createAwsClients();
  return shared;
}
