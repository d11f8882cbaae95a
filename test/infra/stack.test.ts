/**
 * The orchestrator stack's security and operational properties, each asserted
 * on its own against the synthesized template: the default configuration,
 * a variant that changes every deploy option the template depends on (a git
 * token secret among them), the Bedrock mode and an imported VPC.
 */
import { Match } from 'aws-cdk-lib/assertions';
import { Runtime, RuntimeFamily } from 'aws-cdk-lib/aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  LISTING_INDEX,
  LISTING_INDEX_PARTITION_KEY,
  LISTING_INDEX_SORT_KEY,
  PARTITION_KEY,
  SORT_KEY,
  TTL_ATTRIBUTE,
} from '../../functions/adapters/table-schema.ts';
import { JOBS_PREFIX, SOURCES_PREFIX } from '../../functions/core/layout.ts';
import {
  JOB_STATUS_DIMENSION,
  JOBS_FINISHED_METRIC,
  METRIC_NAMESPACE,
  SERVICE_DIMENSION,
  SERVICE_NAME,
} from '../../functions/core/metrics.ts';
import { ROUTES } from '../../functions/handlers/routes.ts';
import { SettingsJsonSchema } from '../../functions/services/settings.ts';
import { RECONCILER_ECS_ACTIONS, RECONCILER_TABLE_ACTIONS } from '../../infra/constructs/events.ts';
import { WORKER_CONTAINER_NAME } from '../../infra/constructs/workers.ts';
import { OrchestratorFunction } from '../../infra/orchestrator-function.ts';
import {
  actionsOf,
  type CfnResource,
  logicalId,
  type PolicyStatementJson,
  removeSyntheses,
  resourcesOfType,
  roleIdOfArn,
  SYNTH_TIMEOUT_MS,
  type SynthesizedStack,
  statementsOfRole,
  synthesize,
} from './synthesized-stack.ts';

/** The repository token secret of the variant (`deploy.git.token_secret_name`). */
const GIT_TOKEN_SECRET = 'claude-fleet/git-token';
/** Every deploy option the template depends on, set away from its default. */
const VARIANT_YAML = `
aws:
  max_receive_count: 3
deploy:
  removal_policy: destroy
  artifact_retention_days: 0
  log_retention_days: 14
  worker: { architecture: x86_64, cpu: 2048, memory_mib: 8192, spot: false, stop_timeout_sec: 90 }
  dispatcher: { timeout_sec: 120, max_concurrency: 7, batch_size: 4 }
  api: { throttle_rate_per_sec: 7, throttle_burst: 9 }
  git: { token_secret_name: ${GIT_TOKEN_SECRET} }
`;
const BEDROCK_YAML =
  'orchestrator: { model: claude-sonnet-4-5-20250929 }\ndeploy: { anthropic: { mode: bedrock } }';
const IMPORTED_VPC_YAML =
  'deploy: { vpc: { vpc_id: vpc-0abc1234, subnet_ids: [subnet-0abc1234, subnet-0def5678] } }';

const SECRET_LIKE_NAME = /KEY|SECRET|TOKEN|PASSWORD/i;

let defaults: SynthesizedStack;
let variant: SynthesizedStack;
let bedrock: SynthesizedStack;

/** A build that failed: every use throws the synthesis error, so only the tests that need it fail. */
function failedBuild(error: unknown): SynthesizedStack {
  return new Proxy({} as SynthesizedStack, {
    get() {
      throw error;
    },
  });
}

function trySynthesize(yamlText: string): SynthesizedStack {
  try {
    return synthesize(yamlText);
  } catch (error) {
    return failedBuild(error);
  }
}

beforeAll(() => {
  defaults = synthesize('');
  variant = trySynthesize(VARIANT_YAML);
  bedrock = trySynthesize(BEDROCK_YAML);
}, SYNTH_TIMEOUT_MS);
afterAll(removeSyntheses);

/** Named builds for `it.each`, resolved once `beforeAll` has run. */
const build = {
  default: () => defaults,
  variant: () => variant,
  bedrock: () => bedrock,
};

// --- reading the template -------------------------------------------------

function resource(built: SynthesizedStack, id: string): CfnResource {
  const found = built.json.Resources[id];
  if (!found) throw new Error(`no resource ${id} in the template`);
  return found;
}

function dispatcher(built: SynthesizedStack): OrchestratorFunction {
  const fn = built.stack.workQueue.dispatcher;
  if (!fn) throw new Error('the stack has no dispatcher');
  return fn;
}

function dispatcherId(built: SynthesizedStack): string {
  return logicalId(dispatcher(built));
}

/** Logical ids of the Lambdas the orchestrator defines (not CDK's custom-resource handlers). */
function orchestratorFunctionIds(built: SynthesizedStack): string[] {
  const ids = built.stack.node
    .findAll()
    .filter((c): c is OrchestratorFunction => c instanceof OrchestratorFunction)
    .map((fn) => logicalId(fn));
  expect(ids.length).toBeGreaterThan(0);
  return ids;
}

function lambdaIds(built: SynthesizedStack): string[] {
  const ids = resourcesOfType(built.json, 'AWS::Lambda::Function').map(([id]) => id);
  expect(ids.length).toBeGreaterThan(0);
  return ids;
}

/** The two worker task definitions: the Claude workers (`ai`) and the steps without AI (`git`). */
type WorkerKind = 'ai' | 'git';

function taskDefinition(built: SynthesizedStack, kind: WorkerKind = 'ai'): CfnResource {
  const workers = built.stack.workers;
  return resource(built, logicalId(kind === 'ai' ? workers.taskDefinition : workers.gitTaskDefinition));
}

interface ContainerJson {
  Name: string;
  Image: unknown;
  Environment?: { Name: string; Value: unknown }[];
  Secrets?: { Name: string; ValueFrom: unknown }[];
  // biome-ignore lint/suspicious/noExplicitAny: CloudFormation templates are untyped JSON
  [key: string]: any;
}

function workerContainer(built: SynthesizedStack, kind: WorkerKind = 'ai'): ContainerJson {
  const containers = taskDefinition(built, kind).Properties.ContainerDefinitions;
  expect(containers).toHaveLength(1);
  return containers[0];
}

function secretNames(built: SynthesizedStack, kind: WorkerKind): string[] {
  return (workerContainer(built, kind).Secrets ?? []).map((s) => s.Name);
}

function taskRoleId(built: SynthesizedStack, kind: WorkerKind = 'ai'): string {
  return roleIdOfArn(taskDefinition(built, kind).Properties.TaskRoleArn);
}

function executionRoleId(built: SynthesizedStack, kind: WorkerKind): string {
  return roleIdOfArn(taskDefinition(built, kind).Properties.ExecutionRoleArn);
}

function dispatcherStatements(built: SynthesizedStack): PolicyStatementJson[] {
  const roleId = roleIdOfArn(resource(built, dispatcherId(built)).Properties.Role);
  return statementsOfRole(built.json, roleId).map(({ statement }) => statement);
}

function reconcilerStatements(built: SynthesizedStack): PolicyStatementJson[] {
  const roleId = roleIdOfArn(resource(built, logicalId(built.stack.events.reconciler)).Properties.Role);
  return statementsOfRole(built.json, roleId).map(({ statement }) => statement);
}

function apiHandlerStatements(built: SynthesizedStack): PolicyStatementJson[] {
  const roleId = roleIdOfArn(resource(built, logicalId(built.stack.api.handler)).Properties.Role);
  return statementsOfRole(built.json, roleId).map(({ statement }) => statement);
}

/** `Resource` as a list. */
function resourcesOf(statement: PolicyStatementJson): unknown[] {
  return ([] as unknown[]).concat(statement.Resource);
}

/** The ARN `bucket.arnForObjects(pattern)` renders to for the artifacts bucket. */
function artifactObjectsArn(built: SynthesizedStack, pattern: string): unknown {
  return {
    'Fn::Join': ['', [{ 'Fn::GetAtt': [logicalId(built.stack.state.bucket), 'Arn'] }, `/${pattern}`]],
  };
}

/** Every policy statement in the template, with the resource it lives in. */
function allStatements(built: SynthesizedStack): { source: string; statement: PolicyStatementJson }[] {
  return resourcesOfType(built.json, 'AWS::IAM::Role').flatMap(([roleId]) =>
    statementsOfRole(built.json, roleId),
  );
}

function isTlsOnlyDeny(statement: PolicyStatementJson): boolean {
  return (
    statement.Effect === 'Deny' &&
    JSON.stringify((statement.Condition as { Bool?: unknown } | undefined)?.Bool) ===
      JSON.stringify({ 'aws:SecureTransport': 'false' })
  );
}

/** The logical id a `Ref` or `Fn::GetAtt` points at. */
function referencedId(ref: unknown): string | undefined {
  const r = (ref ?? {}) as { Ref?: string; 'Fn::GetAtt'?: [string, string] };
  return r.Ref ?? r['Fn::GetAtt']?.[0];
}

function isStackLogGroup(built: SynthesizedStack, ref: unknown): boolean {
  const id = referencedId(ref);
  return id !== undefined && built.json.Resources[id]?.Type === 'AWS::Logs::LogGroup';
}

/** `/api/v1/jobs/{id}` for an `AWS::ApiGateway::Resource`, walking `ParentId` up to the root. */
function resourcePath(built: SynthesizedStack, ref: unknown): string {
  const id = (ref as { Ref?: string }).Ref;
  if (id === undefined) return ''; // Fn::GetAtt [RestApi, RootResourceId]
  const res = resource(built, id);
  return `${resourcePath(built, res.Properties.ParentId)}/${res.Properties.PathPart}`;
}

function apiMethods(built: SynthesizedStack) {
  const methods = resourcesOfType(built.json, 'AWS::ApiGateway::Method').map(([id, m]) => ({
    id,
    httpMethod: m.Properties.HttpMethod as string,
    path: resourcePath(built, m.Properties.ResourceId) || '/',
    props: m.Properties,
  }));
  expect(methods.length).toBeGreaterThan(0);
  return methods;
}

// --- S3 -------------------------------------------------------------------

describe('artifacts bucket', () => {
  const artifacts = () => resource(defaults, logicalId(defaults.stack.state.bucket)).Properties;
  const buckets = () => {
    const all = resourcesOfType(defaults.json, 'AWS::S3::Bucket');
    expect(all.length).toBeGreaterThan(0);
    return all;
  };

  it('every bucket blocks all public access', () => {
    for (const [id, bucket] of buckets()) {
      expect(bucket.Properties.PublicAccessBlockConfiguration, id).toEqual({
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      });
    }
  });

  it('every bucket policy denies requests without TLS', () => {
    for (const [id] of buckets()) {
      const policies = resourcesOfType(defaults.json, 'AWS::S3::BucketPolicy').filter(
        ([, p]) => p.Properties.Bucket.Ref === id,
      );
      const statements: PolicyStatementJson[] = policies.flatMap(
        ([, p]) => p.Properties.PolicyDocument.Statement,
      );
      expect(
        statements.some((s) => isTlsOnlyDeny(s) && actionsOf(s).includes('s3:*')),
        `TLS-only statement on ${id}`,
      ).toBe(true);
    }
  });

  it('every bucket is encrypted at rest', () => {
    for (const [id, bucket] of buckets()) {
      const rules = bucket.Properties.BucketEncryption?.ServerSideEncryptionConfiguration ?? [];
      expect(
        rules.map(
          (r: { ServerSideEncryptionByDefault: { SSEAlgorithm: string } }) =>
            r.ServerSideEncryptionByDefault.SSEAlgorithm,
        ),
        id,
      ).toEqual([expect.stringMatching(/^(AES256|aws:kms|aws:kms:dsse)$/)]);
    }
  });

  it('the artifacts bucket is versioned', () => {
    expect(artifacts().VersioningConfiguration).toEqual({ Status: 'Enabled' });
  });

  it('the artifacts bucket writes server access logs to the access-log bucket', () => {
    expect(artifacts().LoggingConfiguration).toMatchObject({
      DestinationBucketName: { Ref: logicalId(defaults.stack.state.accessLogsBucket) },
    });
  });

  it('job artifacts expire after artifact_retention_days (90 by default)', () => {
    expect(artifacts().LifecycleConfiguration.Rules).toContainEqual({
      Prefix: JOBS_PREFIX,
      ExpirationInDays: 90,
      Status: 'Enabled',
    });
  });

  it('job artifacts never expire with artifact_retention_days: 0', () => {
    const rules: { Prefix?: string; ExpirationInDays?: number }[] = resource(
      variant,
      logicalId(variant.stack.state.bucket),
    ).Properties.LifecycleConfiguration.Rules;
    // A rule reaches jobs/ when it has no prefix or a prefix of jobs/ (not sources/).
    const reachingJobs = rules.filter(
      (r) => r.ExpirationInDays !== undefined && JOBS_PREFIX.startsWith(r.Prefix ?? ''),
    );
    expect(reachingJobs).toEqual([]);
  });

  it.each(['default', 'variant'] as const)(
    'uploaded bundles under sources/ expire after 1 day, old versions too (%s)',
    (name) => {
      const built = build[name]();
      expect(
        resource(built, logicalId(built.stack.state.bucket)).Properties.LifecycleConfiguration.Rules,
      ).toContainEqual({
        Prefix: SOURCES_PREFIX,
        ExpirationInDays: 1,
        NoncurrentVersionExpiration: { NoncurrentDays: 1 },
        Status: 'Enabled',
      });
    },
  );

  it.each([
    ['default', 'Retain'],
    ['variant', 'Delete'],
  ] as const)(
    'the artifacts bucket removal policy follows deploy.removal_policy (%s: %s)',
    (name, policy) => {
      const built = build[name]();
      expect(resource(built, logicalId(built.stack.state.bucket))).toMatchObject({
        DeletionPolicy: policy,
        UpdateReplacePolicy: policy,
      });
    },
  );
});

// --- DynamoDB -------------------------------------------------------------

describe('table', () => {
  it('bills on demand', () => {
    defaults.template.hasResourceProperties('AWS::DynamoDB::GlobalTable', { BillingMode: 'PAY_PER_REQUEST' });
  });

  it('has point-in-time recovery on every replica', () => {
    const replicas = resource(defaults, logicalId(defaults.stack.state.table)).Properties.Replicas;
    expect(replicas.length).toBeGreaterThan(0);
    for (const replica of replicas) {
      expect(replica.PointInTimeRecoverySpecification, replica.Region).toEqual({
        PointInTimeRecoveryEnabled: true,
      });
    }
  });

  it('is encrypted with server-side encryption', () => {
    defaults.template.hasResourceProperties('AWS::DynamoDB::GlobalTable', {
      SSESpecification: Match.objectLike({ SSEEnabled: true }),
    });
  });

  it('has the keys and the listing index the code queries', () => {
    defaults.template.hasResourceProperties('AWS::DynamoDB::GlobalTable', {
      KeySchema: [
        { AttributeName: PARTITION_KEY, KeyType: 'HASH' },
        { AttributeName: SORT_KEY, KeyType: 'RANGE' },
      ],
      GlobalSecondaryIndexes: [
        Match.objectLike({
          IndexName: LISTING_INDEX,
          KeySchema: [
            { AttributeName: LISTING_INDEX_PARTITION_KEY, KeyType: 'HASH' },
            { AttributeName: LISTING_INDEX_SORT_KEY, KeyType: 'RANGE' },
          ],
          Projection: { ProjectionType: 'ALL' },
        }),
      ],
    });
  });

  it('expires items by the TTL attribute the event store writes', () => {
    defaults.template.hasResourceProperties('AWS::DynamoDB::GlobalTable', {
      TimeToLiveSpecification: { AttributeName: TTL_ATTRIBUTE, Enabled: true },
    });
  });

  it('is retained when the stack is deleted, by default', () => {
    defaults.template.hasResource('AWS::DynamoDB::GlobalTable', {
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
  });

  it('has deletion protection when retained', () => {
    defaults.template.hasResourceProperties('AWS::DynamoDB::GlobalTable', {
      Replicas: [Match.objectLike({ DeletionProtectionEnabled: true })],
    });
  });

  it('is deleted with the stack with deploy.removal_policy: destroy', () => {
    variant.template.hasResource('AWS::DynamoDB::GlobalTable', {
      DeletionPolicy: 'Delete',
      UpdateReplacePolicy: 'Delete',
    });
  });
});

// --- SQS ------------------------------------------------------------------

describe('work queue', () => {
  const queueIds = (built: SynthesizedStack) => ({
    queue: logicalId(built.stack.workQueue.queue),
    dlq: logicalId(built.stack.workQueue.deadLetterQueue),
  });

  it.each(['queue', 'dlq'] as const)('the %s is encrypted at rest', (which) => {
    const props = resource(defaults, queueIds(defaults)[which]).Properties;
    expect(props.SqsManagedSseEnabled === true || props.KmsMasterKeyId !== undefined).toBe(true);
  });

  it.each(['queue', 'dlq'] as const)('the %s policy denies requests without TLS', (which) => {
    const id = queueIds(defaults)[which];
    const statements: PolicyStatementJson[] = resourcesOfType(defaults.json, 'AWS::SQS::QueuePolicy')
      .filter(([, p]) => p.Properties.Queues.some((q: { Ref?: string }) => q.Ref === id))
      .flatMap(([, p]) => p.Properties.PolicyDocument.Statement);
    expect(statements.some((s) => isTlsOnlyDeny(s) && actionsOf(s).includes('sqs:*'))).toBe(true);
  });

  it.each([
    ['default', 5],
    ['variant', 3],
  ] as const)(
    'redrives to the dead-letter queue after aws.max_receive_count deliveries (%s: %d)',
    (name, count) => {
      const built = build[name]();
      const { queue, dlq } = queueIds(built);
      expect(resource(built, queue).Properties.RedrivePolicy).toEqual({
        deadLetterTargetArn: { 'Fn::GetAtt': [dlq, 'Arn'] },
        maxReceiveCount: count,
      });
    },
  );

  it.each(['default', 'variant'] as const)(
    'hides a message for at least 6x the dispatcher timeout (%s)',
    (name) => {
      const built = build[name]();
      const visibility = Number(resource(built, queueIds(built).queue).Properties.VisibilityTimeout);
      const timeout = Number(resource(built, dispatcherId(built)).Properties.Timeout);
      expect(timeout).toBeGreaterThan(0);
      expect(visibility).toBeGreaterThanOrEqual(6 * timeout);
    },
  );
});

describe('dispatcher event source mapping', () => {
  const mapping = (built: SynthesizedStack) => {
    const found = resourcesOfType(built.json, 'AWS::Lambda::EventSourceMapping').filter(
      ([, m]) => m.Properties.FunctionName.Ref === dispatcherId(built),
    );
    expect(found).toHaveLength(1);
    return (found[0] as [string, CfnResource])[1].Properties;
  };

  it('reads the work queue', () => {
    expect(mapping(defaults).EventSourceArn).toEqual({
      'Fn::GetAtt': [logicalId(defaults.stack.workQueue.queue), 'Arn'],
    });
  });

  it('reports partial batch failures', () => {
    expect(mapping(defaults).FunctionResponseTypes).toEqual(['ReportBatchItemFailures']);
  });

  it.each([
    ['default', 5],
    ['variant', 7],
  ] as const)('caps concurrency at deploy.dispatcher.max_concurrency (%s: %d)', (name, max) => {
    expect(mapping(build[name]()).ScalingConfig).toEqual({ MaximumConcurrency: max });
  });

  it.each([
    ['default', 10],
    ['variant', 4],
  ] as const)('takes deploy.dispatcher.batch_size messages at a time (%s: %d)', (name, size) => {
    expect(mapping(build[name]()).BatchSize).toBe(size);
  });

  it.each(['default', 'variant'] as const)(
    "paces RunTask so all dispatchers together stay under ECS's 20 calls/s (%s)",
    (name) => {
      const built = build[name]();
      const rate = Number(
        resource(built, dispatcherId(built)).Properties.Environment.Variables.RUN_TASK_RATE,
      );
      const concurrency = mapping(built).ScalingConfig.MaximumConcurrency;
      expect(rate).toBeGreaterThan(0);
      expect(rate * concurrency).toBeLessThan(20);
    },
  );
});

describe('dispatcher launches', () => {
  const env = (built: SynthesizedStack) =>
    resource(built, dispatcherId(built)).Properties.Environment.Variables;

  it('gets the Claude task definition as TASK_DEFINITION_ARN', () => {
    expect(env(defaults).TASK_DEFINITION_ARN).toEqual({
      Ref: logicalId(defaults.stack.workers.taskDefinition),
    });
  });

  it('gets the git task definition as GIT_TASK_DEFINITION_ARN', () => {
    expect(env(defaults).GIT_TASK_DEFINITION_ARN).toEqual({
      Ref: logicalId(defaults.stack.workers.gitTaskDefinition),
    });
  });

  it('may stop workers of its cluster (a cancelled job) but not describe them: only the reconciler does', () => {
    const actions = dispatcherStatements(defaults).flatMap((s) => actionsOf(s));
    expect(actions).toContain('ecs:StopTask');
    expect(actions).not.toContain('ecs:DescribeTasks');
  });

  it('may run exactly the two worker task definitions, only in the workers cluster', () => {
    const runTask = dispatcherStatements(defaults).filter((s) => actionsOf(s).includes('ecs:RunTask'));
    expect(runTask).toHaveLength(1);
    const [statement] = runTask as [PolicyStatementJson];
    expect(actionsOf(statement)).toEqual(['ecs:RunTask']);
    expect(resourcesOf(statement)).toHaveLength(2);
    expect(resourcesOf(statement)).toEqual(
      expect.arrayContaining([
        { Ref: logicalId(defaults.stack.workers.taskDefinition) },
        { Ref: logicalId(defaults.stack.workers.gitTaskDefinition) },
      ]),
    );
    expect(statement.Condition).toEqual({
      ArnEquals: { 'ecs:cluster': { 'Fn::GetAtt': [logicalId(defaults.stack.workers.cluster), 'Arn'] } },
    });
  });
});

// --- secrets --------------------------------------------------------------

describe('secrets', () => {
  it.each(['default', 'variant', 'bedrock'] as const)(
    'no Lambda environment variable is named like a secret (%s)',
    (name) => {
      const built = build[name]();
      const offending = resourcesOfType(built.json, 'AWS::Lambda::Function').flatMap(([id, fn]) =>
        Object.keys(fn.Properties.Environment?.Variables ?? {})
          .filter((key) => SECRET_LIKE_NAME.test(key))
          .map((key) => `${id}.${key}`),
      );
      expect(offending).toEqual([]);
    },
  );

  it.each(['default', 'variant', 'bedrock'] as const)(
    'no task definition environment variable is named like a secret (%s)',
    (name) => {
      const built = build[name]();
      const definitions = resourcesOfType(built.json, 'AWS::ECS::TaskDefinition');
      expect(definitions.length).toBeGreaterThan(0);
      const offending = definitions.flatMap(([id, td]) =>
        td.Properties.ContainerDefinitions.flatMap((c: { Name: string; Environment?: { Name: string }[] }) =>
          (c.Environment ?? [])
            .filter((e) => SECRET_LIKE_NAME.test(e.Name))
            .map((e) => `${id}.${c.Name}.${e.Name}`),
        ),
      );
      expect(offending).toEqual([]);
    },
  );

  it.each(['default', 'variant', 'bedrock'] as const)(
    'no worker task definition carries a model credential or the Bedrock switch (%s)',
    (name) => {
      const built = build[name]();
      for (const kind of ['ai', 'git'] as const) {
        const container = workerContainer(built, kind);
        expect(secretNames(built, kind).filter((n) => /ANTHROPIC|CLAUDE|BEDROCK/i.test(n))).toEqual([]);
        expect(
          (container.Environment ?? [])
            .map((e) => e.Name)
            .filter((n) => /ANTHROPIC|CLAUDE_CODE_USE|BEDROCK/.test(n)),
        ).toEqual([]);
        const modelActions = statementsOfRole(built.json, taskRoleId(built, kind))
          .flatMap(({ statement }) => actionsOf(statement))
          .filter((a) => /^(bedrock|secretsmanager):|^\*$/i.test(a));
        expect(modelActions, `${kind} task role`).toEqual([]);
      }
    },
  );

  it('the Anthropic key is readable by the model gateway alone', () => {
    const secretId = logicalId(defaults.stack.gateway.anthropicSecret as never);
    expect(resource(defaults, secretId).Type).toBe('AWS::SecretsManager::Secret');
    const readers = resourcesOfType(defaults.json, 'AWS::IAM::Role')
      .filter(([roleId]) =>
        statementsOfRole(defaults.json, roleId).some(
          ({ statement }) =>
            statement.Effect === 'Allow' &&
            actionsOf(statement).some((a) => a.startsWith('secretsmanager:') || a === '*') &&
            JSON.stringify(statement.Resource).includes(secretId),
        ),
      )
      .map(([roleId]) => roleId);
    expect(readers).toEqual([
      roleIdOfArn(resource(defaults, logicalId(defaults.stack.gateway.handler)).Properties.Role),
    ]);
  });

  it('with Bedrock, only the gateway may invoke models, and only the configured ones', () => {
    const invokers = resourcesOfType(bedrock.json, 'AWS::IAM::Role').flatMap(([roleId]) =>
      statementsOfRole(bedrock.json, roleId)
        .filter(({ statement }) => actionsOf(statement).some((a) => /^bedrock:|^\*$/.test(a)))
        .map(({ statement }) => ({ roleId, statement })),
    );
    const gatewayRole = roleIdOfArn(
      resource(bedrock, logicalId(bedrock.stack.gateway.handler)).Properties.Role,
    );
    expect(new Set(invokers.map((i) => i.roleId))).toEqual(new Set([gatewayRole]));
    const actions = invokers.flatMap((i) => actionsOf(i.statement));
    expect(new Set(actions)).toEqual(
      new Set(['bedrock:InvokeModel', 'bedrock:InvokeModelWithResponseStream']),
    );
    const resources = JSON.stringify(invokers.map((i) => i.statement.Resource));
    // The default map: two global inference profiles, each with its one foundation model.
    for (const model of ['claude-sonnet-4-5-20250929-v1:0', 'claude-haiku-4-5-20251001-v1:0']) {
      expect(resources).toContain(`inference-profile/global.anthropic.${model}`);
      expect(resources).toContain(`foundation-model/anthropic.${model}`);
    }
    expect(resources).not.toMatch(/foundation-model\/\*|inference-profile\/\*|"\*"/);
  });

  it(
    'with Bedrock, a configured model map is exactly what the gateway may invoke',
    () => {
      const built = synthesize(
        "orchestrator: { model: claude-x }\ndeploy: { anthropic: { mode: bedrock, bedrock_region: eu-west-1, bedrock_models: { claude-x: 'anthropic.claude-x-v1:0' } } }",
      );
      const gatewayRole = roleIdOfArn(
        resource(built, logicalId(built.stack.gateway.handler)).Properties.Role,
      );
      const statements = statementsOfRole(built.json, gatewayRole).filter(({ statement }) =>
        actionsOf(statement).some((a) => a.startsWith('bedrock:')),
      );
      expect(statements).toHaveLength(1);
      expect(JSON.stringify(statements[0]?.statement.Resource)).toContain(
        ':bedrock:eu-west-1::foundation-model/anthropic.claude-x-v1:0',
      );
      expect([].concat(statements[0]?.statement.Resource as never)).toHaveLength(1);
    },
    SYNTH_TIMEOUT_MS,
  );

  it('the model gateway streams its responses for up to 15 minutes, without an API Gateway authorizer', () => {
    const gatewayFn = logicalId(defaults.stack.gateway.handler);
    const methods = resourcesOfType(defaults.json, 'AWS::ApiGateway::Method').filter(([, m]) =>
      JSON.stringify(m.Properties.Integration?.Uri ?? '').includes(gatewayFn),
    );
    expect(methods.length).toBe(2);
    for (const [, m] of methods) {
      expect(m.Properties.Integration.ResponseTransferMode).toBe('STREAM');
      expect(JSON.stringify(m.Properties.Integration.Uri)).toContain('response-streaming-invocations');
      expect(m.Properties.Integration.TimeoutInMillis).toBe(900_000);
      expect(m.Properties.AuthorizationType).toBe('NONE');
    }
    expect(resource(defaults, gatewayFn).Properties.Timeout).toBe(900);
  });

  it('GET /jobs/{id}/events streams (server-sent events) from a function of its own that can only read', () => {
    const streamFn = logicalId(defaults.stack.api.streamHandler);
    const events = apiMethods(defaults).find((m) => m.path === '/api/v1/jobs/{id}/events');
    expect(JSON.stringify(events?.props.Integration?.Uri)).toContain(streamFn);
    expect(events?.props.Integration).toMatchObject({
      ResponseTransferMode: 'STREAM',
      TimeoutInMillis: 900_000,
    });
    expect(JSON.stringify(events?.props.Integration?.Uri)).toContain('response-streaming-invocations');
    // The caller authorizer guards it like every caller route.
    expect(events?.props.AuthorizerId).toEqual({ Ref: logicalId(defaults.stack.api.authorizer) });
    const roleId = roleIdOfArn(resource(defaults, streamFn).Properties.Role);
    const actions = statementsOfRole(defaults.json, roleId)
      .map(({ statement }) => statement)
      .filter((st) => st.Effect === 'Allow')
      .flatMap(actionsOf)
      .filter((a) => !a.startsWith('logs:') && !a.startsWith('xray:'));
    expect([...new Set(actions)].sort()).toEqual(['dynamodb:GetItem', 'dynamodb:Query']);
    // No other route goes to it.
    const others = apiMethods(defaults).filter(
      (m) =>
        m.path !== '/api/v1/jobs/{id}/events' && JSON.stringify(m.props.Integration?.Uri).includes(streamFn),
    );
    expect(others).toEqual([]);
  });

  it('the API function uses the table as its code does, batched reads included (a worker request reads its task with its job)', () => {
    const apiFn = logicalId(defaults.stack.api.handler);
    const roleId = roleIdOfArn(resource(defaults, apiFn).Properties.Role);
    const actions = statementsOfRole(defaults.json, roleId)
      .map(({ statement }) => statement)
      .filter((st) => st.Effect === 'Allow')
      .flatMap(actionsOf)
      .filter((a) => a.startsWith('dynamodb:'));
    expect([...new Set(actions)].sort()).toEqual(
      [
        'dynamodb:BatchGetItem',
        'dynamodb:BatchWriteItem',
        'dynamodb:GetItem',
        'dynamodb:PutItem',
        'dynamodb:Query',
        'dynamodb:UpdateItem',
      ].sort(),
    );
  });

  it('with deploy.git.token_secret_name, the git container gets GIT_TOKEN from that secret', () => {
    const token = (workerContainer(variant, 'git').Secrets ?? []).find((s) => s.Name === 'GIT_TOKEN');
    expect(token, 'GIT_TOKEN under Secrets').toBeDefined();
    expect(JSON.stringify(token?.ValueFrom)).toContain(`:secret:${GIT_TOKEN_SECRET}`);
  });

  it('with deploy.git.token_secret_name, GIT_TOKEN is the only secret of the git container', () => {
    expect(secretNames(variant, 'git')).toEqual(['GIT_TOKEN']);
  });

  it('without deploy.git.token_secret_name, the git container gets no secrets', () => {
    expect(secretNames(defaults, 'git')).toEqual([]);
  });

  it.each(['default', 'variant'] as const)(
    'the Claude worker has no secrets at all, so never GIT_TOKEN (%s)',
    (name) => {
      expect(secretNames(build[name](), 'ai')).toEqual([]);
    },
  );

  it('only the git execution role may read the repository token secret', () => {
    const readers = resourcesOfType(variant.json, 'AWS::IAM::Role')
      .filter(([roleId]) =>
        statementsOfRole(variant.json, roleId).some(
          ({ statement }) =>
            statement.Effect === 'Allow' &&
            actionsOf(statement).some((a) => a.startsWith('secretsmanager:') || a === '*') &&
            JSON.stringify(statement.Resource).includes(`:secret:${GIT_TOKEN_SECRET}`),
        ),
      )
      .map(([roleId]) => roleId);
    expect(readers).toEqual([executionRoleId(variant, 'git')]);
  });
});

// --- IAM ------------------------------------------------------------------

describe('IAM', () => {
  it.each([
    ['default', 'ai'],
    ['bedrock', 'ai'],
    ['default', 'git'],
    ['bedrock', 'git'],
    ['variant', 'git'],
  ] as const)('the %s %s worker task role has no DynamoDB, SQS or S3 actions and no "*"', (name, kind) => {
    const built = build[name]();
    const actions = statementsOfRole(built.json, taskRoleId(built, kind)).flatMap(({ statement }) =>
      actionsOf(statement),
    );
    expect(actions.filter((a) => /^(dynamodb|sqs|s3):/i.test(a) || a === '*')).toEqual([]);
  });

  it.each(['default', 'variant', 'bedrock'] as const)(
    'both task roles may only decrypt their sealed task token, with a task bound as encryption context (%s)',
    (name) => {
      const built = build[name]();
      const keyId = logicalId(built.stack.workers.tokenKey);
      for (const kind of ['ai', 'git'] as const) {
        const statements = statementsOfRole(built.json, taskRoleId(built, kind)).map(
          ({ statement }) => statement,
        );
        expect(statements, `${kind} task role`).toHaveLength(1);
        const [only] = statements;
        expect(actionsOf(only as PolicyStatementJson)).toEqual(['kms:Decrypt']);
        expect(JSON.stringify(only?.Resource)).toContain(keyId);
        expect(only?.Condition).toEqual({
          'ForAllValues:StringEquals': { 'kms:EncryptionContextKeys': ['fleet:task'] },
          Null: { 'kms:EncryptionContextKeys': 'false' },
        });
      }
    },
  );

  it('only the dispatcher may seal task tokens, and the key rotates', () => {
    const keyId = logicalId(defaults.stack.workers.tokenKey);
    expect(resource(defaults, keyId).Properties.EnableKeyRotation).toBe(true);
    const encrypters = resourcesOfType(defaults.json, 'AWS::IAM::Role')
      .filter(([roleId]) =>
        statementsOfRole(defaults.json, roleId).some(
          ({ statement }) =>
            actionsOf(statement).some((a) => a === 'kms:Encrypt' || a === 'kms:*' || a === '*') &&
            JSON.stringify(statement.Resource).includes(keyId),
        ),
      )
      .map(([roleId]) => roleId);
    expect(encrypters).toEqual([roleIdOfArn(resource(defaults, dispatcherId(defaults)).Properties.Role)]);
    const env = resource(defaults, dispatcherId(defaults)).Properties.Environment.Variables;
    expect(JSON.stringify(env.TASK_SEAL_KMS_ARN)).toContain(keyId);
  });

  it('iam:PassRole is only in the dispatcher policy, for exactly the two task and two execution roles', () => {
    const passRole = allStatements(defaults).filter(({ statement }) =>
      actionsOf(statement).some((a) => a === 'iam:PassRole' || a === 'iam:*' || a === '*'),
    );
    const dispatcherRole = roleIdOfArn(resource(defaults, dispatcherId(defaults)).Properties.Role);
    const ai = taskDefinition(defaults, 'ai').Properties;
    const git = taskDefinition(defaults, 'git').Properties;
    const roles = [ai.TaskRoleArn, ai.ExecutionRoleArn, git.TaskRoleArn, git.ExecutionRoleArn];
    expect(passRole.length).toBeGreaterThan(0);
    const dispatcherPolicies = statementsOfRole(defaults.json, dispatcherRole).map((s) => s.source);
    const passed: unknown[] = [];
    for (const { source, statement } of passRole) {
      expect(dispatcherPolicies, `iam:PassRole granted by ${source}`).toContain(source);
      expect(statement.Condition, `iam:PassRole granted by ${source}`).toEqual({
        StringEquals: { 'iam:PassedToService': 'ecs-tasks.amazonaws.com' },
      });
      passed.push(...resourcesOf(statement));
    }
    expect(passed).toHaveLength(roles.length);
    expect(passed).toEqual(expect.arrayContaining(roles));
  });

  it("the orchestrator's Lambda roles do not use the AWSLambdaBasicExecutionRole managed policy", () => {
    for (const id of orchestratorFunctionIds(defaults)) {
      const role = resource(defaults, roleIdOfArn(resource(defaults, id).Properties.Role));
      expect(JSON.stringify(role.Properties.ManagedPolicyArns ?? []), id).not.toContain(
        'AWSLambdaBasicExecutionRole',
      );
    }
  });

  it('no Lambda role has a wildcard DynamoDB or S3 action', () => {
    for (const id of lambdaIds(defaults)) {
      const roleId = roleIdOfArn(resource(defaults, id).Properties.Role);
      const actions = statementsOfRole(defaults.json, roleId).flatMap(({ statement }) =>
        actionsOf(statement),
      );
      expect(
        actions.filter((a) => a === '*' || (/^(dynamodb|s3):/i.test(a) && a.includes('*'))),
        id,
      ).toEqual([]);
    }
  });

  it('the authorizer may only read items (dynamodb:GetItem)', () => {
    const fn = defaults.stack.api.authorizerFunction;
    const roleId = roleIdOfArn(resource(defaults, logicalId(fn)).Properties.Role);
    const dataActions = statementsOfRole(defaults.json, roleId)
      .flatMap(({ statement }) => actionsOf(statement))
      .filter((a) => !/^logs:(CreateLogStream|PutLogEvents)$/.test(a));
    expect(dataActions).toEqual(['dynamodb:GetItem']);
  });

  it('there is one authorizer, for the caller routes', () => {
    expect(resourcesOfType(defaults.json, 'AWS::ApiGateway::Authorizer')).toHaveLength(1);
  });
});

// --- logs -----------------------------------------------------------------

describe('log retention', () => {
  it.each([
    ['default', 30],
    ['variant', 14],
  ] as const)('every log group keeps logs for deploy.log_retention_days (%s: %d)', (name, days) => {
    const groups = resourcesOfType(build[name]().json, 'AWS::Logs::LogGroup');
    expect(groups.length).toBeGreaterThan(0);
    for (const [id, group] of groups) expect(group.Properties?.RetentionInDays, id).toBe(days);
  });

  it('every orchestrator Lambda logs to its own log group of the stack', () => {
    for (const id of orchestratorFunctionIds(defaults)) {
      const group = resource(defaults, id).Properties.LoggingConfig?.LogGroup;
      expect(isStackLogGroup(defaults, group), `${id} LoggingConfig.LogGroup`).toBe(true);
    }
  });

  // Infra gap: CDK's custom-resource handlers (e.g. Custom::VpcRestrictDefaultSG) log to an
  // implicit /aws/lambda/<name> group that never expires.
  it('every Lambda, including CDK custom-resource handlers, logs to a log group with retention', () => {
    const withoutRetention = lambdaIds(defaults).filter((id) => {
      if (isStackLogGroup(defaults, resource(defaults, id).Properties.LoggingConfig?.LogGroup)) return false;
      // Or a group named /aws/lambda/<this function>, created by the stack.
      return !resourcesOfType(defaults.json, 'AWS::Logs::LogGroup').some(([, g]) =>
        JSON.stringify(g.Properties?.LogGroupName ?? '').includes(JSON.stringify({ Ref: id })),
      );
    });
    expect(withoutRetention).toEqual([]);
  });

  it('the worker container logs with the awslogs driver to a log group of the stack', () => {
    const logging = workerContainer(defaults).LogConfiguration;
    expect(logging.LogDriver).toBe('awslogs');
    expect(isStackLogGroup(defaults, logging.Options['awslogs-group'])).toBe(true);
  });

  it('the git container logs to the same log group under its own stream prefix (git)', () => {
    const worker = workerContainer(defaults, 'ai').LogConfiguration;
    const git = workerContainer(defaults, 'git').LogConfiguration;
    expect(git.LogDriver).toBe('awslogs');
    expect(git.Options['awslogs-group']).toEqual(worker.Options['awslogs-group']);
    expect(git.Options['awslogs-stream-prefix']).toBe('git');
    expect(worker.Options['awslogs-stream-prefix']).not.toBe('git');
  });

  it('the API stage writes access logs to a log group of the stack', () => {
    const stages = resourcesOfType(defaults.json, 'AWS::ApiGateway::Stage');
    expect(stages.length).toBeGreaterThan(0);
    for (const [id, stage] of stages) {
      expect(isStackLogGroup(defaults, stage.Properties.AccessLogSetting?.DestinationArn), id).toBe(true);
    }
  });
});

// --- API Gateway ----------------------------------------------------------

describe('API', () => {
  /** The model gateway's two methods check the task token in the function (see the gateway test above). */
  const isGateway = (m: { path: string }) => m.path === '/gateway' || m.path.startsWith('/gateway/');

  it('every caller route needs the custom authorizer', () => {
    const callerPaths = new Set(
      ROUTES.filter((r) => r.auth === 'caller').map((r) => `${r.method} ${r.resource}`),
    );
    const methods = apiMethods(defaults).filter((m) => callerPaths.has(`${m.httpMethod} ${m.path}`));
    expect(apiMethods(defaults).filter(isGateway)).toHaveLength(2);
    expect(methods.length).toBe(callerPaths.size);
    for (const method of methods) {
      expect(method.props, `${method.httpMethod} ${method.path}`).toMatchObject({
        AuthorizationType: 'CUSTOM',
        AuthorizerId: { Ref: expect.any(String) },
      });
    }
  });

  it('has exactly the routes of ROUTES, plus the model gateway', () => {
    const actual = apiMethods(defaults)
      .filter((m) => !isGateway(m))
      .map((m) => `${m.httpMethod} ${m.path}`)
      .sort();
    expect(actual).toEqual(ROUTES.map((r) => `${r.method} ${r.resource}`).sort());
  });

  it.each(ROUTES.map((r) => [r.auth, r.method, r.resource] as const))(
    'the %s authorizer guards %s %s',
    (auth, httpMethod, path) => {
      const method = apiMethods(defaults).find((m) => m.httpMethod === httpMethod && m.path === path);
      if (auth === 'public') {
        // Only health and the OpenAPI document answer without credentials.
        expect(path).toMatch(/^\/api\/v1\/(health|openapi\.json)$/);
        expect(method?.props.AuthorizationType).toBe('NONE');
        expect(method?.props.AuthorizerId).toBeUndefined();
        return;
      }
      if (auth === 'worker') {
        // The handler checks the task token with its one read of the task (test/e2e/untrusted-worker.test.ts).
        expect(path).toMatch(/^\/api\/v1\/jobs\/\{id\}\/tasks\/\{taskNo\}\//);
        expect(method?.props.AuthorizationType).toBe('NONE');
        return;
      }
      const authorizerId = logicalId(defaults.stack.api.authorizer);
      expect(method?.props.AuthorizerId).toEqual({ Ref: authorizerId });
    },
  );

  it('the caller authorizer never caches, so a revoked key stops working at once', () => {
    const caller = resource(defaults, logicalId(defaults.stack.api.authorizer));
    expect(caller.Properties.AuthorizerResultTtlInSeconds).toBe(0);
  });

  it.each([
    ['default', 20, 40],
    ['variant', 7, 9],
  ] as const)('the stage is throttled from deploy.api (%s: %d/s, burst %d)', (name, rate, burst) => {
    build[name]().template.hasResourceProperties('AWS::ApiGateway::Stage', {
      MethodSettings: Match.arrayWith([
        Match.objectLike({
          HttpMethod: '*',
          ResourcePath: '/*',
          ThrottlingRateLimit: rate,
          ThrottlingBurstLimit: burst,
        }),
      ]),
    });
  });

  it('the API role may put and get objects under sources/ (the upload URLs it signs, the copy at submit)', () => {
    const sources = artifactObjectsArn(defaults, `${SOURCES_PREFIX}*`);
    const actions = apiHandlerStatements(defaults)
      .filter(
        (s) =>
          s.Effect === 'Allow' && resourcesOf(s).some((r) => JSON.stringify(r) === JSON.stringify(sources)),
      )
      .flatMap(actionsOf);
    expect(actions.sort()).toEqual(['s3:GetObject', 's3:PutObject']);
  });

  it('the API role may not list sources/', () => {
    const listing = apiHandlerStatements(defaults).filter((s) => actionsOf(s).includes('s3:ListBucket'));
    expect(listing.length).toBeGreaterThan(0);
    for (const s of listing) expect(JSON.stringify(s.Condition)).not.toContain(SOURCES_PREFIX);
  });

  it('POST /api/v1/sources validates its body against the createSource model (size_bytes only)', () => {
    const post = apiMethods(defaults).find((m) => m.httpMethod === 'POST' && m.path === '/api/v1/sources');
    const modelId = post?.props.RequestModels?.['application/json']?.Ref;
    expect(modelId, 'request model of POST /api/v1/sources').toBeDefined();
    const model = resource(defaults, modelId).Properties;
    expect(model.Name).toBe('createSourceBody');
    expect(model.Schema).toMatchObject({
      type: 'object',
      required: ['size_bytes'],
      additionalProperties: false,
      properties: { size_bytes: { type: 'integer', minimum: 1 } },
    });
    expect(Object.keys(model.Schema.properties)).toEqual(['size_bytes']);
  });

  it('every POST method with a body validates it against a model', () => {
    // Cancel takes no body.
    const posts = apiMethods(defaults).filter((m) => m.httpMethod === 'POST' && !m.path.endsWith('/cancel'));
    expect(posts.length).toBeGreaterThan(0);
    for (const post of posts) {
      const validatorId = post.props.RequestValidatorId?.Ref;
      expect(validatorId, post.path).toBeDefined();
      expect(resource(defaults, validatorId).Properties.ValidateRequestBody, post.path).toBe(true);
      const model = post.props.RequestModels?.['application/json']?.Ref;
      expect(resource(defaults, model ?? 'missing').Type, post.path).toBe('AWS::ApiGateway::Model');
    }
  });
});

// --- ECS ------------------------------------------------------------------

describe('workers', () => {
  it('the cluster has Container Insights', () => {
    expect(
      resource(defaults, logicalId(defaults.stack.workers.cluster)).Properties.ClusterSettings,
    ).toContainEqual({
      Name: 'containerInsights',
      Value: expect.stringMatching(/^(enabled|enhanced)$/),
    });
  });

  it.each([
    ['default', '1024', '4096', 'ARM64'],
    ['variant', '2048', '8192', 'X86_64'],
  ] as const)(
    'the task size and architecture of both task definitions come from deploy.worker (%s: %s CPU, %s MiB, %s)',
    (name, cpu, memory, arch) => {
      for (const kind of ['ai', 'git'] as const) {
        expect(taskDefinition(build[name](), kind).Properties, kind).toMatchObject({
          Cpu: cpu,
          Memory: memory,
          RuntimePlatform: { CpuArchitecture: arch, OperatingSystemFamily: 'LINUX' },
        });
      }
    },
  );

  it.each([
    ['default', 60],
    ['variant', 90],
  ] as const)('the container stop timeout is deploy.worker.stop_timeout_sec (%s: %d)', (name, seconds) => {
    expect(workerContainer(build[name]()).StopTimeout).toBe(seconds);
    expect(workerContainer(build[name](), 'git').StopTimeout).toBe(seconds);
  });

  it('the Claude worker container is told WORKER_ROLE=ai', () => {
    expect(workerContainer(defaults, 'ai').Environment).toContainEqual({ Name: 'WORKER_ROLE', Value: 'ai' });
  });

  it('the git task definition exists, its container told WORKER_ROLE=git', () => {
    expect(workerContainer(defaults, 'git').Environment).toContainEqual({
      Name: 'WORKER_ROLE',
      Value: 'git',
    });
  });

  it('the git task definition is a second one, with its own task and execution roles', () => {
    expect(logicalId(defaults.stack.workers.gitTaskDefinition)).not.toBe(
      logicalId(defaults.stack.workers.taskDefinition),
    );
    expect(taskRoleId(defaults, 'git')).not.toBe(taskRoleId(defaults, 'ai'));
    expect(executionRoleId(defaults, 'git')).not.toBe(executionRoleId(defaults, 'ai'));
  });

  it('both containers are named worker (WORKER_CONTAINER_NAME) and run the same image', () => {
    const ai = workerContainer(defaults, 'ai');
    const git = workerContainer(defaults, 'git');
    expect([ai.Name, git.Name]).toEqual([WORKER_CONTAINER_NAME, WORKER_CONTAINER_NAME]);
    expect(git.Image).toEqual(ai.Image);
  });

  it('the git container calls the same API as the Claude worker', () => {
    const apiUrl = (kind: WorkerKind) =>
      workerContainer(defaults, kind).Environment?.find((e) => e.Name === 'API_URL');
    expect(apiUrl('git')).toBeDefined();
    expect(apiUrl('git')).toEqual(apiUrl('ai'));
  });

  it('the worker security group allows no inbound traffic', () => {
    const sgId = logicalId(defaults.stack.workers.securityGroup);
    expect(resource(defaults, sgId).Properties.SecurityGroupIngress ?? []).toEqual([]);
    const ingress = resourcesOfType(defaults.json, 'AWS::EC2::SecurityGroupIngress').filter(([, r]) =>
      JSON.stringify(r.Properties.GroupId).includes(`"${sgId}"`),
    );
    expect(ingress).toEqual([]);
  });

  it('the worker security group allows only HTTPS (TCP 443) out', () => {
    const sgId = logicalId(defaults.stack.workers.securityGroup);
    const egress = [
      ...(resource(defaults, sgId).Properties.SecurityGroupEgress ?? []),
      ...resourcesOfType(defaults.json, 'AWS::EC2::SecurityGroupEgress')
        .filter(([, r]) => JSON.stringify(r.Properties.GroupId).includes(`"${sgId}"`))
        .map(([, r]) => r.Properties),
    ];
    expect(egress.length).toBeGreaterThan(0);
    for (const rule of egress) expect(rule).toMatchObject({ IpProtocol: 'tcp', FromPort: 443, ToPort: 443 });
  });

  it.each([
    ['default', 'FARGATE_SPOT'],
    ['variant', 'FARGATE'],
  ] as const)('the dispatcher launches on deploy.worker.spot capacity (%s: %s)', (name, provider) => {
    const built = build[name]();
    expect(resource(built, dispatcherId(built)).Properties.Environment.Variables.CAPACITY_PROVIDER).toBe(
      provider,
    );
  });
});

// --- EventBridge ----------------------------------------------------------

describe('events', () => {
  const reconcilerArn = () => ({ 'Fn::GetAtt': [logicalId(defaults.stack.events.reconciler), 'Arn'] });

  it('stopped tasks of this cluster go to the reconciler', () => {
    defaults.template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.ecs'],
        'detail-type': ['ECS Task State Change'],
        detail: {
          clusterArn: [{ 'Fn::GetAtt': [logicalId(defaults.stack.workers.cluster), 'Arn'] }],
          lastStatus: ['STOPPED'],
        },
      },
      Targets: Match.arrayWith([Match.objectLike({ Arn: reconcilerArn() })]),
    });
  });

  it.each(['default', 'variant', 'bedrock'] as const)(
    'the reconciler may describe and stop tasks of the cluster, use the table as its code does and send run messages; no RunTask, no iam:PassRole, no S3 or KMS (%s)',
    (name) => {
      const built = build[name]();
      const statements = reconcilerStatements(built);
      const actions = statements
        .flatMap(actionsOf)
        .filter((a) => !/^logs:(CreateLogStream|PutLogEvents)$/.test(a));
      expect([...actions].sort()).toEqual(
        [
          ...RECONCILER_TABLE_ACTIONS.map((a) => `dynamodb:${a}`),
          ...RECONCILER_ECS_ACTIONS,
          'sqs:SendMessage',
          'sqs:GetQueueAttributes',
          'sqs:GetQueueUrl',
        ].sort(),
      );
      // Finishing a repository job whose last worker was lost creates its merge step (record-result.ts, startStep).
      expect(actions).toContain('dynamodb:PutItem');
      expect(actions.filter((a) => /^(iam|s3|kms):|^ecs:RunTask$|\*/.test(a))).toEqual([]);
      // DescribeTasks and StopTask only on tasks of the workers' cluster.
      const ecs = statements.filter((st) => actionsOf(st).some((a) => a.startsWith('ecs:')));
      expect(ecs).toHaveLength(1);
      const [only] = ecs;
      expect(resourcesOf(only as PolicyStatementJson)).toHaveLength(1);
      const arn = JSON.stringify(only?.Resource);
      expect(arn).toContain(':task/');
      expect(arn).toContain(logicalId(built.stack.workers.cluster));
    },
  );

  it('the reconciler gets no launch settings: only the cluster and the container name', () => {
    const env = resource(defaults, logicalId(defaults.stack.events.reconciler)).Properties.Environment
      .Variables;
    expect(env.CONTAINER_NAME).toBe(WORKER_CONTAINER_NAME);
    expect(JSON.stringify(env.CLUSTER_ARN)).toContain(logicalId(defaults.stack.workers.cluster));
    for (const launchOnly of [
      'TASK_DEFINITION_ARN',
      'GIT_TASK_DEFINITION_ARN',
      'SUBNET_IDS',
      'SECURITY_GROUP_IDS',
      'TASK_SEAL_KMS_ARN',
    ])
      expect(env, launchOnly).not.toHaveProperty(launchOnly);
  });

  it('a schedule runs the reconciler sweep', () => {
    defaults.template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: Match.stringLikeRegexp('^rate\\('),
      Targets: Match.arrayWith([Match.objectLike({ Arn: reconcilerArn() })]),
    });
  });
});

// --- monitoring -----------------------------------------------------------

describe('monitoring', () => {
  const topicAction = () => Match.arrayWith([{ Ref: logicalId(defaults.stack.monitoring.topic) }]);

  it('alarms on every message that reaches the dead-letter queue, to the SNS topic', () => {
    // Arrivals, not depth: the dead-letter consumer removes poison messages once it has failed their task.
    defaults.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'AWS/SQS',
      MetricName: 'NumberOfMessagesSent',
      Dimensions: [
        {
          Name: 'QueueName',
          Value: { 'Fn::GetAtt': [logicalId(defaults.stack.workQueue.deadLetterQueue), 'QueueName'] },
        },
      ],
      AlarmActions: topicAction(),
    });
  });

  it('the dead-letter queue has a consumer that reports partial batch failures', () => {
    defaults.template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: { 'Fn::GetAtt': [logicalId(defaults.stack.workQueue.deadLetterQueue), 'Arn'] },
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
  });

  it('alarms on dispatcher errors, to the SNS topic', () => {
    defaults.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'AWS/Lambda',
      MetricName: 'Errors',
      Dimensions: [{ Name: 'FunctionName', Value: { Ref: dispatcherId(defaults) } }],
      AlarmActions: topicAction(),
    });
  });

  /** The dimensions of JobsFinished as every function's EMF line carries them (test/unit/job-metrics.test.ts). */
  const jobsFinishedDimensions = (status: string) => [
    { Name: SERVICE_DIMENSION, Value: SERVICE_NAME },
    { Name: JOB_STATUS_DIMENSION, Value: status },
  ];

  it('alarms on failed jobs, from the JobsFinished EMF metric (status failed), to the SNS topic', () => {
    const alarms = resourcesOfType(defaults.json, 'AWS::CloudWatch::Alarm').filter(
      ([, a]) => a.Properties.MetricName === JOBS_FINISHED_METRIC,
    );
    expect(alarms).toHaveLength(1);
    defaults.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: METRIC_NAMESPACE,
      MetricName: JOBS_FINISHED_METRIC,
      Statistic: 'Sum',
      Threshold: 1,
      AlarmActions: topicAction(),
    });
    // Exactly these dimensions: CloudWatch matches an alarm to a metric only on the whole set.
    expect(alarms[0]?.[1].Properties.Dimensions).toEqual(jobsFinishedDimensions('failed'));
  });

  it("counts finished jobs from the functions' EMF lines, not from a log filter on one function", () => {
    expect(resourcesOfType(defaults.json, 'AWS::Logs::MetricFilter')).toEqual([]);
  });

  it('the dashboard graphs JobsFinished by status', () => {
    const [, dashboard] = resourcesOfType(defaults.json, 'AWS::CloudWatch::Dashboard')[0] ?? [];
    // The body is JSON joined with references (region, queue names); its text parts hold the metrics.
    const parts: unknown[] = dashboard?.Properties.DashboardBody['Fn::Join'][1] ?? [];
    const body = parts.filter((p) => typeof p === 'string').join('');
    for (const status of ['completed', 'partial', 'failed'])
      expect(body).toContain(
        JSON.stringify([
          METRIC_NAMESPACE,
          JOBS_FINISHED_METRIC,
          SERVICE_DIMENSION,
          SERVICE_NAME,
          JOB_STATUS_DIMENSION,
          status,
        ]).slice(0, -1),
      );
  });

  it('the alarm topic is KMS-encrypted', () => {
    const topic = resource(defaults, logicalId(defaults.stack.monitoring.topic));
    expect(topic.Properties.KmsMasterKeyId).toBeDefined();
  });

  // Infra gap: alias/aws/sns cannot be used by CloudWatch, so alarm notifications are dropped.
  it('CloudWatch may use the topic key (a customer managed key granting cloudwatch.amazonaws.com)', () => {
    const keyRef = resource(defaults, logicalId(defaults.stack.monitoring.topic)).Properties.KmsMasterKeyId;
    const keyId = referencedId(keyRef);
    expect(keyId && defaults.json.Resources[keyId]?.Type, `topic key ${JSON.stringify(keyRef)}`).toBe(
      'AWS::KMS::Key',
    );
    const statements: PolicyStatementJson[] = resource(defaults, keyId as string).Properties.KeyPolicy
      .Statement;
    const cloudWatch = statements.filter(
      (s) =>
        s.Effect === 'Allow' &&
        JSON.stringify((s as { Principal?: unknown }).Principal).includes('cloudwatch.amazonaws.com'),
    );
    expect(cloudWatch.flatMap(actionsOf)).toEqual(
      expect.arrayContaining(['kms:Decrypt', 'kms:GenerateDataKey*']),
    );
  });

  it('has one dashboard', () => {
    defaults.template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
  });
});

// --- outputs and Lambda defaults -------------------------------------------

describe('outputs', () => {
  it.each(['ApiUrl', 'BucketName', 'TableName', 'ClusterName', 'CreateApiKeyCommand'])(
    'outputs %s',
    (name) => {
      defaults.template.hasOutput(name, { Value: Match.anyValue() });
    },
  );
});

describe('Lambda defaults', () => {
  const latestNode = Object.values(Runtime)
    .filter(
      (r): r is Runtime =>
        r instanceof Runtime && r.family === RuntimeFamily.NODEJS && /^nodejs\d+\.x$/.test(r.name),
    )
    .map((r) => r.name)
    .sort((a, b) => Number.parseInt(b.slice(6), 10) - Number.parseInt(a.slice(6), 10))[0];

  it(`every Lambda runs on the latest Node.js runtime CDK knows (${latestNode})`, () => {
    for (const id of lambdaIds(defaults))
      expect(resource(defaults, id).Properties.Runtime, id).toBe(latestNode);
  });

  it('every orchestrator Lambda runs on ARM64', () => {
    for (const id of orchestratorFunctionIds(defaults)) {
      expect(resource(defaults, id).Properties.Architectures, id).toEqual(['arm64']);
    }
  });

  it('every orchestrator Lambda but the authorizer gets the one shared environment', () => {
    const authorizers = [logicalId(defaults.stack.api.authorizerFunction)];
    const variables = (id: string): Record<string, unknown> =>
      resource(defaults, id).Properties.Environment.Variables;
    const shared = variables(logicalId(defaults.stack.api.handler));
    expect(Object.keys(shared)).toEqual(
      expect.arrayContaining(['TABLE_NAME', 'QUEUE_URL', 'BUCKET_NAME', 'JOB_SETTINGS']),
    );
    // What the functions parse at cold start (runtime.ts).
    expect(SettingsJsonSchema.safeParse(shared.JOB_SETTINGS).error).toBeUndefined();
    const others = orchestratorFunctionIds(defaults).filter((id) => !authorizers.includes(id));
    expect(others.length).toBe(6);
    for (const id of others) {
      const own = variables(id);
      for (const name of ['TABLE_NAME', 'QUEUE_URL', 'BUCKET_NAME', 'JOB_SETTINGS'])
        expect(own[name], `${id} ${name}`).toEqual(shared[name]);
    }
  });
});

// --- imported VPC ---------------------------------------------------------

describe('imported VPC (deploy.vpc.vpc_id + subnet_ids)', () => {
  let imported: SynthesizedStack;
  beforeAll(() => {
    imported = synthesize(IMPORTED_VPC_YAML);
  }, SYNTH_TIMEOUT_MS);

  it('creates no VPC', () => {
    imported.template.resourceCountIs('AWS::EC2::VPC', 0);
  });

  it('the dispatcher starts workers in the given subnets', () => {
    expect(resource(imported, dispatcherId(imported)).Properties.Environment.Variables.SUBNET_IDS).toBe(
      'subnet-0abc1234,subnet-0def5678',
    );
  });

  it('the worker security group is in the given VPC', () => {
    expect(resource(imported, logicalId(imported.stack.workers.securityGroup)).Properties.VpcId).toBe(
      'vpc-0abc1234',
    );
  });
});
