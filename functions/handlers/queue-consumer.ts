/**
 * The work-queue consumer: `run` messages go to the dispatcher, `aggregate`
 * messages to the aggregator. Failed records are reported individually
 * (ReportBatchItemFailures), so one bad launch does not redeliver its batch.
 * A batch's new run messages take their deployment slots in one write.
 */
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { aggregateJob } from '../services/aggregate.ts';
import { cancelTree } from '../services/cancel.ts';
import type { DispatchDeps } from '../services/deps.ts';
import { batchDeploymentSlots, dispatchRun } from '../services/dispatch.ts';
import { parseWorkMessage } from './work-messages.ts';

export function createQueueConsumer(deps: DispatchDeps) {
  const processor = new BatchProcessor(EventType.SQS);
  return async (event: SQSEvent, context?: Context): Promise<SQSBatchResponse> => {
    const messages = new Map(
      event.Records.map((record) => [record.messageId, parseWorkMessage(record, deps.log, 'work message')]),
    );
    // A message back from a wait looks at its slot's counter first and may not take one.
    const fresh = [...messages.values()].filter((m) => m?.type === 'run' && !m.slotWait).length;
    const slots = batchDeploymentSlots(deps, fresh);
    const handleRecord = async (record: SQSRecord): Promise<void> => {
      const message = messages.get(record.messageId);
      if (!message) return;
      if (message.type === 'run') {
        // The launcher's clients load while the task is claimed (the first launch of a cold start).
        deps.launcher.prepare?.();
        await dispatchRun(deps, message, message.slotWait ? undefined : slots);
      } else if (message.type === 'aggregate') await aggregateJob(deps, message.jobId);
      else await cancelTree(deps, message.jobId);
    };
    try {
      return await processPartialResponse(event, handleRecord, processor, {
        ...(context ? { context } : {}),
        processInParallel: true,
      });
    } finally {
      await slots.settle();
    }
  };
}
