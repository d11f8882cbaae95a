/**
 * Monitoring: alarms on the dead-letter queue, dispatcher errors and failed
 * jobs, sent to an encrypted SNS topic, and one dashboard. Finished jobs are
 * the `JobsFinished` metric the functions write as EMF (functions/core/metrics.ts),
 * whichever function ended the job: the aggregator or the dead-letter consumer.
 */
import { Duration, type RemovalPolicy } from 'aws-cdk-lib';
import type { RestApi } from 'aws-cdk-lib/aws-apigateway';
import {
  Alarm,
  ComparisonOperator,
  Dashboard,
  GraphWidget,
  Metric,
  TextWidget,
  TreatMissingData,
} from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import { PolicyStatement, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Key } from 'aws-cdk-lib/aws-kms';
import type { Function as LambdaFunction } from 'aws-cdk-lib/aws-lambda';
import { Topic } from 'aws-cdk-lib/aws-sns';
import { EmailSubscription } from 'aws-cdk-lib/aws-sns-subscriptions';
import type { Queue } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import {
  JOB_STATUS_DIMENSION,
  JOBS_FINISHED_METRIC,
  METRIC_NAMESPACE,
  SERVICE_DIMENSION,
  SERVICE_NAME,
} from '../../functions/core/metrics.ts';
import type { JobStatus } from '../../functions/core/task-states.ts';

/** Jobs that ended with `status`, from the EMF metric every function writes. */
export function jobsFinishedMetric(status: JobStatus): Metric {
  return new Metric({
    namespace: METRIC_NAMESPACE,
    metricName: JOBS_FINISHED_METRIC,
    dimensionsMap: { [SERVICE_DIMENSION]: SERVICE_NAME, [JOB_STATUS_DIMENSION]: status },
    statistic: 'Sum',
    period: Duration.minutes(5),
  });
}

/** The statuses a job ends with when the aggregator or the dead-letter consumer ends it. */
const FINISHED_STATUSES: readonly JobStatus[] = ['completed', 'partial', 'failed'];

export interface MonitoringProps {
  readonly queue: Queue;
  readonly deadLetterQueue: Queue;
  readonly dispatcher: LambdaFunction;
  readonly api: RestApi;
  readonly alarmEmail: string | null;
  readonly removalPolicy: RemovalPolicy;
}

export class Monitoring extends Construct {
  readonly topic: Topic;
  readonly dashboard: Dashboard;
  readonly alarms: Alarm[] = [];

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    // A key of our own: CloudWatch cannot use the AWS-managed SNS key, and alarms would never be delivered.
    const key = new Key(this, 'AlarmsKey', {
      description: 'claude-orchestrator alarm notifications',
      enableKeyRotation: true,
      removalPolicy: props.removalPolicy,
    });
    key.addToResourcePolicy(
      new PolicyStatement({
        principals: [new ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: ['*'],
      }),
    );
    this.topic = new Topic(this, 'Alarms', { masterKey: key, enforceSSL: true });
    if (props.alarmEmail) this.topic.addSubscription(new EmailSubscription(props.alarmEmail));

    const alarm = (id: string, metric: Metric, description: string) => {
      const a = new Alarm(this, id, {
        metric,
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: TreatMissingData.NOT_BREACHING,
        alarmDescription: description,
      });
      a.addAlarmAction(new SnsAction(this.topic));
      this.alarms.push(a);
      return a;
    };
    alarm(
      'DeadLetters',
      // Arrivals, not depth: the dead-letter consumer fails the task at once and removes the message.
      props.deadLetterQueue.metric('NumberOfMessagesSent', { period: Duration.minutes(5), statistic: 'Sum' }),
      'Work messages reached the dead-letter queue: their task or job was marked failed.',
    );
    alarm(
      'DispatcherErrors',
      props.dispatcher.metricErrors({ period: Duration.minutes(5), statistic: 'Sum' }),
      'The dispatcher Lambda failed (whole invocations, not single records).',
    );
    alarm('FailedJobs', jobsFinishedMetric('failed'), 'A job ended failed.');

    this.dashboard = new Dashboard(this, 'Dashboard', { dashboardName: undefined });
    this.dashboard.addWidgets(
      new TextWidget({ markdown: '# claude-orchestrator', width: 24, height: 1 }),
      new GraphWidget({
        title: 'Jobs finished',
        left: FINISHED_STATUSES.map((status) => jobsFinishedMetric(status).with({ label: status })),
        width: 8,
      }),
      new GraphWidget({
        title: 'Work queue',
        left: [
          props.queue.metricApproximateNumberOfMessagesVisible(),
          props.queue.metricApproximateAgeOfOldestMessage(),
        ],
        right: [props.deadLetterQueue.metric('NumberOfMessagesSent', { statistic: 'Sum' })],
        width: 8,
      }),
      new GraphWidget({
        title: 'Dispatcher',
        left: [
          props.dispatcher.metricInvocations(),
          props.dispatcher.metricErrors(),
          props.dispatcher.metricThrottles(),
        ],
        right: [props.dispatcher.metricDuration()],
        width: 8,
      }),
      new GraphWidget({
        title: 'API',
        left: [props.api.metricCount(), props.api.metricClientError(), props.api.metricServerError()],
        right: [props.api.metricLatency()],
        width: 12,
      }),
    );
  }
}
