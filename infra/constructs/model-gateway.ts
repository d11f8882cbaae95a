/**
 * The model gateway: the Anthropic Messages API, served to the workers under
 * `<api>/gateway` by a Lambda with response streaming. It holds the only
 * model credential of the deployment (the Anthropic key from Secrets Manager,
 * or a role that may invoke exactly the configured Bedrock models); workers
 * hold nothing but their task token. It meters every request and refuses once
 * an attempt's or the tree's budget is spent.
 *
 * API Gateway authorizers are not used here: the CLI sends the task token as
 * `x-api-key`, and the gateway must look at the task anyway (attempt state,
 * budget), so the function checks the token itself on every request.
 */
import { Duration, type RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import {
  AuthorizationType,
  LambdaIntegration,
  type Resource,
  ResponseTransferMode,
  type RestApi,
} from 'aws-cdk-lib/aws-apigateway';
import type { ITableV2 } from 'aws-cdk-lib/aws-dynamodb';
import { Effect, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { type ISecret, Secret } from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { OrchestratorFunction, type SharedEnvironment } from '../orchestrator-function.ts';
import { allowTable, nagArn } from '../permissions.ts';

/** Where the CLI's ANTHROPIC_BASE_URL points, under the API's base URL. */
export const GATEWAY_PATH = 'gateway';

/** A streamed response may last 15 minutes (API Gateway's limit); the function as long. */
const STREAM_TIMEOUT = Duration.minutes(15);

export interface ModelGatewayProps {
  readonly restApi: RestApi;
  readonly table: ITableV2;
  /** Prices and budgets come with the runtime settings in JOB_SETTINGS. */
  readonly environment: SharedEnvironment;
  readonly anthropic: {
    mode: 'api_key' | 'bedrock';
    secretName: string | null;
    bedrockRegion: string | null;
    /** Model id as the CLI sends it → Bedrock model or inference profile id. */
    bedrockModels: Readonly<Record<string, string>>;
  };
  readonly logRetention: RetentionDays;
  readonly removalPolicy: RemovalPolicy;
}

/** Geography prefixes of cross-region inference profiles (`us.anthropic.…`). */
const PROFILE_PREFIX = /^(us|eu|apac|jp|au|ca|us-gov|global)\.(.+)$/;

/**
 * The ARNs one Bedrock id needs: a foundation model in the region, or an
 * inference profile of this account plus the foundation model in each region
 * the profile may route to.
 */
export function bedrockResourceArns(
  id: string,
  partition: string,
  region: string,
  account: string,
): string[] {
  if (id.startsWith('arn:')) return [id];
  const profile = PROFILE_PREFIX.exec(id);
  if (!profile) return [`arn:${partition}:bedrock:${region}::foundation-model/${id}`];
  return [
    `arn:${partition}:bedrock:${region}:${account}:inference-profile/${id}`,
    `arn:${partition}:bedrock:*::foundation-model/${profile[2]}`,
  ];
}

export class ModelGateway extends Construct {
  readonly handler: OrchestratorFunction;
  /** The Anthropic key (api_key mode): readable by the gateway alone. */
  readonly anthropicSecret?: ISecret;

  constructor(scope: Construct, id: string, props: ModelGatewayProps) {
    super(scope, id);
    const { anthropic } = props;
    const environment: Record<string, string> = {
      ...props.environment,
      MODEL_UPSTREAM: anthropic.mode === 'bedrock' ? 'bedrock' : 'anthropic',
    };
    let secret: ISecret | undefined;
    if (anthropic.mode === 'api_key') {
      secret = anthropic.secretName
        ? Secret.fromSecretNameV2(this, 'AnthropicApiKey', anthropic.secretName)
        : new Secret(this, 'AnthropicApiKey', {
            description:
              'Anthropic API key for the model gateway (never given to workers): put the key in as the plain secret string',
            removalPolicy: props.removalPolicy,
          });
      this.anthropicSecret = secret;
      environment.MODEL_UPSTREAM_CREDENTIAL_ARN = secret.secretArn;
      if (!anthropic.secretName) {
        Validations.of(secret).acknowledge({
          id: 'AwsSolutions-SMG4',
          reason:
            'A third-party (Anthropic) API key cannot be rotated by a Secrets Manager rotation Lambda; rotate it in the Anthropic console.',
        });
      }
    } else {
      environment.BEDROCK_REGION = anthropic.bedrockRegion ?? Stack.of(this).region;
      environment.BEDROCK_MODELS = JSON.stringify(anthropic.bedrockModels);
    }

    this.handler = new OrchestratorFunction(this, 'Handler', {
      entry: 'gateway',
      description: 'claude-orchestrator model gateway: meters and forwards the model requests of workers',
      environment,
      timeout: STREAM_TIMEOUT,
      logRetention: props.logRetention,
      removalPolicy: props.removalPolicy,
    });
    // Reads the task and the tree, reserves and settles spend on them.
    allowTable(this.handler, props.table, ['GetItem', 'UpdateItem']);
    secret?.grantRead(this.handler);
    if (anthropic.mode === 'bedrock') this.allowBedrock(props);

    const integration = new LambdaIntegration(this.handler, {
      proxy: true,
      responseTransferMode: ResponseTransferMode.STREAM,
      timeout: STREAM_TIMEOUT,
    });
    const root = props.restApi.root.addResource(GATEWAY_PATH);
    const methods = [
      root.addMethod('ANY', integration, { authorizationType: AuthorizationType.NONE }),
      (root.addResource('{proxy+}') as Resource).addMethod('ANY', integration, {
        authorizationType: AuthorizationType.NONE,
      }),
    ];
    for (const method of methods) {
      Validations.of(method).acknowledge(
        {
          id: 'AwsSolutions-APIG4',
          reason:
            'The model gateway checks the task token (sent by the Claude CLI as x-api-key) in the function on every request, with the attempt state and budget it needs anyway.',
        },
        {
          id: 'AwsSolutions-COG4',
          reason: 'Workers authenticate with per-task tokens, checked by the gateway function, not Cognito.',
        },
      );
    }
  }

  private allowBedrock(props: ModelGatewayProps): void {
    const stack = Stack.of(this);
    const region = props.anthropic.bedrockRegion ?? stack.region;
    const ids = [...new Set(Object.values(props.anthropic.bedrockModels))].sort();
    if (ids.length === 0)
      throw new Error('deploy.anthropic.mode is bedrock, but deploy.anthropic.bedrock_models is empty');
    const resources = [
      ...new Set(ids.flatMap((id) => bedrockResourceArns(id, stack.partition, region, stack.account))),
    ];
    this.handler.addToRolePolicy(
      new PolicyStatement({
        effect: Effect.ALLOW,
        actions: ['bedrock:InvokeModel', 'bedrock:InvokeModelWithResponseStream'],
        resources,
      }),
    );
    for (const arn of resources.filter((r) => r.includes('*'))) {
      Validations.of(this.handler.role ?? this.handler).acknowledge({
        id: `AwsSolutions-IAM5[Resource::${nagArn(this, arn)}]`,
        reason:
          'A cross-region inference profile routes to the same foundation model in several regions; the grant names that one model.',
      });
    }
  }
}
