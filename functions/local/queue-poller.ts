/**
 * The local stand-in for Lambda's SQS event source mapping: long-poll the
 * work queue, hand each batch to the same consumer handler, delete what
 * succeeded and let failures come back after a short delay.
 */
import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  ReceiveMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import type { Log } from '../services/deps.ts';

export interface QueuePollerOptions {
  sqs: SQSClient;
  queueUrl: string;
  handler: (event: SQSEvent) => Promise<SQSBatchResponse>;
  log: Log;
  /** Seconds before a failed message is visible again. */
  retryDelaySec?: number;
  /** Long-poll wait; 20 s as Lambda's event source mapping (an empty poll is a call; stop() aborts a wait). */
  waitTimeSec?: number;
}

export interface QueuePoller {
  stop(): Promise<void>;
}

export function startQueuePoller(options: QueuePollerOptions): QueuePoller {
  const controller = new AbortController();
  const loop = (async () => {
    while (!controller.signal.aborted) {
      try {
        await pollOnce(options, controller.signal);
      } catch (err) {
        if (controller.signal.aborted) break;
        options.log.warn('queue poll failed; retrying', { error: (err as Error).message });
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  })();
  return {
    stop: async () => {
      controller.abort();
      await loop;
    },
  };
}

async function pollOnce(options: QueuePollerOptions, signal: AbortSignal): Promise<void> {
  const { sqs, queueUrl } = options;
  const received = await sqs.send(
    new ReceiveMessageCommand({
      QueueUrl: queueUrl,
      MaxNumberOfMessages: 10,
      WaitTimeSeconds: options.waitTimeSec ?? 20,
      MessageSystemAttributeNames: ['ApproximateReceiveCount', 'SentTimestamp'],
    }),
    { abortSignal: signal },
  );
  const messages = received.Messages ?? [];
  if (messages.length === 0) return;
  const event: SQSEvent = {
    Records: messages.map((m) => ({
      messageId: m.MessageId ?? '',
      receiptHandle: m.ReceiptHandle ?? '',
      body: m.Body ?? '',
      attributes: (m.Attributes ?? {}) as SQSEvent['Records'][number]['attributes'],
      messageAttributes: {},
      md5OfBody: m.MD5OfBody ?? '',
      eventSource: 'aws:sqs',
      eventSourceARN: queueUrl,
      awsRegion: 'local',
    })),
  };
  let failedIds: Set<string>;
  try {
    const response = await options.handler(event);
    failedIds = new Set(response.batchItemFailures.map((f) => f.itemIdentifier));
  } catch (err) {
    // A whole-batch failure: every message comes back, as with Lambda.
    options.log.warn('batch failed', { error: (err as Error).message, size: messages.length });
    failedIds = new Set(messages.map((m) => m.MessageId ?? ''));
  }
  const done = messages.filter((m) => !failedIds.has(m.MessageId ?? ''));
  const failed = messages.filter((m) => failedIds.has(m.MessageId ?? ''));
  if (done.length > 0) {
    await sqs.send(
      new DeleteMessageBatchCommand({
        QueueUrl: queueUrl,
        Entries: done.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle ?? '' })),
      }),
    );
  }
  if (failed.length > 0) {
    await sqs.send(
      new ChangeMessageVisibilityBatchCommand({
        QueueUrl: queueUrl,
        Entries: failed.map((m, i) => ({
          Id: String(i),
          ReceiptHandle: m.ReceiptHandle ?? '',
          VisibilityTimeout: options.retryDelaySec ?? 2,
        })),
      }),
    );
  }
}
