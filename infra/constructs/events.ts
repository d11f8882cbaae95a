/**
 * Events: ECS task-state changes of this cluster's stopped tasks, and a
 * scheduled sweep, both feeding the reconciler, which records workers that
 * stopped without reporting as failed attempts (retried when allowed).
 */
import { Duration, type RemovalPolicy, Validations } from 'aws-cdk-lib';
import type { ITableV2 } from 'aws-cdk-lib/aws-dynamodb';
import type { ICluster } from 'aws-cdk-lib/aws-ecs';
import { Rule, Schedule } from 'aws-cdk-lib/aws-events';
import { LambdaFunction } from 'aws-cdk-lib/aws-events-targets';
import { Effect, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { IQueue } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { OrchestratorFunction, type SharedEnvironment } from '../orchestrator-function.ts';
import { allowTable, clusterTasksArn, nagClusterTasksArn, type TableAction } from '../permissions.ts';

/**
 * The table actions of the reconciler's code paths. Recording a lost worker
 * or finishing a forgotten follow-up reads and updates tasks and jobs (GetItem,
 * UpdateItem, Query), and may take the step that follows: when the last work
 * task of a repository job ends, the merge (then push) step is created with a
 * conditional PutItem (record-result.ts, startStep). Run messages go on the
 * queue (sqs:SendMessage, which covers SendMessageBatch).
 */
export const RECONCILER_TABLE_ACTIONS: readonly TableAction[] = ['GetItem', 'PutItem', 'UpdateItem', 'Query'];

/** The only ECS actions of the reconciler: it watches and stops workers (ecs-task-monitor.ts), never starts one. */
export const RECONCILER_ECS_ACTIONS = ['ecs:DescribeTasks', 'ecs:StopTask'] as const;

export interface EventsProps {
  readonly table: ITableV2;
  readonly queue: IQueue;
  readonly environment: SharedEnvironment;
  readonly cluster: ICluster;
  readonly containerName: string;
  /** Minutes between sweeps. */
  readonly sweepEveryMinutes: number;
  readonly logRetention: RetentionDays;
  readonly removalPolicy: RemovalPolicy;
}

export class Events extends Construct {
  readonly reconciler: OrchestratorFunction;
  readonly taskStoppedRule: Rule;
  readonly sweepRule: Rule;

  constructor(scope: Construct, id: string, props: EventsProps) {
    super(scope, id);
    this.reconciler = new OrchestratorFunction(this, 'Reconciler', {
      entry: 'reconciler',
      description: 'claude-orchestrator reconciler: workers that stopped without a result',
      timeout: Duration.seconds(60),
      environment: {
        ...props.environment,
        CLUSTER_ARN: props.cluster.clusterArn,
        CONTAINER_NAME: props.containerName,
      },
      logRetention: props.logRetention,
      removalPolicy: props.removalPolicy,
    });
    allowTable(this.reconciler, props.table, RECONCILER_TABLE_ACTIONS);
    props.queue.grantSendMessages(this.reconciler);
    this.reconciler.addToRolePolicy(
      new PolicyStatement({
        effect: Effect.ALLOW,
        actions: [...RECONCILER_ECS_ACTIONS],
        resources: [clusterTasksArn(this, props.cluster.clusterName)],
      }),
    );

    Validations.of(this.reconciler.role ?? this.reconciler).acknowledge({
      id: `AwsSolutions-IAM5[Resource::${nagClusterTasksArn(this, props.cluster)}]`,
      reason:
        'Worker task ARNs exist only after RunTask; DescribeTasks and StopTask are limited to tasks of this one cluster.',
    });

    const target = new LambdaFunction(this.reconciler, { retryAttempts: 4, maxEventAge: Duration.hours(2) });
    this.taskStoppedRule = new Rule(this, 'TaskStopped', {
      description: 'Worker tasks of this cluster that stopped',
      eventPattern: {
        source: ['aws.ecs'],
        detailType: ['ECS Task State Change'],
        detail: { clusterArn: [props.cluster.clusterArn], lastStatus: ['STOPPED'] },
      },
      targets: [target],
    });
    this.sweepRule = new Rule(this, 'Sweep', {
      description: 'Periodic check for workers that are gone or overdue',
      schedule: Schedule.rate(Duration.minutes(props.sweepEveryMinutes)),
      targets: [target],
    });
  }
}
