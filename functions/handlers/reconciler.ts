/**
 * The reconciler handler: an ECS "Task State Change" event for a stopped
 * worker, or the scheduled sweep. A stopped worker that never reported has
 * its attempt recorded as failed with why it stopped (Spot interruption, out
 * of memory, exit code), and is retried when retries remain.
 */
import type { EventBridgeEvent } from 'aws-lambda';
import { stopReason } from '../adapters/ecs-launcher.ts';
import type { Launcher } from '../adapters/launcher.ts';
import { parseTaskIdEnv } from '../core/tokens.ts';
import type { Deps } from '../services/deps.ts';
import { type SweepReport, sweepActiveTasks } from '../services/reconcile.ts';
import { recordLostWorker } from '../services/record-result.ts';

interface EcsTaskStateDetail {
  taskArn?: string;
  lastStatus?: string;
  stoppedReason?: string;
  stopCode?: string;
  containers?: { name?: string; exitCode?: number; reason?: string }[];
  overrides?: { containerOverrides?: { name?: string; environment?: { name?: string; value?: string }[] }[] };
}

export type ReconcilerEvent = EventBridgeEvent<string, EcsTaskStateDetail | Record<string, unknown>>;

export function createReconciler(
  deps: Deps,
  launcher: Pick<Launcher, 'status' | 'stop'>,
  containerName: string,
) {
  return async (event: ReconcilerEvent): Promise<{ recorded?: boolean; sweep?: SweepReport }> => {
    if (event['detail-type'] === 'ECS Task State Change') {
      const detail = event.detail as EcsTaskStateDetail;
      if (detail.lastStatus !== 'STOPPED') return {};
      const env =
        detail.overrides?.containerOverrides?.find((c) => c.name === containerName)?.environment ?? [];
      // Only the id: the same overrides carry the task token, which must not reach the logs.
      const scope = parseTaskIdEnv(env.find((e) => e.name === 'TASK_ID')?.value ?? '');
      if (!scope) {
        deps.log.warn('stopped task without a TASK_ID; not ours', { taskArn: detail.taskArn });
        return {};
      }
      const container = detail.containers?.find((c) => c.name === containerName);
      const reason = stopReason({
        lastStatus: 'STOPPED',
        stoppedReason: detail.stoppedReason,
        stopCode: detail.stopCode,
        exitCode: container?.exitCode,
        containerReason: container?.reason,
      });
      const task = await recordLostWorker(deps, scope, reason, container?.exitCode);
      return { recorded: task !== undefined };
    }
    return { sweep: await sweepActiveTasks(deps, launcher) };
  };
}
