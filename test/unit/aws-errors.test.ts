/**
 * The AWS error classifier, fed the SDK's own exception classes where the
 * services model them, and errors shaped as the SDK throws unmodeled ones
 * (throttling, timeouts, network failures, bare HTTP statuses).
 */
import {
  ConditionalCheckFailedException,
  InternalServerError,
  ProvisionedThroughputExceededException,
  ResourceInUseException,
  ResourceNotFoundException,
} from '@aws-sdk/client-dynamodb';
import {
  AccessDeniedException,
  ClientException,
  ClusterNotFoundException,
  ConflictException,
  InvalidParameterException,
  ServerException,
} from '@aws-sdk/client-ecs';
import { BucketAlreadyOwnedByYou, NoSuchBucket, NoSuchKey, NotFound } from '@aws-sdk/client-s3';
import { QueueDoesNotExist, QueueNameExists } from '@aws-sdk/client-sqs';
import { describe, expect, it } from 'vitest';
import {
  type AwsErrorKind,
  awsErrorKind,
  errorMessage,
  errorName,
  httpStatusOf,
  isAccessDenied,
  isAlreadyExists,
  isConditionalCheckFailed,
  isNotFound,
  isRetryable,
  isThrottling,
} from '../../functions/adapters/aws-errors.ts';

const meta = (httpStatusCode?: number) => ({
  $metadata: httpStatusCode === undefined ? {} : { httpStatusCode },
});

/** An error shaped as SDK v3 throws the ones a service model does not name. */
function awsError(name: string, extra: Record<string, unknown> = {}): Error {
  return Object.assign(new Error(`${name} happened`), { name, $metadata: {}, ...extra });
}

const cases: [string, unknown, AwsErrorKind][] = [
  // Failed conditions.
  [
    'DynamoDB ConditionalCheckFailedException',
    new ConditionalCheckFailedException({ message: 'The conditional request failed', ...meta(400) }),
    'conditional',
  ],
  ['S3 PreconditionFailed (If-Match)', awsError('PreconditionFailed', meta(412)), 'conditional'],
  // Throttling.
  ['ThrottlingException (400)', awsError('ThrottlingException', meta(400)), 'throttling'],
  [
    'DynamoDB ProvisionedThroughputExceededException',
    new ProvisionedThroughputExceededException({ message: 'slow down', ...meta(400) }),
    'throttling',
  ],
  ['S3 SlowDown (503)', awsError('SlowDown', meta(503)), 'throttling'],
  ['SQS RequestThrottled', awsError('RequestThrottled', meta(400)), 'throttling'],
  ['EC2 RequestLimitExceeded', awsError('RequestLimitExceeded'), 'throttling'],
  ['any HTTP 429', awsError('UnknownError', meta(429)), 'throttling'],
  ['$retryable.throttling', awsError('Whatever', { $retryable: { throttling: true } }), 'throttling'],
  // Server faults, timeouts, network.
  ['ECS ServerException', new ServerException({ message: 'Service error', ...meta(500) }), 'transient'],
  ['DynamoDB InternalServerError', new InternalServerError({ message: 'oops', ...meta(500) }), 'transient'],
  ['ServiceUnavailableException without a status', awsError('ServiceUnavailableException'), 'transient'],
  ['HTTP 502', awsError('UnknownError', meta(502)), 'transient'],
  ['SDK TimeoutError', awsError('TimeoutError'), 'transient'],
  [
    'AbortSignal.timeout',
    new DOMException('The operation was aborted due to timeout', 'TimeoutError'),
    'transient',
  ],
  ['ECONNRESET', Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }), 'transient'],
  [
    'fetch failed, caused by ECONNREFUSED',
    new TypeError('fetch failed', { cause: Object.assign(new Error('connect'), { code: 'ECONNREFUSED' }) }),
    'transient',
  ],
  ['$retryable without throttling', awsError('Odd', { $retryable: {} }), 'transient'],
  ['SQS legacy-prefixed throttling', awsError('AWS.SimpleQueueService.RequestThrottled'), 'throttling'],
  // Missing things.
  [
    'DynamoDB ResourceNotFoundException',
    new ResourceNotFoundException({ message: 'Requested resource not found', ...meta(400) }),
    'not_found',
  ],
  [
    'S3 NoSuchKey',
    new NoSuchKey({ message: 'The specified key does not exist.', ...meta(404) }),
    'not_found',
  ],
  ['S3 NoSuchBucket', new NoSuchBucket({ message: 'no bucket', ...meta(404) }), 'not_found'],
  ['S3 HeadObject NotFound', new NotFound({ message: 'NotFound', ...meta(404) }), 'not_found'],
  ['a bare 404', awsError('UnknownError', meta(404)), 'not_found'],
  ['SQS QueueDoesNotExist', new QueueDoesNotExist({ message: 'no queue', ...meta(400) }), 'not_found'],
  [
    'SQS legacy NonExistentQueue',
    awsError('AWS.SimpleQueueService.NonExistentQueue', meta(400)),
    'not_found',
  ],
  [
    'ECS ClusterNotFoundException',
    new ClusterNotFoundException({ message: 'no', ...meta(400) }),
    'not_found',
  ],
  // Already there.
  [
    'DynamoDB ResourceInUseException',
    new ResourceInUseException({ message: 'exists', ...meta(400) }),
    'already_exists',
  ],
  ['SQS QueueNameExists', new QueueNameExists({ message: 'exists', ...meta(400) }), 'already_exists'],
  ['SQS legacy QueueAlreadyExists', awsError('AWS.SimpleQueueService.QueueAlreadyExists'), 'already_exists'],
  [
    'S3 BucketAlreadyOwnedByYou',
    new BucketAlreadyOwnedByYou({ message: 'yours', ...meta(409) }),
    'already_exists',
  ],
  // Not allowed.
  [
    'ECS AccessDeniedException',
    new AccessDeniedException({ message: 'not authorized to perform: ecs:RunTask', ...meta(400) }),
    'access_denied',
  ],
  ['S3 AccessDenied', awsError('AccessDenied', meta(403)), 'access_denied'],
  ['a bare 403 (HeadObject has no body)', awsError('403', meta(403)), 'access_denied'],
  ['bad credentials', awsError('UnrecognizedClientException', meta(400)), 'access_denied'],
  // The request itself is wrong.
  ['ECS ClientException', new ClientException({ message: 'bad task definition', ...meta(400) }), 'permanent'],
  [
    'ECS InvalidParameterException without a status',
    new InvalidParameterException({ message: 'Task Identifier is invalid', ...meta() }),
    'permanent',
  ],
  ['ECS ConflictException', new ConflictException({ message: 'token in use', ...meta(409) }), 'permanent'],
  ['ValidationException', awsError('ValidationException'), 'permanent'],
  ['an unnamed client fault', awsError('SomethingNew', { $fault: 'client' }), 'permanent'],
  ['an unnamed 400', awsError('SomethingNew', meta(400)), 'permanent'],
  // Not AWS's.
  ['a TypeError', new TypeError('boom'), 'unknown'],
  ['a caller abort', new DOMException('aborted', 'AbortError'), 'unknown'],
  ['a string', 'nope', 'unknown'],
  ['undefined', undefined, 'unknown'],
  ['null', null, 'unknown'],
];

describe('awsErrorKind', () => {
  it.each(cases)('%s is %s', (_label, err, kind) => {
    expect(awsErrorKind(err)).toBe(kind);
  });

  it('the predicates agree with the kind', () => {
    for (const [label, err, kind] of cases) {
      expect(isThrottling(err), label).toBe(kind === 'throttling');
      expect(isRetryable(err), label).toBe(kind === 'throttling' || kind === 'transient');
      expect(isConditionalCheckFailed(err), label).toBe(kind === 'conditional');
      expect(isNotFound(err), label).toBe(kind === 'not_found');
      expect(isAlreadyExists(err), label).toBe(kind === 'already_exists');
      expect(isAccessDenied(err), label).toBe(kind === 'access_denied');
    }
  });

  it('does not follow a cycle of causes forever', () => {
    const a: { cause?: unknown } = new Error('a');
    const b = Object.assign(new Error('b'), { cause: a });
    a.cause = b;
    expect(awsErrorKind(a)).toBe('unknown');
  });
});

describe('errorName, errorMessage, httpStatusOf', () => {
  it('read what the SDK puts on an error, and tolerate anything else', () => {
    const err = new NoSuchKey({ message: 'gone', ...meta(404) });
    expect(errorName(err)).toBe('NoSuchKey');
    expect(errorMessage(err)).toBe('gone');
    expect(httpStatusOf(err)).toBe(404);
    expect(errorName(awsError('AWS.SimpleQueueService.QueueNameExists'))).toBe('QueueNameExists');
    expect(errorName(undefined)).toBe('');
    expect(errorName({ name: 42 })).toBe('');
    expect(errorMessage('plain')).toBe('plain');
    expect(httpStatusOf(new Error('x'))).toBeUndefined();
    expect(httpStatusOf(awsError('X', { $metadata: { httpStatusCode: '500' } }))).toBeUndefined();
  });
});
