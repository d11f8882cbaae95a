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
  // Emulators accept any signature; AWS itself never sees these.
  const credentials =
    anyEndpoint && !env.AWS_ACCESS_KEY_ID && !env.AWS_PROFILE
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
  if (options.instrument) {
    // The document client shares the raw client's middleware stack.
    options.instrument(rawDdb, 'DYNAMODB');
    options.instrument(sqs, 'SQS');
    options.instrument(s3, 'S3');
  }
  return { ddb, sqs, s3 };
}

let shared: AwsClients | undefined;

/** Module-scope clients for Lambda handlers: created on first use, reused across invocations. */
export function awsClients(): AwsClients {
  shared ??= createAwsClients();
  return shared;
}
