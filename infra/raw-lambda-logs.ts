/**
 * Log retention for Lambdas the CDK adds by itself (custom-resource providers
 * such as the one that locks down a new VPC's default security group). They
 * would otherwise log to a group that keeps everything forever.
 */
import { CfnResource, type RemovalPolicy, type Stack } from 'aws-cdk-lib';
import { CfnFunction } from 'aws-cdk-lib/aws-lambda';
import { LogGroup, type RetentionDays } from 'aws-cdk-lib/aws-logs';

export function retainRawLambdaLogs(
  stack: Stack,
  retention: RetentionDays,
  removalPolicy: RemovalPolicy,
): void {
  const handlers = stack.node
    .findAll()
    .filter(
      (c): c is CfnResource =>
        c instanceof CfnResource &&
        !(c instanceof CfnFunction) &&
        c.cfnResourceType === 'AWS::Lambda::Function',
    );
  if (handlers.length === 0) return;
  const groups = handlers.map(
    (handler, i) =>
      new LogGroup(stack, `ProviderLogs${i}`, {
        logGroupName: `/aws/lambda/${handler.ref}`,
        retention,
        removalPolicy,
      }),
  );
  // The group must exist before a custom resource first invokes its handler, or Lambda creates its own.
  for (const c of stack.node.findAll()) {
    if (!(c instanceof CfnResource)) continue;
    const type = c.cfnResourceType;
    if (type.startsWith('Custom::') || type === 'AWS::CloudFormation::CustomResource') {
      for (const g of groups) c.addDependency(g.node.defaultChild as CfnResource);
    }
  }
}
