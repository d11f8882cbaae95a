/**
 * Workers: the ECS cluster and two Fargate task definitions of one image,
 * whose container (named `worker` in both) runs `container/worker.ts`:
 *
 * - `taskDefinition`, the Claude workers (planner, work, merge), with
 *   `WORKER_ROLE=ai`. They hold no model credential: Claude talks to the
 *   API's model gateway with the task token (see model-gateway.ts).
 * - `gitTaskDefinition`, the steps without AI (fetch a git URL, push a
 *   result), with `WORKER_ROLE=git`: no model access, and the
 *   only one given the repository token (`GIT_TOKEN`) when
 *   `deploy.git.token_secret_name` is set. Claude never runs next to it.
 *
 * Neither task role has data-plane permissions: a worker reaches DynamoDB,
 * SQS and S3 only through the API with its task token. The one thing a task
 * role may do is decrypt its sealed task token (KMS, with the attempt bound
 * as encryption context).
 */
import { Duration, Fn, type RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import {
  FlowLogDestination,
  type IVpc,
  Peer,
  Port,
  SecurityGroup,
  SubnetType,
  Vpc,
} from 'aws-cdk-lib/aws-ec2';
import { DockerImageAsset, Platform } from 'aws-cdk-lib/aws-ecr-assets';
import {
  Cluster,
  ContainerImage,
  ContainerInsights,
  CpuArchitecture,
  Secret as EcsSecret,
  FargateTaskDefinition,
  LogDrivers,
  OperatingSystemFamily,
} from 'aws-cdk-lib/aws-ecs';
import { Effect, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { Key } from 'aws-cdk-lib/aws-kms';
import { LogGroup, type RetentionDays } from 'aws-cdk-lib/aws-logs';
import { type ISecret, Secret } from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { REPO_ROOT } from '../defaults.ts';

export const WORKER_CONTAINER_NAME = 'worker';

/** `WORKER_ROLE` of each task definition; the worker refuses a step that belongs to the other one. */
export const WORKER_ROLES = { ai: 'ai', git: 'git' } as const;

export interface WorkersProps {
  /** Base URL of the API the workers call back. */
  readonly apiUrl: string;
  readonly cpu: number;
  readonly memoryMiB: number;
  readonly architecture: 'arm64' | 'x86_64';
  /** Seconds between SIGTERM and SIGKILL when a task is stopped. */
  readonly stopTimeoutSec: number;
  /** Secrets Manager secret (by name) with the token for private git remotes; only the git task definition gets it. */
  readonly gitTokenSecretName: string | null;
  /** Import these instead of creating a VPC. */
  readonly vpcId: string | null;
  readonly subnetIds: string[];
  readonly maxAzs: number;
  readonly natGateways: number;
  readonly logRetention: RetentionDays;
  readonly removalPolicy: RemovalPolicy;
}

export class Workers extends Construct {
  readonly cluster: Cluster;
  /** The Claude workers: planner, work and merge steps. */
  readonly taskDefinition: FargateTaskDefinition;
  /** The steps without AI (fetch a git URL, push a result): the only one with the repository token. */
  readonly gitTaskDefinition: FargateTaskDefinition;
  readonly securityGroup: SecurityGroup;
  /** Subnets workers start in. */
  readonly subnetIds: string[];
  /** Fargate tasks need a public IP to reach the internet from a public subnet (no NAT). */
  readonly assignPublicIp: boolean;
  readonly logGroup: LogGroup;
  readonly gitTokenSecret?: ISecret;
  /** Seals task tokens in the RunTask overrides: the dispatcher encrypts, the task roles decrypt. */
  readonly tokenKey: Key;

  constructor(scope: Construct, id: string, props: WorkersProps) {
    super(scope, id);

    let vpc: IVpc;
    if (props.vpcId) {
      // The AZ list only has to match the subnet count; the workers get the subnet ids directly.
      vpc = Vpc.fromVpcAttributes(this, 'Vpc', {
        vpcId: props.vpcId,
        availabilityZones: props.subnetIds.map((_, i) => Fn.select(i, Fn.getAzs())),
        privateSubnetIds: props.subnetIds,
      });
      this.subnetIds = props.subnetIds;
      this.assignPublicIp = false;
    } else {
      const created = new Vpc(this, 'Vpc', {
        maxAzs: props.maxAzs,
        natGateways: props.natGateways,
        subnetConfiguration:
          props.natGateways > 0
            ? [
                { name: 'public', subnetType: SubnetType.PUBLIC, cidrMask: 24 },
                { name: 'workers', subnetType: SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 20 },
              ]
            : [{ name: 'public', subnetType: SubnetType.PUBLIC, cidrMask: 20 }],
      });
      created.addFlowLog('FlowLogs', {
        destination: FlowLogDestination.toCloudWatchLogs(
          new LogGroup(this, 'FlowLogGroup', {
            retention: props.logRetention,
            removalPolicy: props.removalPolicy,
          }),
        ),
      });
      vpc = created;
      const subnets = created.selectSubnets({
        subnetType: props.natGateways > 0 ? SubnetType.PRIVATE_WITH_EGRESS : SubnetType.PUBLIC,
      });
      this.subnetIds = subnets.subnetIds;
      this.assignPublicIp = props.natGateways === 0;
    }

    // No inbound at all; outbound HTTPS only (the API, Anthropic or Bedrock, S3 presigned URLs, ECR, git over https).
    this.securityGroup = new SecurityGroup(this, 'WorkerSecurityGroup', {
      vpc,
      description: 'Claude workers: no inbound, HTTPS out only',
      allowAllOutbound: false,
    });
    this.securityGroup.addEgressRule(
      Peer.anyIpv4(),
      Port.tcp(443),
      'HTTPS to the API, the model provider and S3',
    );

    this.cluster = new Cluster(this, 'Cluster', {
      // Without a VPC the ECS Cluster construct would create one of its own.
      vpc,
      containerInsightsV2: ContainerInsights.ENABLED,
      enableFargateCapacityProviders: true,
    });

    const arm = props.architecture === 'arm64';
    const runtimePlatform = {
      cpuArchitecture: arm ? CpuArchitecture.ARM64 : CpuArchitecture.X86_64,
      operatingSystemFamily: OperatingSystemFamily.LINUX,
    };
    this.taskDefinition = new FargateTaskDefinition(this, 'TaskDefinition', {
      cpu: props.cpu,
      memoryLimitMiB: props.memoryMiB,
      runtimePlatform,
    });
    // The same size: a large repository's fetch and bundle need the memory as much as a checkout does.
    this.gitTaskDefinition = new FargateTaskDefinition(this, 'GitTaskDefinition', {
      cpu: props.cpu,
      memoryLimitMiB: props.memoryMiB,
      runtimePlatform,
    });

    this.logGroup = new LogGroup(this, 'WorkerLogs', {
      retention: props.logRetention,
      removalPolicy: props.removalPolicy,
    });
    // One image for both task definitions, built once by `cdk deploy`.
    const image = ContainerImage.fromDockerImageAsset(
      new DockerImageAsset(this, 'WorkerImage', {
        directory: REPO_ROOT,
        file: 'container/Dockerfile',
        platform: arm ? Platform.LINUX_ARM64 : Platform.LINUX_AMD64,
      }),
    );
    const stopTimeout = Duration.seconds(props.stopTimeoutSec);

    this.tokenKey = new Key(this, 'TaskTokenKey', {
      description: 'Seals claude-orchestrator task tokens in ECS RunTask overrides',
      enableKeyRotation: true,
      removalPolicy: props.removalPolicy,
    });
    for (const taskDefinition of [this.taskDefinition, this.gitTaskDefinition]) {
      taskDefinition.taskRole.addToPrincipalPolicy(
        new PolicyStatement({
          effect: Effect.ALLOW,
          actions: ['kms:Decrypt'],
          resources: [this.tokenKey.keyArn],
          conditions: {
            'ForAllValues:StringEquals': { 'kms:EncryptionContextKeys': ['fleet:task'] },
            Null: { 'kms:EncryptionContextKeys': 'false' },
          },
        }),
      );
    }

    // No model credential at all: Claude reaches the model through the API's gateway with the task token.
    const environment: Record<string, string> = {
      API_URL: props.apiUrl,
      WORKER_ROLE: WORKER_ROLES.ai,
      AWS_REGION: Stack.of(this).region,
    };
    this.taskDefinition.addContainer(WORKER_CONTAINER_NAME, {
      containerName: WORKER_CONTAINER_NAME,
      image,
      logging: LogDrivers.awsLogs({ streamPrefix: 'worker', logGroup: this.logGroup }),
      environment,
      stopTimeout,
      essential: true,
    });
    Validations.of(this.taskDefinition).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'The execution role needs ecr:GetAuthorizationToken, which AWS only grants on "*"; it pulls this image and writes this log group only.',
    });
    Validations.of(this.taskDefinition).acknowledge({
      id: 'AwsSolutions-ECS2',
      reason:
        'The environment holds only non-secret settings (API_URL, WORKER_ROLE, AWS_REGION); the task token arrives sealed with KMS.',
    });

    // The steps without AI: no Anthropic key, no Bedrock, and the repository token when one is configured.
    const gitSecrets: Record<string, EcsSecret> = {};
    if (props.gitTokenSecretName) {
      this.gitTokenSecret = Secret.fromSecretNameV2(this, 'GitToken', props.gitTokenSecretName);
      gitSecrets.GIT_TOKEN = EcsSecret.fromSecretsManager(this.gitTokenSecret);
    }
    this.gitTaskDefinition.addContainer(WORKER_CONTAINER_NAME, {
      containerName: WORKER_CONTAINER_NAME,
      image,
      logging: LogDrivers.awsLogs({ streamPrefix: 'git', logGroup: this.logGroup }),
      environment: {
        API_URL: props.apiUrl,
        WORKER_ROLE: WORKER_ROLES.git,
        AWS_REGION: Stack.of(this).region,
      },
      secrets: gitSecrets,
      stopTimeout,
      essential: true,
    });
    Validations.of(this.gitTaskDefinition).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'The execution role needs ecr:GetAuthorizationToken, which AWS only grants on "*"; it pulls this image and writes this log group only.',
    });
    Validations.of(this.gitTaskDefinition).acknowledge({
      id: 'AwsSolutions-ECS2',
      reason:
        'The environment holds only non-secret settings (API_URL, WORKER_ROLE); the repository token is an ECS secret.',
    });
  }
}
