/**
 * Least-privilege grants, written out instead of CDK's broad `grant*`
 * helpers: each function gets exactly the item and object actions its code
 * calls, on the table, its one index and the `jobs/` (or `sources/`) prefix,
 * and the dispatcher may start exactly the worker task definitions.
 */
import { type CfnElement, Stack, Token, Validations } from 'aws-cdk-lib';
import type { ITableV2 } from 'aws-cdk-lib/aws-dynamodb';
import type { ICluster, TaskDefinition } from 'aws-cdk-lib/aws-ecs';
import { Effect, type IGrantable, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import type { IConstruct } from 'constructs';
import { LISTING_INDEX } from '../functions/adapters/table-schema.ts';
import { JOBS_PREFIX, SOURCES_PREFIX } from '../functions/core/layout.ts';

export type TableAction = 'GetItem' | 'BatchGetItem' | 'PutItem' | 'UpdateItem' | 'Query' | 'BatchWriteItem';
export type ObjectAction = 'GetObject' | 'PutObject';

type Grantee = IGrantable & IConstruct & Pick<IFunction, 'addToRolePolicy' | 'role'>;

export function allowTable(fn: Grantee, table: ITableV2, actions: readonly TableAction[]): void {
  fn.addToRolePolicy(
    new PolicyStatement({
      effect: Effect.ALLOW,
      actions: actions.map((a) => `dynamodb:${a}`),
      resources: actions.includes('Query')
        ? [table.tableArn, `${table.tableArn}/index/${LISTING_INDEX}`]
        : [table.tableArn],
    }),
  );
}

/** Object actions under `jobs/`, and listing that prefix when `list` is set. */
export function allowArtifacts(
  fn: Grantee,
  bucket: IBucket,
  actions: readonly ObjectAction[],
  list = false,
): void {
  fn.addToRolePolicy(
    new PolicyStatement({
      effect: Effect.ALLOW,
      actions: actions.map((a) => `s3:${a}`),
      resources: [bucket.arnForObjects(`${JOBS_PREFIX}*`)],
    }),
  );
  if (list) {
    fn.addToRolePolicy(
      new PolicyStatement({
        effect: Effect.ALLOW,
        actions: ['s3:ListBucket'],
        resources: [bucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': [`${JOBS_PREFIX}*`] } },
      }),
    );
  }
  Validations.of(fn.role ?? fn).acknowledge({
    id: `AwsSolutions-IAM5[Resource::<${nagRef(bucket)}.Arn>/${JOBS_PREFIX}*]`,
    reason:
      'Object keys are per job and only known at run time; access is limited to the jobs/ prefix of the one artifacts bucket.',
  });
}

/**
 * Object actions under `sources/`, where callers upload repository bundles
 * through URLs the API signs: put so those URLs are honoured, get for the
 * HeadObject and the CopyObject source at submit. No listing.
 */
export function allowSourceUploads(fn: Grantee, bucket: IBucket, actions: readonly ObjectAction[]): void {
  fn.addToRolePolicy(
    new PolicyStatement({
      effect: Effect.ALLOW,
      actions: actions.map((a) => `s3:${a}`),
      resources: [bucket.arnForObjects(`${SOURCES_PREFIX}*`)],
    }),
  );
  Validations.of(fn.role ?? fn).acknowledge({
    id: `AwsSolutions-IAM5[Resource::<${nagRef(bucket)}.Arn>/${SOURCES_PREFIX}*]`,
    reason:
      'Upload keys are per tenant and bundle and only known at run time; access is limited to the sources/ prefix of the one artifacts bucket, whose objects expire after a day.',
  });
}

/**
 * `ecs:RunTask` of exactly these task definitions, only in `cluster`, and
 * `iam:PassRole` of exactly their task and execution roles, only to ECS tasks.
 */
export function allowRunTasks(
  fn: Grantee,
  cluster: ICluster,
  taskDefinitions: readonly TaskDefinition[],
): void {
  const roles = taskDefinitions.flatMap((td) => {
    if (!td.executionRole) throw new Error(`${td.node.path} has no execution role to pass`);
    return [td.taskRole.roleArn, td.executionRole.roleArn];
  });
  fn.addToRolePolicy(
    new PolicyStatement({
      effect: Effect.ALLOW,
      actions: ['ecs:RunTask'],
      resources: taskDefinitions.map((td) => td.taskDefinitionArn),
      conditions: { ArnEquals: { 'ecs:cluster': cluster.clusterArn } },
    }),
  );
  fn.addToRolePolicy(
    new PolicyStatement({
      effect: Effect.ALLOW,
      actions: ['iam:PassRole'],
      resources: roles,
      conditions: { StringEquals: { 'iam:PassedToService': 'ecs-tasks.amazonaws.com' } },
    }),
  );
}

/** The name cdk-nag prints for a resource's ARN token, e.g. `StateArtifacts125AA632`. */
export function nagRef(resource: IConstruct): string {
  return Stack.of(resource).getLogicalId(resource.node.defaultChild as CfnElement);
}

/** How cdk-nag prints `stack.formatArn(...)` for an ECS task in a cluster, to name the finding exactly. */
export function nagClusterTasksArn(scope: IConstruct, cluster: IConstruct): string {
  const stack = Stack.of(scope);
  const show = (value: string, token: string) => (Token.isUnresolved(value) ? `<${token}>` : value);
  return `arn:${show(stack.partition, 'AWS::Partition')}:ecs:${show(stack.region, 'AWS::Region')}:${show(stack.account, 'AWS::AccountId')}:task/<${nagRef(cluster)}>/*`;
}

/** The formatted ARN of every task of a cluster (task ARNs are only known after RunTask). */
export function clusterTasksArn(scope: IConstruct, clusterName: string): string {
  return Stack.of(scope).formatArn({ service: 'ecs', resource: 'task', resourceName: `${clusterName}/*` });
}

/** How cdk-nag prints an ARN string built from stack tokens (partition, region, account). */
export function nagArn(scope: IConstruct, arn: string): string {
  const stack = Stack.of(scope);
  const names: [string, string][] = [
    [stack.partition, 'AWS::Partition'],
    [stack.region, 'AWS::Region'],
    [stack.account, 'AWS::AccountId'],
  ];
  let out = arn;
  for (const [value, name] of names) if (Token.isUnresolved(value)) out = out.split(value).join(`<${name}>`);
  return out;
}
