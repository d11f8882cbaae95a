/** Lambda entry point: the reconciler (ECS task-state events and the scheduled sweep). */
import { ECSClient } from '@aws-sdk/client-ecs';
import { z } from 'zod';
import { EcsTaskMonitor } from '../../adapters/ecs-task-monitor.ts';
import { createReconciler } from '../reconciler.ts';
import { depsFromEnv, readEnv } from './runtime.ts';

const env = readEnv(z.object({ CLUSTER_ARN: z.string().min(1), CONTAINER_NAME: z.string().min(1) }));
// The monitor retries DescribeTasks and StopTask itself; SDK retries on top would multiply the calls.
const ecs = new ECSClient({
  maxAttempts: 1,
  requestHandler: { connectionTimeout: 3_000, requestTimeout: 10_000 },
});
// Describes and stops workers only: the reconciler never starts one.
const monitor = new EcsTaskMonitor(ecs, { cluster: env.CLUSTER_ARN, containerName: env.CONTAINER_NAME });

export const handler = createReconciler(depsFromEnv(), monitor, env.CONTAINER_NAME);
