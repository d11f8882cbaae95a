/** The dead-letter queue consumer: poison work messages fail their task or job instead of lingering. */
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { WorkMessageSchema } from '../core/messages.ts';
import { handleDeadLetter } from '../services/dead-letters.ts';
import type { Deps } from '../services/deps.ts';

export function createDeadLetterConsumer(deps: Deps) {
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
      deps.log.error('dropping malformed dead letter', {
        messageId: record.messageId,
        body: record.body.slice(0, 500),
      });
      return;
    }
    await handleDeadLetter(deps, message.data, Number(record.attributes?.ApproximateReceiveCount ?? 0));
  };
  return async (event: SQSEvent, context?: Context): Promise<SQSBatchResponse> =>
    processPartialResponse(event, handleRecord, processor, { ...(context ? { context } : {}) });
}
