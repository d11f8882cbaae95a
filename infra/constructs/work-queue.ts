/**
 * The work queue and its consumer: an encrypted, TLS-only SQS queue with a
 * dead-letter queue, and the dispatcher Lambda that claims tasks and starts
 * Fargate workers (and runs aggregation), reporting partial batch failures.
 */
import { Duration, type RemovalPolicy, Validations } from 'aws-cdk-lib';
import type { ITableV2 } from 'aws-cdk-lib/aws-dynamodb';
import type { FargateTaskDefinition, ICluster } from 'aws-cdk-lib/aws-ecs';
import { Effect, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import { Queue } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import {
  DEAD_LETTER_RETENTION,
  QUEUE_DEFAULTS,
  visibilityTimeoutFor,
  WORK_QUEUE_RETENTION,
} from '../defaults.ts';
import { OrchestratorFunction, type SharedEnvironment } from '../orchestrator-function.ts';
import {
  allowArtifacts,
  allowRunTasks,
  allowTable,
  clusterTasksArn,
  nagClusterTasksArn,
} from '../permissions.ts';

/** The dead-letter consumer's timeout; its queue hides a message for the advised multiple of it. */
const DEAD_LETTER_CONSUMER_TIMEOUT = Duration.seconds(60);
/** Headroom under ECS's 20 RunTask calls per second, shared by every dispatcher instance. */
export const ECS_RUN_TASK_BUDGET_PER_SEC = 18;

export interface WorkQueueProps {
  readonly maxReceiveCount: number;
  readonly dispatcherTimeoutSec: number;
  readonly maxConcurrency: number;
  readonly batchSize: number;
  readonly logRetention: RetentionDays;
  readonly removalPolicy: RemovalPolicy;
}

export interface DispatcherTargets {
  readonly table: ITableV2;
  readonly bucket: IBucket;
  readonly environment: SharedEnvironment;
  readonly cluster: ICluster;
  /** The Claude workers (planner, work, merge). */
  readonly taskDefinition: FargateTaskDefinition;
  /** The steps without AI (fetch, push), the only ones given the repository token. */
  readonly gitTaskDefinition: FargateTaskDefinition;
  /** The worker container's name, the same in both task definitions. */
  readonly containerName: string;
  /** Seals each task token for the RunTask overrides; only the workers' task roles may decrypt. */
  readonly tokenKey: IKey;
  readonly subnetIds: string[];
  readonly securityGroupIds: string[];
  readonly assignPublicIp: boolean;
  readonly spot: boolean;
}

export class WorkQueue extends Construct {
  readonly queue: Queue;
  readonly deadLetterQueue: Queue;
  private readonly props: WorkQueueProps;
  dispatcher?: OrchestratorFunction;
  deadLetterConsumer?: OrchestratorFunction;

  constructor(scope: Construct, id: string, props: WorkQueueProps) {
    super(scope, id);
    this.props = props;
    this.deadLetterQueue = new Queue(this, 'DeadLetterQueue', {
      ...QUEUE_DEFAULTS,
      visibilityTimeout: visibilityTimeoutFor(DEAD_LETTER_CONSUMER_TIMEOUT),
      retentionPeriod: DEAD_LETTER_RETENTION,
      removalPolicy: props.removalPolicy,
    });
    this.queue = new Queue(this, 'Queue', {
      ...QUEUE_DEFAULTS,
      visibilityTimeout: visibilityTimeoutFor(Duration.seconds(props.dispatcherTimeoutSec)),
      retentionPeriod: WORK_QUEUE_RETENTION,
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: props.maxReceiveCount },
      removalPolicy: props.removalPolicy,
    });
  }

  /** Creates the dispatcher once the workers it launches exist. */
  addDispatcher(targets: DispatcherTargets): OrchestratorFunction {
    const props = this.props;
    const fn = new OrchestratorFunction(this, 'Dispatcher', {
      entry: 'queue-consumer',
      description: 'claude-orchestrator dispatcher: claims tasks, starts Fargate workers, aggregates jobs',
      timeout: Duration.seconds(props.dispatcherTimeoutSec),
      environment: {
        ...targets.environment,
        CLUSTER_ARN: targets.cluster.clusterArn,
        TASK_DEFINITION_ARN: targets.taskDefinition.taskDefinitionArn,
        GIT_TASK_DEFINITION_ARN: targets.gitTaskDefinition.taskDefinitionArn,
        CONTAINER_NAME: targets.containerName,
        TASK_SEAL_KMS_ARN: targets.tokenKey.keyArn,
        SUBNET_IDS: targets.subnetIds.join(','),
        SECURITY_GROUP_IDS: targets.securityGroupIds.join(','),
        ASSIGN_PUBLIC_IP: String(targets.assignPublicIp),
        CAPACITY_PROVIDER: targets.spot ? 'FARGATE_SPOT' : 'FARGATE',
        // ECS allows 20 RunTask calls per second per account; keep the dispatchers together under 18.
        RUN_TASK_RATE: String(Math.max(1, Math.floor(ECS_RUN_TASK_BUDGET_PER_SEC / props.maxConcurrency))),
      },
      logRetention: props.logRetention,
      removalPolicy: props.removalPolicy,
    });
    fn.addEventSource(
      new SqsEventSource(this.queue, {
        batchSize: props.batchSize,
        reportBatchItemFailures: true,
        maxConcurrency: props.maxConcurrency,
      }),
    );
    allowTable(fn, targets.table, ['GetItem', 'PutItem', 'UpdateItem', 'Query']);
    this.queue.grantSendMessages(fn);
    // The aggregator writes the reports.
    allowArtifacts(fn, targets.bucket, ['PutObject']);
    // RunTask on the two worker task definitions in this cluster, and iam:PassRole for exactly their roles.
    allowRunTasks(fn, targets.cluster, [targets.taskDefinition, targets.gitTaskDefinition]);
    // Encrypt only, and only with an attempt bound as encryption context (token-seal.ts).
    fn.addToRolePolicy(
      new PolicyStatement({
        effect: Effect.ALLOW,
        actions: ['kms:Encrypt'],
        resources: [targets.tokenKey.keyArn],
        conditions: {
          'ForAllValues:StringEquals': { 'kms:EncryptionContextKeys': ['fleet:task'] },
          Null: { 'kms:EncryptionContextKeys': 'false' },
        },
      }),
    );
    fn.addToRolePolicy(
      new PolicyStatement({
        effect: Effect.ALLOW,
        // Stops a cancelled job's workers; it never describes them (the reconciler does).
        actions: ['ecs:StopTask'],
        resources: [clusterTasksArn(this, targets.cluster.clusterName)],
      }),
    );
    fn.addToRolePolicy(
      new PolicyStatement({
        effect: Effect.ALLOW,
        actions: ['ecs:TagResource'],
        resources: [clusterTasksArn(this, targets.cluster.clusterName)],
        conditions: { StringEquals: { 'ecs:CreateAction': 'RunTask' } },
      }),
    );
    Validations.of(fn.role ?? fn).acknowledge({
      id: `AwsSolutions-IAM5[Resource::${nagClusterTasksArn(this, targets.cluster)}]`,
      reason:
        'Worker task ARNs exist only after RunTask; StopTask, DescribeTasks and tagging are limited to tasks of this one cluster.',
    });
    this.dispatcher = fn;
    return fn;
  }

  /** Poison messages: the dead-letter consumer fails their task or job, so nothing waits forever. */
  addDeadLetterConsumer(
    targets: Pick<DispatcherTargets, 'table' | 'bucket' | 'environment'>,
  ): OrchestratorFunction {
    const props = this.props;
    const fn = new OrchestratorFunction(this, 'DeadLetterConsumer', {
      entry: 'dead-letters',
      description: 'claude-orchestrator dead-letter consumer: fails the task or job of a poison message',
      timeout: DEAD_LETTER_CONSUMER_TIMEOUT,
      environment: targets.environment,
      logRetention: props.logRetention,
      removalPolicy: props.removalPolicy,
    });
    fn.addEventSource(
      new SqsEventSource(this.deadLetterQueue, {
        batchSize: 10,
        reportBatchItemFailures: true,
        maxConcurrency: 2,
      }),
    );
    allowTable(fn, targets.table, ['GetItem', 'PutItem', 'UpdateItem', 'Query']);
    this.queue.grantSendMessages(fn);
    allowArtifacts(fn, targets.bucket, ['PutObject']);
    this.deadLetterConsumer = fn;
    return fn;
  }
}
