/**
 * Creates the table, queues and bucket that local mode needs, idempotently and
 * through the SDK only, so the same code works against the embedded emulators
 * and against LocalStack. (On AWS the CDK stack owns these resources.)
 *
 * Emulator notes:
 * - dynalite (started with createTableMs: 0) reports ACTIVE at once; AWS and
 *   LocalStack need the bounded wait below.
 * - fauxqs returns queue URLs on `sqs.<region>.localhost:<port>`, which does not
 *   resolve here; the returned URLs are still the right identifiers as long as
 *   the SQS client keeps its configured endpoint (`createAwsClients` does).
 * - fauxqs, like AWS, refuses CreateQueue repeated with different attributes
 *   (error name `AWS.SimpleQueueService.QueueNameExists`, AWS's legacy code is
 *   `QueueAlreadyExists`); we then converge the attributes with SetQueueAttributes.
 */
import { CreateTableCommand, DescribeTableCommand, type TableDescription } from '@aws-sdk/client-dynamodb';
import { type BucketLocationConstraint, CreateBucketCommand } from '@aws-sdk/client-s3';
import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  SetQueueAttributesCommand,
} from '@aws-sdk/client-sqs';
import type { AwsClients } from './aws-clients.ts';
import { isAlreadyExists } from './aws-errors.ts';
import { tableDefinition } from './table-schema.ts';

export interface ResourceNames {
  tableName: string;
  queueName: string;
  deadLetterQueueName: string;
  bucketName: string;
  maxReceiveCount: number;
  visibilityTimeoutSec: number;
}

export interface ProvisionedResources {
  tableName: string;
  queueUrl: string;
  deadLetterQueueUrl: string;
  bucketName: string;
}

/** Upper bound on waiting for a new table to become ACTIVE (AWS usually needs seconds). */
const TABLE_ACTIVE_TIMEOUT_MS = 120_000;
const TABLE_POLL_MAX_ATTEMPTS = 200;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function isActive(table: TableDescription | undefined): boolean {
  if (table?.TableStatus !== 'ACTIVE') return false;
  return (table.GlobalSecondaryIndexes ?? []).every((gsi) => gsi.IndexStatus === 'ACTIVE');
}

async function ensureTable(clients: AwsClients, tableName: string): Promise<void> {
  try {
    await clients.ddb.send(new CreateTableCommand(tableDefinition(tableName)));
  } catch (err) {
    if (!isAlreadyExists(err)) throw err;
  }
  const deadline = Date.now() + TABLE_ACTIVE_TIMEOUT_MS;
  let delayMs = 100;
  for (let attempt = 0; attempt < TABLE_POLL_MAX_ATTEMPTS; attempt++) {
    const { Table } = await clients.ddb.send(new DescribeTableCommand({ TableName: tableName }));
    if (isActive(Table)) return;
    if (Date.now() + delayMs > deadline) break;
    await sleep(delayMs);
    delayMs = Math.min(delayMs * 2, 2_000);
  }
  throw new Error(`DynamoDB table ${tableName} did not become ACTIVE within ${TABLE_ACTIVE_TIMEOUT_MS} ms`);
}

/** CreateQueue is idempotent for equal attributes; on a mismatch, look the queue up and converge it. */
async function ensureQueue(
  clients: AwsClients,
  queueName: string,
  attributes: Record<string, string>,
): Promise<string> {
  try {
    const { QueueUrl } = await clients.sqs.send(
      new CreateQueueCommand({ QueueName: queueName, Attributes: attributes }),
    );
    if (!QueueUrl) throw new Error(`CreateQueue returned no URL for ${queueName}`);
    return QueueUrl;
  } catch (err) {
    if (!isAlreadyExists(err)) throw err;
  }
  const { QueueUrl } = await clients.sqs.send(new GetQueueUrlCommand({ QueueName: queueName }));
  if (!QueueUrl) throw new Error(`GetQueueUrl returned no URL for ${queueName}`);
  if (Object.keys(attributes).length > 0) {
    await clients.sqs.send(new SetQueueAttributesCommand({ QueueUrl, Attributes: attributes }));
  }
  return QueueUrl;
}

async function queueArn(clients: AwsClients, queueUrl: string): Promise<string> {
  const { Attributes } = await clients.sqs.send(
    new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] }),
  );
  const arn = Attributes?.QueueArn;
  if (!arn) throw new Error(`No QueueArn for ${queueUrl}`);
  return arn;
}

async function ensureBucket(clients: AwsClients, bucketName: string): Promise<void> {
  const region = await clients.s3.config.region();
  try {
    await clients.s3.send(
      new CreateBucketCommand({
        Bucket: bucketName,
        // us-east-1 is the one region that rejects an explicit LocationConstraint.
        ...(region && region !== 'us-east-1'
          ? { CreateBucketConfiguration: { LocationConstraint: region as BucketLocationConstraint } }
          : {}),
      }),
    );
  } catch (err) {
    if (!isAlreadyExists(err)) throw err;
  }
}

export async function ensureResources(
  clients: AwsClients,
  names: ResourceNames,
): Promise<ProvisionedResources> {
  const queues = (async () => {
    const deadLetterQueueUrl = await ensureQueue(clients, names.deadLetterQueueName, {});
    const deadLetterTargetArn = await queueArn(clients, deadLetterQueueUrl);
    const queueUrl = await ensureQueue(clients, names.queueName, {
      VisibilityTimeout: String(names.visibilityTimeoutSec),
      RedrivePolicy: JSON.stringify({ deadLetterTargetArn, maxReceiveCount: String(names.maxReceiveCount) }),
    });
    return { queueUrl, deadLetterQueueUrl };
  })();
  const [, { queueUrl, deadLetterQueueUrl }] = await Promise.all([
    ensureTable(clients, names.tableName),
    queues,
    ensureBucket(clients, names.bucketName),
  ]);
  return { tableName: names.tableName, queueUrl, deadLetterQueueUrl, bucketName: names.bucketName };
}
