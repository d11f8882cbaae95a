/**
 * SDK v3 clients made at once, for local mode, the CLI, the tests and the
 * benchmarks. They are configured by aws-client-config.ts, as the Lambdas'
 * clients are (lambda-clients.ts), which make each one on its first use.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { buildDynamoDb, buildS3, buildSqs, type ClientOptions } from './aws-client-config.ts';

export {
  type ClientOptions,
  EMULATOR_AUTH_HEADER,
  EMULATOR_SECRET_ENV,
  endpointFor,
  type Service,
} from './aws-client-config.ts';

export interface AwsClients {
  ddb: DynamoDBDocumentClient;
  sqs: SQSClient;
  s3: S3Client;
}

export function createAwsClients(
  env: NodeJS.ProcessEnv = process.env,
  options: ClientOptions = {},
): AwsClients {
  return {
    ddb: buildDynamoDb({ DynamoDBClient, DynamoDBDocumentClient }, env, options),
    sqs: buildSqs(SQSClient, env, options),
    s3: buildS3(S3Client, env, options),
  };
}
