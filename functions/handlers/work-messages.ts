/** Reading a work message off an SQS record, shared by the queue and dead-letter consumers. */
import type { SQSRecord } from 'aws-lambda';
import { type WorkMessage, WorkMessageSchema } from '../core/messages.ts';
import type { Log } from '../services/deps.ts';

/** The message, or undefined (logged) when it is not one: redelivering cannot fix a malformed message. */
export function parseWorkMessage(record: SQSRecord, log: Log, what: string): WorkMessage | undefined {
  let body: unknown;
  try {
    body = JSON.parse(record.body);
  } catch {
    body = undefined;
  }
  const message = WorkMessageSchema.safeParse(body);
  if (message.success) return message.data;
  log.error(`dropping malformed ${what}`, { messageId: record.messageId, body: record.body.slice(0, 500) });
  return undefined;
}
