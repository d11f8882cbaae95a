/**
 * Lambda entry point: the reconciler (ECS task-state events and the scheduled
 * sweep). The ECS client and its package are loaded on first use: a sweep
 * that finds no active task, and most task-state events, never call ECS.
 */
import * as z from 'zod';
import { EcsTaskMonitor } from '../../adapters/ecs-task-monitor.ts';
import { lazy } from '../../adapters/lazy.ts';
import { createReconciler } from '../reconciler.ts';
import { depsFromEnv, readEnv } from './runtime.ts';

const env = readEnv(z.object({ CLUSTER_ARN: z.string().min(1), CONTAINER_NAME: z.string().min(1) }));
const ecs = lazy(async () => {
  const { ECSClient } = await import('../../adapters/sdk/ecs.ts');
  return new ECSClient({
    maxAttempts: 1,
    requestHandler: { connectionTimeout: 3_000, requestTimeout: 10_000 },
  });
});
// Describes and stops workers only: the reconciler never starts one.
const monitor = new EcsTaskMonitor(ecs, { cluster: env.CLUSTER_ARN, containerName: env.CONTAINER_NAME });

export const handler = createReconciler(depsFromEnv(), monitor, env.CONTAINER_NAME);
