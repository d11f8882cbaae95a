/**
 * The HTTP API: API Gateway (REST) with every route of the local API, a
 * Lambda REQUEST authorizer on the caller routes (API key, or a worker's task
 * token), worker routes that check their task token in the handler, stage throttling, access and execution logs, body validation, and the one
 * API Lambda behind every route.
 */
import { Duration, type RemovalPolicy, Validations } from 'aws-cdk-lib';
import {
  AccessLogFormat,
  AuthorizationType,
  EndpointType,
  JsonSchemaVersion,
  LambdaIntegration,
  LogGroupLogDestination,
  MethodLoggingLevel,
  type Model,
  RequestAuthorizer,
  type Resource,
  ResponseTransferMode,
  ResponseType,
  RestApi,
} from 'aws-cdk-lib/aws-apigateway';
import type { ITableV2 } from 'aws-cdk-lib/aws-dynamodb';
import { LogGroup, type RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import type { IQueue } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import * as z from 'zod';
import type { ApiLimits } from '../../functions/core/api-schemas.ts';
import {
  CreateSourceBodySchema,
  submitBodySchema,
  uploadRequestSchema,
  workerResultSchema,
} from '../../functions/core/api-schemas.ts';
import { ProgressBodySchema } from '../../functions/core/progress.ts';
import { ROUTES } from '../../functions/handlers/routes.ts';
import { OrchestratorFunction, type SharedEnvironment } from '../orchestrator-function.ts';
import { allowArtifacts, allowSourceUploads, allowTable } from '../permissions.ts';

export interface ApiProps {
  readonly table: ITableV2;
  readonly queue: IQueue;
  readonly bucket: IBucket;
  readonly environment: SharedEnvironment;
  readonly limits: ApiLimits;
  readonly throttleRatePerSec: number;
  readonly throttleBurst: number;
  readonly logRetention: RetentionDays;
  readonly removalPolicy: RemovalPolicy;
}

/** Bodies validated at the gateway too, from the same zod schemas the handlers use. */
/** A streamed response may last up to 15 minutes behind a REST API. */
const STREAM_TIMEOUT = Duration.minutes(15);

const BODY_SCHEMAS: Readonly<Record<string, (limits: ApiLimits) => z.ZodType>> = {
  submit: submitBodySchema,
  createSource: () => CreateSourceBodySchema,
  uploads: uploadRequestSchema,
  result: workerResultSchema,
  progress: () => ProgressBodySchema,
};

export class Api extends Construct {
  readonly restApi: RestApi;
  readonly handler: OrchestratorFunction;
  readonly streamHandler: OrchestratorFunction;
  /** The caller routes' authorizer (API key or task token); worker routes check their token in the handler. */
  readonly authorizerFunction: OrchestratorFunction;
  readonly authorizer: RequestAuthorizer;
  readonly accessLogs: LogGroup;

  constructor(scope: Construct, id: string, props: ApiProps) {
    super(scope, id);
    this.handler = new OrchestratorFunction(this, 'Handler', {
      entry: 'api',
      description: 'claude-orchestrator HTTP API',
      environment: props.environment,
      logRetention: props.logRetention,
      removalPolicy: props.removalPolicy,
    });
    // BatchGetItem: a worker's assignment and upload requests read their task and its job together.
    // BatchWriteItem: a worker's progress post stores its events together.
    allowTable(this.handler, props.table, [
      'GetItem',
      'BatchGetItem',
      'PutItem',
      'UpdateItem',
      'Query',
      'BatchWriteItem',
    ]);
    props.queue.grantSendMessages(this.handler);
    // Get for reports and download links; put so the upload URLs it signs for workers are honoured.
    allowArtifacts(this.handler, props.bucket, ['GetObject', 'PutObject'], true);
    // Put so the bundle upload URLs it signs for callers are honoured; get for HeadObject and the copy at submit.
    allowSourceUploads(this.handler, props.bucket, ['GetObject', 'PutObject']);

    // Streamed routes (GET /jobs/{id}/events): JSON as usual, or server-sent events for up to 14 minutes.
    this.streamHandler = new OrchestratorFunction(this, 'StreamHandler', {
      entry: 'events',
      description: 'claude-orchestrator streamed routes: job events as server-sent events',
      environment: props.environment,
      timeout: STREAM_TIMEOUT,
      logRetention: props.logRetention,
      removalPolicy: props.removalPolicy,
    });
    // Reads only: the job (and a worker caller's own task), and the events.
    allowTable(this.streamHandler, props.table, ['GetItem', 'Query']);

    this.accessLogs = new LogGroup(this, 'AccessLogs', {
      retention: props.logRetention,
      removalPolicy: props.removalPolicy,
    });
    this.restApi = new RestApi(this, 'RestApi', {
      description: 'claude-orchestrator: submit jobs, read results; workers report here',
      endpointTypes: [EndpointType.REGIONAL],
      cloudWatchRole: true,
      cloudWatchRoleRemovalPolicy: props.removalPolicy,
      deployOptions: {
        stageName: 'v1',
        throttlingRateLimit: props.throttleRatePerSec,
        throttlingBurstLimit: props.throttleBurst,
        loggingLevel: MethodLoggingLevel.ERROR,
        dataTraceEnabled: false,
        metricsEnabled: true,
        accessLogDestination: new LogGroupLogDestination(this.accessLogs),
        accessLogFormat: AccessLogFormat.jsonWithStandardFields({
          caller: false,
          httpMethod: true,
          ip: true,
          protocol: true,
          requestTime: true,
          resourcePath: true,
          responseLength: true,
          status: true,
          user: true,
        }),
      },
    });
    Validations.of(this.restApi).acknowledge({
      id: 'AwsSolutions-APIG3',
      reason:
        'No WAF by default to stay cheap when idle: every route but health and the OpenAPI document needs an API key or task token, and the stage is throttled. Attach a web ACL to the stage where policy requires one.',
    });
    Validations.of(this.restApi).acknowledge({
      id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]',
      reason:
        'API Gateway execution logging needs its account-level CloudWatch role, and AWS defines that role with this managed policy.',
    });
    Validations.of(this.restApi).acknowledge({
      id: 'AwsSolutions-COG4',
      reason:
        'Callers are services and CI jobs with hashed API keys, and workers use per-task tokens; both are checked by Lambda authorizers, not Cognito.',
    });
    for (const type of [ResponseType.UNAUTHORIZED, ResponseType.ACCESS_DENIED]) {
      const unauthorized = type === ResponseType.UNAUTHORIZED;
      this.restApi.addGatewayResponse(`${unauthorized ? 'Unauthorized' : 'AccessDenied'}Response`, {
        type,
        statusCode: unauthorized ? '401' : '403',
        templates: {
          'application/json': unauthorized
            ? '{"error":"missing or unknown credentials (X-API-Key or X-Task-Token)","code":"unauthorized"}'
            : '{"error":"forbidden","code":"forbidden"}',
        },
      });
    }
    this.restApi.addGatewayResponse('BadBodyResponse', {
      type: ResponseType.BAD_REQUEST_BODY,
      statusCode: '400',
      templates: {
        'application/json':
          '{"error":"request body is invalid","code":"bad_request","issues":[{"path":"(body)","message":"$util.escapeJavaScript($context.error.validationErrorString)"}]}',
      },
    });
    this.restApi.addGatewayResponse('Default4xx', {
      type: ResponseType.DEFAULT_4XX,
      templates: { 'application/json': '{"error":"$context.error.messageString","code":"client_error"}' },
    });
    this.restApi.addGatewayResponse('Default5xx', {
      type: ResponseType.DEFAULT_5XX,
      templates: { 'application/json': '{"error":"internal error","code":"internal"}' },
    });

    this.authorizerFunction = this.createAuthorizerFunction(props);
    // Never cached: a revoked key must stop working at once, and the routes take either header
    // (API Gateway caches only on identity sources that are all present).
    this.authorizer = new RequestAuthorizer(this, 'CallerAuthorizer', {
      handler: this.authorizerFunction,
      identitySources: [],
      resultsCacheTtl: Duration.seconds(0),
    });

    const validator = this.restApi.addRequestValidator('BodyValidator', {
      validateRequestBody: true,
      validateRequestParameters: true,
    });
    const integration = new LambdaIntegration(this.handler, { proxy: true });
    const streamed = new LambdaIntegration(this.streamHandler, {
      proxy: true,
      responseTransferMode: ResponseTransferMode.STREAM,
      timeout: STREAM_TIMEOUT,
    });
    for (const route of ROUTES) {
      const resource = this.resourceFor(route.resource);
      const schema = BODY_SCHEMAS[route.name];
      const model: Model | undefined = schema ? this.modelFor(route.name, schema(props.limits)) : undefined;
      const method = resource.addMethod(route.method, route.stream ? streamed : integration, {
        ...(route.auth === 'caller'
          ? { authorizer: this.authorizer }
          : { authorizationType: AuthorizationType.NONE }),
        ...(model ? { requestValidator: validator, requestModels: { 'application/json': model } } : {}),
      });
      if (route.auth === 'public')
        Validations.of(method).acknowledge({
          id: 'AwsSolutions-APIG4',
          reason: `${route.resource} is public on purpose (health checks, client generators) and reads no tenant's data.`,
        });
      if (route.auth === 'worker')
        Validations.of(method).acknowledge({
          id: 'AwsSolutions-APIG4',
          reason: `${route.resource} takes a task token, checked by the handler with the one read of the task it makes anyway (an authorizer would read it a second time).`,
        });
    }
  }

  private createAuthorizerFunction(props: ApiProps): OrchestratorFunction {
    const fn = new OrchestratorFunction(this, 'CallerAuthorizerFn', {
      entry: 'authorizer',
      description: 'claude-orchestrator caller authorizer',
      environment: { TABLE_NAME: props.table.tableName },
      timeout: Duration.seconds(10),
      memorySize: 256,
      logRetention: props.logRetention,
      removalPolicy: props.removalPolicy,
    });
    allowTable(fn, props.table, ['GetItem']);
    return fn;
  }

  private resourceFor(path: string): Resource {
    let resource = this.restApi.root as unknown as Resource;
    for (const part of path.split('/').filter(Boolean)) {
      resource = (resource.getResource(part) as Resource | undefined) ?? resource.addResource(part);
    }
    return resource;
  }

  private modelFor(name: string, schema: z.ZodType): Model {
    const json = z.toJSONSchema(schema, {
      target: 'draft-04',
      io: 'input',
      unrepresentable: 'any',
    }) as Record<string, unknown>;
    const { $schema: _ignored, ...rest } = json;
    return this.restApi.addModel(`${name}Body`, {
      contentType: 'application/json',
      modelName: `${name}Body`,
      schema: { schema: JsonSchemaVersion.DRAFT4, ...(rest as object) },
    });
  }
}
