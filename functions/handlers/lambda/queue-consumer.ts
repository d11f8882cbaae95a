/**
 * Lambda entry point: the work-queue consumer (dispatcher and aggregator),
 * launching Fargate workers. The ECS and KMS clients, and their packages, are
 * loaded by the first launch: aggregate and cancel messages never need them.
 */
import * as z from 'zod';
import { EcsLauncher } from '../../adapters/ecs-launcher.ts';
import { lazy } from '../../adapters/lazy.ts';
import { kmsTokenSealer } from '../../adapters/token-seal.ts';
import { RateLimiter } from '../../core/rate-limiter.ts';
import { aggregateJob } from '../../services/aggregate.ts';
import { createQueueConsumer } from '../queue-consumer.ts';
import { depsFromEnv, readEnv } from './runtime.ts';

const EcsEnv = z.object({
  CLUSTER_ARN: z.string().min(1),
  TASK_DEFINITION_ARN: z.string().min(1),
  /** The steps without AI (fetch, push): the only task definition with the repository token. */
  GIT_TASK_DEFINITION_ARN: z.string().min(1),
  CONTAINER_NAME: z.string().min(1),
  SUBNET_IDS: z.string().min(1),
  SECURITY_GROUP_IDS: z.string().min(1),
  ASSIGN_PUBLIC_IP: z.enum(['true', 'false']),
  CAPACITY_PROVIDER: z.enum(['FARGATE', 'FARGATE_SPOT']),
  /** This instance's share of ECS's 20 RunTask calls per second. */
  RUN_TASK_RATE: z.coerce.number().positive().default(4),
  /** KMS key that seals task tokens for the RunTask overrides. */
  TASK_SEAL_KMS_ARN: z.string().min(1),
});

const env = readEnv(EcsEnv);
// The launcher retries RunTask itself with one client token; SDK retries on top would multiply the calls.
const ecs = lazy(async () => {
  const { ECSClient } = await import('../../adapters/sdk/ecs.ts');
  return new ECSClient({
    maxAttempts: 1,
    requestHandler: { connectionTimeout: 3_000, requestTimeout: 10_000 },
  });
});
const kms = lazy(async () => {
  const { KMSClient } = await import('../../adapters/sdk/kms.ts');
  return new KMSClient({
    maxAttempts: 2,
    requestHandler: { connectionTimeout: 3_000, requestTimeout: 5_000 },
  });
});
const launcher = new EcsLauncher(
  ecs,
  {
    cluster: env.CLUSTER_ARN,
    taskDefinition: env.TASK_DEFINITION_ARN,
    gitTaskDefinition: env.GIT_TASK_DEFINITION_ARN,
    containerName: env.CONTAINER_NAME,
    subnets: env.SUBNET_IDS.split(','),
    securityGroups: env.SECURITY_GROUP_IDS.split(','),
    assignPublicIp: env.ASSIGN_PUBLIC_IP === 'true',
    capacityProvider: env.CAPACITY_PROVIDER,
    tokenSealer: kmsTokenSealer(kms, env.TASK_SEAL_KMS_ARN),
  },
  {
    runTaskLimiter: new RateLimiter({
      ratePerSec: env.RUN_TASK_RATE,
      burst: Math.max(1, Math.floor(env.RUN_TASK_RATE)),
    }),
  },
);

export const handler = createQueueConsumer({ ...depsFromEnv(), launcher, aggregateInline: aggregateJob });
