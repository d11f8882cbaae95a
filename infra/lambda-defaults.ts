/**
 * Secure, cheap defaults every Lambda of the stack shares: ARM64, a current
 * Node.js runtime, bundling by the locally installed esbuild (never Docker,
 * so `cdk synth` works offline), and a log group with retention.
 */

import { fileURLToPath } from 'node:url';
import { Duration, type RemovalPolicy } from 'aws-cdk-lib';
import { PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Architecture, Runtime } from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, type NodejsFunctionProps, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, type RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';

export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));

export interface OrchestratorFunctionProps {
  /** Path under `functions/handlers/lambda/`, without extension. */
  entry: string;
  description: string;
  logRetention: RetentionDays;
  removalPolicy: RemovalPolicy;
  environment?: Record<string, string>;
  /** @default 29 seconds, inside API Gateway's integration timeout */
  timeout?: Duration;
  /** @default 512 */
  memorySize?: number;
}

/** A NodejsFunction with the project's defaults and its own log group. */
export class OrchestratorFunction extends NodejsFunction {
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
    const base: NodejsFunctionProps = {
      entry: `${REPO_ROOT}functions/handlers/lambda/${props.entry}.ts`,
      handler: 'handler',
      description: props.description,
      runtime: Runtime.NODEJS_24_X,
      architecture: Architecture.ARM_64,
      memorySize: props.memorySize ?? 512,
      timeout: props.timeout ?? Duration.seconds(29),
      logGroup,
      role,
      projectRoot: REPO_ROOT,
      depsLockFilePath: `${REPO_ROOT}package-lock.json`,
      environment: {
        NODE_OPTIONS: '--enable-source-maps',
        POWERTOOLS_LOG_LEVEL: 'INFO',
        ...props.environment,
      },
      bundling: {
        forceDockerBundling: false,
        format: OutputFormat.ESM,
        target: 'node22',
        minify: true,
        sourceMap: true,
        sourcesContent: false,
        mainFields: ['module', 'main'],
        // Bundled CommonJS dependencies call require(); ESM output needs one.
        banner: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
      },
    };
    super(scope, id, base);
    this.logGroupResource = logGroup;
  }
}
