/**
 * How every SDK v3 client of the orchestrator is configured, in one place and
 * without loading any SDK package: the client classes are passed in. Local
 * mode and the tests pass the classes they import (`createAwsClients` in
 * aws-clients.ts); the Lambdas import a class only when its client is first
 * used (lambda-clients.ts), so a function loads only the SDK packages its
 * calls need. Either way the clients are built here, the same way.
 *
 * The same code talks to AWS, to LocalStack and to the embedded emulators:
 * only the endpoint differs, and it comes from the SDK's own variables
 * (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_DYNAMODB`, `_SQS`, `_S3`).
 */
import type { DynamoDBClient, DynamoDBClientConfig } from '@aws-sdk/client-dynamodb';
import type { S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import type { SQSClient, SQSClientConfig } from '@aws-sdk/client-sqs';
import type { DynamoDBDocumentClient, TranslateConfig } from '@aws-sdk/lib-dynamodb';

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

/** Where the embedded emulators' secret is found in the env given to `createAwsClients`. */
export const EMULATOR_SECRET_ENV = 'ORCHESTRATOR_EMULATOR_SECRET';
/** The header that carries it (functions/local/emulator-guard.ts checks it). */
export const EMULATOR_AUTH_HEADER = 'x-fleet-emulator-auth';

/** What every client shares: region, deadlines, retries, and the keys to use against an endpoint. */
function commonConfig(env: NodeJS.ProcessEnv) {
  const region = env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1';
  // Against an endpoint, the keys in `env` itself: the embedded emulators' gate checks presigned URLs
  // against the random keys of its start, which are in the env given here, not in process.env.
  // Other emulators accept any signature; AWS itself never sees these.
  const credentials = !anyEndpoint(env)
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
  return {
    region,
    requestHandler: REQUEST_HANDLER,
    maxAttempts: 3,
    ...(credentials ? { credentials } : {}),
  };
}

function anyEndpoint(env: NodeJS.ProcessEnv): string | undefined {
  return endpointFor('DYNAMODB', env) ?? endpointFor('SQS', env) ?? endpointFor('S3', env);
}

/** The emulators' secret header and the caller's instrumentation, on a client just made. */
function finish<C extends DynamoDBClient | SQSClient | S3Client>(
  client: C,
  service: Service,
  env: NodeJS.ProcessEnv,
  options: ClientOptions,
): C {
  const emulatorSecret = anyEndpoint(env) ? env[EMULATOR_SECRET_ENV] : undefined;
  if (emulatorSecret) addEmulatorAuth(client, emulatorSecret);
  options.instrument?.(client, service);
  return client;
}

const DOCUMENT_TRANSLATION: TranslateConfig = {
  marshallOptions: { removeUndefinedValues: true, convertClassInstanceToMap: false },
};

export function buildDynamoDb(
  classes: {
    DynamoDBClient: new (config: DynamoDBClientConfig) => DynamoDBClient;
    DynamoDBDocumentClient: typeof DynamoDBDocumentClient;
  },
  env: NodeJS.ProcessEnv,
  options: ClientOptions,
): DynamoDBDocumentClient {
  const endpoint = endpointFor('DYNAMODB', env);
  const raw = new classes.DynamoDBClient({ ...commonConfig(env), ...(endpoint ? { endpoint } : {}) });
  // The document client shares the raw client's middleware stack, so it is the raw client that is instrumented.
  return classes.DynamoDBDocumentClient.from(finish(raw, 'DYNAMODB', env, options), DOCUMENT_TRANSLATION);
}

export function buildSqs(
  SQS: new (config: SQSClientConfig) => SQSClient,
  env: NodeJS.ProcessEnv,
  options: ClientOptions,
): SQSClient {
  const endpoint = endpointFor('SQS', env);
  const client = new SQS({
    ...commonConfig(env),
    ...(endpoint ? { endpoint } : {}),
    // Emulators return queue URLs on hosts that do not resolve here; keep using the configured endpoint.
    useQueueUrlAsEndpoint: !endpoint,
  });
  return finish(client, 'SQS', env, options);
}

export function buildS3(
  S3: new (config: S3ClientConfig) => S3Client,
  env: NodeJS.ProcessEnv,
  options: ClientOptions,
): S3Client {
  const endpoint = endpointFor('S3', env);
  const client = new S3({
    ...commonConfig(env),
    // Otherwise presigned PUT URLs carry the CRC32 of an empty body and real S3 refuses any upload.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    ...(endpoint ? { endpoint, forcePathStyle: true } : {}),
  });
  return finish(client, 'S3', env, options);
}

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
