/** The dead-letter queue consumer: poison work messages fail their task or job instead of lingering. */
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { handleDeadLetter } from '../services/dead-letters.ts';
import type { Deps } from '../services/deps.ts';
import { parseWorkMessage } from './work-messages.ts';

export function createDeadLetterConsumer(deps: Deps) {
  const processor = new BatchProcessor(EventType.SQS);
  const handleRecord = async (record: SQSRecord): Promise<void> => {
    const message = parseWorkMessage(record, deps.log, 'dead letter');
    if (!message) return;
    await handleDeadLetter(deps, message, Number(record.attributes?.ApproximateReceiveCount ?? 0));
  };
  return async (event: SQSEvent, context?: Context): Promise<SQSBatchResponse> =>
    processPartialResponse(event, handleRecord, processor, { ...(context ? { context } : {}) });
}
