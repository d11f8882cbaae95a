/**
 * The orchestrator stack: one construct per concern, wired together here and
 * nowhere else. Everything it needs comes from the validated config.
 */
import { CfnOutput, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import type { OrchestratorConfig } from '../functions/core/config.ts';
import { gatewaySettingsFromConfig } from '../functions/services/model-gateway.ts';
import { settingsFromConfig } from '../functions/services/settings.ts';
import { Api } from './constructs/api.ts';
import { Events } from './constructs/events.ts';
import { ModelGateway } from './constructs/model-gateway.ts';
import { Monitoring } from './constructs/monitoring.ts';
import { State } from './constructs/state.ts';
import { WorkQueue } from './constructs/work-queue.ts';
import { WORKER_CONTAINER_NAME, Workers } from './constructs/workers.ts';
import { sharedEnvironment } from './orchestrator-function.ts';
import { retainRawLambdaLogs } from './raw-lambda-logs.ts';

export interface OrchestratorStackProps extends StackProps {
  readonly config: OrchestratorConfig;
}

export class OrchestratorStack extends Stack {
  readonly state: State;
  readonly api: Api;
  readonly workQueue: WorkQueue;
  readonly workers: Workers;
  readonly gateway: ModelGateway;
  readonly events: Events;
  readonly monitoring: Monitoring;

  constructor(scope: Construct, id: string, props: OrchestratorStackProps) {
    super(scope, id, props);
    const { config } = props;
    const deploy = config.deploy;
    const removalPolicy = deploy.removal_policy === 'destroy' ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN;
    const logRetention = deploy.log_retention_days as RetentionDays;
    // On AWS the gateway is always on: workers hold no model credential of their own.
    const settings = {
      ...settingsFromConfig(config, ''),
      gateway: gatewaySettingsFromConfig(config, {}, { enabled: true }),
    };

    this.state = new State(this, 'State', {
      removalPolicy,
      artifactRetentionDays: deploy.artifact_retention_days,
    });
    this.workQueue = new WorkQueue(this, 'WorkQueue', {
      maxReceiveCount: config.aws.max_receive_count,
      dispatcherTimeoutSec: deploy.dispatcher.timeout_sec,
      maxConcurrency: deploy.dispatcher.max_concurrency,
      batchSize: deploy.dispatcher.batch_size,
      logRetention,
      removalPolicy,
    });
    const environment = sharedEnvironment({
      table: this.state.table,
      queue: this.workQueue.queue,
      bucket: this.state.bucket,
      settings,
    });
    this.api = new Api(this, 'Api', {
      table: this.state.table,
      queue: this.workQueue.queue,
      bucket: this.state.bucket,
      environment,
      limits: settings.limits,
      throttleRatePerSec: deploy.api.throttle_rate_per_sec,
      throttleBurst: deploy.api.throttle_burst,
      logRetention,
      removalPolicy,
    });
    this.gateway = new ModelGateway(this, 'ModelGateway', {
      restApi: this.api.restApi,
      table: this.state.table,
      environment,
      anthropic: {
        mode: deploy.anthropic.mode,
        secretName: deploy.anthropic.secret_name,
        bedrockRegion: deploy.anthropic.bedrock_region,
        bedrockModels: deploy.anthropic.bedrock_models,
      },
      logRetention,
      removalPolicy,
    });
    this.workers = new Workers(this, 'Workers', {
      apiUrl: this.api.restApi.url,
      cpu: deploy.worker.cpu,
      memoryMiB: deploy.worker.memory_mib,
      architecture: deploy.worker.architecture,
      stopTimeoutSec: deploy.worker.stop_timeout_sec,
      gitTokenSecretName: deploy.git.token_secret_name,
      vpcId: deploy.vpc.vpc_id,
      subnetIds: deploy.vpc.subnet_ids,
      maxAzs: deploy.vpc.max_azs,
      natGateways: deploy.vpc.nat_gateways,
      logRetention,
      removalPolicy,
    });
    const dispatcher = this.workQueue.addDispatcher({
      table: this.state.table,
      bucket: this.state.bucket,
      environment,
      cluster: this.workers.cluster,
      taskDefinition: this.workers.taskDefinition,
      gitTaskDefinition: this.workers.gitTaskDefinition,
      containerName: WORKER_CONTAINER_NAME,
      tokenKey: this.workers.tokenKey,
      subnetIds: this.workers.subnetIds,
      securityGroupIds: [this.workers.securityGroup.securityGroupId],
      assignPublicIp: this.workers.assignPublicIp,
      spot: deploy.worker.spot,
    });
    this.workQueue.addDeadLetterConsumer({ table: this.state.table, bucket: this.state.bucket, environment });
    this.events = new Events(this, 'Events', {
      table: this.state.table,
      queue: this.workQueue.queue,
      environment,
      cluster: this.workers.cluster,
      containerName: WORKER_CONTAINER_NAME,
      sweepEveryMinutes: 5,
      logRetention,
      removalPolicy,
    });
    this.monitoring = new Monitoring(this, 'Monitoring', {
      queue: this.workQueue.queue,
      deadLetterQueue: this.workQueue.deadLetterQueue,
      dispatcher,
      api: this.api.restApi,
      alarmEmail: deploy.alarm_email,
      removalPolicy,
    });

    retainRawLambdaLogs(this, logRetention, removalPolicy);

    new CfnOutput(this, 'ApiUrl', {
      value: this.api.restApi.url,
      description: 'Base URL of the API (append api/v1/...)',
    });
    new CfnOutput(this, 'BucketName', {
      value: this.state.bucket.bucketName,
      description: 'Reports and worker files, under jobs/<job_id>/',
    });
    new CfnOutput(this, 'TableName', { value: this.state.table.tableName });
    new CfnOutput(this, 'ClusterName', { value: this.workers.cluster.clusterName });
    new CfnOutput(this, 'CreateApiKeyCommand', {
      value: `npx orchestrator keys create --stack ${this.stackName} --tenant <your-team>`,
      description: 'Creates the first API key (printed once)',
    });
    if (this.gateway.anthropicSecret && !deploy.anthropic.secret_name) {
      new CfnOutput(this, 'AnthropicSecretCommand', {
        value: `aws secretsmanager put-secret-value --secret-id ${this.gateway.anthropicSecret.secretArn} --secret-string "$ANTHROPIC_API_KEY"`,
        description: 'Stores your Anthropic API key where the model gateway (and only it) reads it',
      });
    }
  }
}
