/**
 * The work-queue consumer: `run` messages go to the dispatcher, `aggregate`
 * messages to the aggregator. Failed records are reported individually
 * (ReportBatchItemFailures), so one bad launch does not redeliver its batch.
 */
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { aggregateJob } from '../services/aggregate.ts';
import { cancelTree } from '../services/cancel.ts';
import type { DispatchDeps } from '../services/deps.ts';
import { dispatchRun } from '../services/dispatch.ts';
import { parseWorkMessage } from './work-messages.ts';

export function createQueueConsumer(deps: DispatchDeps) {
  const processor = new BatchProcessor(EventType.SQS);
  const handleRecord = async (record: SQSRecord): Promise<void> => {
    const message = parseWorkMessage(record, deps.log, 'work message');
    if (!message) return;
    if (message.type === 'run') {
      // The launcher's clients load while the task is claimed (the first launch of a cold start).
      deps.launcher.prepare?.();
      await dispatchRun(deps, message);
    } else if (message.type === 'aggregate') await aggregateJob(deps, message.jobId);
    else await cancelTree(deps, message.jobId);
  };
  return async (event: SQSEvent, context?: Context): Promise<SQSBatchResponse> =>
    processPartialResponse(event, handleRecord, processor, {
      ...(context ? { context } : {}),
      processInParallel: true,
    });
}
