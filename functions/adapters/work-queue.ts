/**
 * The SQS work queue: run and aggregate messages. The SQS package is imported
 * on first use: many Lambda invocations send no message (lazy.ts).
 */
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { WorkMessage } from '../core/messages.ts';
import { type ClientSource, clientOf, lazy } from './lazy.ts';

/** The SQS commands, imported once on first use (each `import()` call resolves the module again). */
const sqsSdk = lazy(() => import('./sdk/sqs.ts'));

/** SQS takes at most 10 entries per batch call. */
const BATCH = 10;

export class WorkQueue {
  private readonly client: () => Promise<SQSClient>;

  constructor(
    sqs: ClientSource<SQSClient>,
    readonly queueUrl: string,
  ) {
    this.client = clientOf(sqs);
  }

  /** The SQS package and the client. */
  private sdk() {
    return Promise.all([sqsSdk(), this.client()]);
  }

  async send(message: WorkMessage, delaySeconds = 0): Promise<void> {
    const [{ SendMessageCommand }, sqs] = await this.sdk();
    await sqs.send(
      new SendMessageCommand({
        QueueUrl: this.queueUrl,
        MessageBody: JSON.stringify(message),
        DelaySeconds: delaySeconds,
      }),
    );
  }

  /** Sends many messages in batches of ten; throws if any entry was refused, naming how many. */
  async sendAll(messages: readonly WorkMessage[]): Promise<void> {
    if (messages.length === 0) return;
    const [{ SendMessageBatchCommand }, sqs] = await this.sdk();
    for (let i = 0; i < messages.length; i += BATCH) {
      const chunk = messages.slice(i, i + BATCH);
      const out = await sqs.send(
        new SendMessageBatchCommand({
          QueueUrl: this.queueUrl,
          Entries: chunk.map((m, j) => ({ Id: String(j), MessageBody: JSON.stringify(m) })),
        }),
      );
      if (out.Failed && out.Failed.length > 0) {
        throw new Error(
          `SQS refused ${out.Failed.length} of ${chunk.length} messages: ${out.Failed[0]?.Message ?? ''}`,
        );
      }
    }
  }
}
