/**
 * The work-queue consumer: `run` messages go to the dispatcher, `aggregate`
 * messages to the aggregator. Failed records are reported individually
 * (ReportBatchItemFailures), so one bad launch does not redeliver its batch.
 */
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { WorkMessageSchema } from '../core/messages.ts';
import { aggregateJob } from '../services/aggregate.ts';
import { cancelTree } from '../services/cancel.ts';
import type { DispatchDeps } from '../services/deps.ts';
import { dispatchRun } from '../services/dispatch.ts';

export function createQueueConsumer(deps: DispatchDeps) {
  const processor = new BatchProcessor(EventType.SQS);
  const handleRecord = async (record: SQSRecord): Promise<void> => {
    let body: unknown;
    try {
      body = JSON.parse(record.body);
    } catch {
      body = undefined;
    }
    const message = WorkMessageSchema.safeParse(body);
    if (!message.success) {
      // Redelivering cannot fix a malformed message; log it and let it go.
      deps.log.error('dropping malformed work message', {
        messageId: record.messageId,
        body: record.body.slice(0, 500),
      });
      return;
    }
    if (message.data.type === 'run') await dispatchRun(deps, message.data);
    else if (message.data.type === 'aggregate') await aggregateJob(deps, message.data.jobId);
    else await cancelTree(deps, message.data.jobId);
  };
  return async (event: SQSEvent, context?: Context): Promise<SQSBatchResponse> =>
    processPartialResponse(event, handleRecord, processor, {
      ...(context ? { context } : {}),
      processInParallel: true,
    });
}
