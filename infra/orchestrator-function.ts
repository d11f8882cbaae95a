/**
 * The stack's Lambda functions: the defaults of `defaults.ts` (ARM64, the
 * current Node.js runtime, bundling by the locally installed esbuild, never
 * Docker, so `cdk synth` works offline: `lambdaCode`), a log group with
 * retention, and a role that writes only there.
 */

import type { Duration, RemovalPolicy } from 'aws-cdk-lib';
import type { ITableV2 } from 'aws-cdk-lib/aws-dynamodb';
import { PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Function as LambdaFunction } from 'aws-cdk-lib/aws-lambda';
import { LogGroup, type RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import type { IQueue } from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import type { SharedEnv } from '../functions/handlers/lambda/runtime.ts';
import type { Settings } from '../functions/services/deps.ts';
import { settingsJson } from '../functions/services/settings.ts';
import {
  LAMBDA_ARCHITECTURE,
  LAMBDA_BASE_ENVIRONMENT,
  LAMBDA_MEMORY_MB,
  LAMBDA_RUNTIME,
  LAMBDA_TIMEOUT,
  lambdaCode,
  REPO_ROOT,
} from './defaults.ts';

/**
 * The environment every function that builds the use cases' dependencies
 * (`depsFromEnv` in functions/handlers/lambda/runtime.ts) reads: built once by
 * `sharedEnvironment`, each function adding only what is its own.
 */
export type SharedEnvironment = Readonly<Record<keyof SharedEnv, string>>;

export interface SharedResources {
  readonly table: ITableV2;
  readonly queue: IQueue;
  readonly bucket: IBucket;
  /** The runtime settings (job defaults and limits, prices and budgets), from the config. */
  readonly settings: Settings;
}

export function sharedEnvironment(resources: SharedResources): SharedEnvironment {
  return {
    TABLE_NAME: resources.table.tableName,
    QUEUE_URL: resources.queue.queueUrl,
    BUCKET_NAME: resources.bucket.bucketName,
    // Checked against the schema the functions read it with: a bad value fails here, not at cold start.
    JOB_SETTINGS: settingsJson(resources.settings),
  };
}

export interface OrchestratorFunctionProps {
  /** Path under `functions/handlers/lambda/`, without extension. */
  entry: string;
  description: string;
  logRetention: RetentionDays;
  removalPolicy: RemovalPolicy;
  environment?: Record<string, string>;
  /** @default LAMBDA_TIMEOUT (29 seconds, inside API Gateway's integration timeout) */
  timeout?: Duration;
  /** @default LAMBDA_MEMORY_MB */
  memorySize?: number;
}

/** A Lambda function of one handler of functions/handlers/lambda/, with the project's defaults and its own log group. */
export class OrchestratorFunction extends LambdaFunction {
  readonly logGroupResource: LogGroup;

  constructor(scope: Construct, id: string, props: OrchestratorFunctionProps) {
    const logGroup = new LogGroup(scope, `${id}Logs`, {
      retention: props.logRetention,
      removalPolicy: props.removalPolicy,
    });
    // Its own role, writing only to its own log group (instead of the AWSLambdaBasicExecutionRole managed policy).
    const role = new Role(scope, `${id}Role`, {
      assumedBy: new ServicePrincipal('lambda.amazonaws.com'),
      description: `${props.description} (Lambda)`,
    });
    role.addToPolicy(
      new PolicyStatement({
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [logGroup.logGroupArn],
      }),
    );
    super(scope, id, {
      code: lambdaCode(`${REPO_ROOT}functions/handlers/lambda/${props.entry}.ts`),
      handler: 'index.handler',
      description: props.description,
      runtime: LAMBDA_RUNTIME,
      architecture: LAMBDA_ARCHITECTURE,
      memorySize: props.memorySize ?? LAMBDA_MEMORY_MB,
      timeout: props.timeout ?? LAMBDA_TIMEOUT,
      logGroup,
      role,
      environment: { ...LAMBDA_BASE_ENVIRONMENT, ...props.environment },
    });
    this.logGroupResource = logGroup;
  }
}
