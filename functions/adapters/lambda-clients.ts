/**
 * The Lambdas' SDK clients, one set per process, reused across invocations.
 * DynamoDB is made with the module: every function's first call reads or
 * writes the table. SQS and S3 are made on first use, with their packages
 * imported then, so an invocation that sends no message and touches no
 * object (most of them) never loads those packages. Configured as local
 * mode's clients are (aws-client-config.ts).
 */

import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { S3Client } from '@aws-sdk/client-s3';
import type { SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { buildDynamoDb, buildS3, buildSqs } from './aws-client-config.ts';
import { lazy } from './lazy.ts';

export interface LambdaClients {
  ddb: DynamoDBDocumentClient;
  sqs: () => Promise<SQSClient>;
  s3: () => Promise<S3Client>;
}

let shared: LambdaClients | undefined;

export function lambdaClients(env: NodeJS.ProcessEnv = process.env): LambdaClients {
  shared ??= {
    ddb: buildDynamoDb({ DynamoDBClient, DynamoDBDocumentClient }, env, {}),
    sqs: lazy(async () => buildSqs((await import('./sdk/sqs.ts')).SQSClient, env, {})),
    s3: lazy(async () => buildS3((await import('./sdk/s3.ts')).S3Client, env, {})),
  };
  return shared;
}
