/**
 * What went wrong with an AWS call, in the few kinds the code acts on. SDK v3
 * errors carry a `name` (the service's error code), `$fault` (`client` or
 * `server`), `$metadata.httpStatusCode` and, for errors the service model
 * marks retryable, `$retryable` (`{ throttling: true }` for throttling).
 * Errors that never reached the service (timeouts, refused connections) carry
 * a Node.js `code`, sometimes on their `cause`. The emulators used locally
 * answer in the same shapes.
 *
 * The name lists follow the SDK's own retry classification
 * (`@smithy/service-error-classification`), plus the codes of the services
 * used here (DynamoDB, SQS, S3, ECS, KMS, Bedrock).
 */

export type AwsErrorKind =
  /** The service asked us to slow down: retry with backoff. */
  | 'throttling'
  /** A server fault, a timeout or a network failure: retrying may succeed. */
  | 'transient'
  /** A condition the request named did not hold (DynamoDB condition, S3 If-Match): someone else moved first. */
  | 'conditional'
  /** The table, queue, bucket, key or task does not exist. */
  | 'not_found'
  /** A create call found the resource there already (table, queue, bucket). */
  | 'already_exists'
  /** The caller is not allowed (IAM, KMS key policy, bad credentials). */
  | 'access_denied'
  /** Any other error of the request itself: retrying the same request cannot help. */
  | 'permanent'
  /** Not recognisably an AWS error (a bug, a TypeError): the caller decides. */
  | 'unknown';

const CONDITIONAL = new Set(['ConditionalCheckFailedException', 'PreconditionFailed']);

const THROTTLING = new Set([
  'BandwidthLimitExceeded',
  'EC2ThrottledException',
  'LimitExceededException',
  'PriorRequestNotComplete',
  'ProvisionedThroughputExceededException',
  'RequestLimitExceeded',
  'RequestThrottled',
  'RequestThrottledException',
  'SlowDown',
  'ThrottledException',
  'Throttling',
  'ThrottlingException',
  'TooManyRequestsException',
  'TransactionInProgressException',
  // SQS, when KMS throttles its encryption of a message.
  'KmsThrottled',
]);

const TRANSIENT = new Set([
  // Timeouts (the SDK's own TimeoutError, AbortSignal.timeout's DOMException, services' codes).
  'TimeoutError',
  'RequestTimeout',
  'RequestTimeoutException',
  // Server faults some services report without a 5xx status the SDK keeps.
  'ServerException',
  'ServiceUnavailable',
  'ServiceUnavailableException',
  'InternalFailure',
  'InternalError',
  'InternalServerError',
  'InternalServerException',
  'KMSInternalException',
  'DependencyTimeoutException',
]);

/** Node.js system errors of a connection that failed or was cut: the request may never have arrived. */
const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'ENOTFOUND',
]);

const NOT_FOUND = new Set([
  'ResourceNotFoundException',
  'NoSuchKey',
  'NoSuchBucket',
  'NotFound',
  'QueueDoesNotExist',
  'NonExistentQueue',
  'TableNotFoundException',
  'ClusterNotFoundException',
  'NotFoundException',
]);

const ALREADY_EXISTS = new Set([
  // DynamoDB CreateTable: the table exists (or is being created or deleted).
  'ResourceInUseException',
  'QueueNameExists',
  'QueueAlreadyExists',
  'BucketAlreadyOwnedByYou',
  'BucketAlreadyExists',
  'ResourceAlreadyExistsException',
]);

const ACCESS_DENIED = new Set([
  'AccessDenied',
  'AccessDeniedException',
  'KmsAccessDenied',
  'UnrecognizedClientException',
  'InvalidClientTokenId',
  'ExpiredToken',
  'ExpiredTokenException',
  'MissingAuthenticationToken',
  'InvalidSignatureException',
  'SignatureDoesNotMatch',
  'NotAuthorized',
  'Forbidden',
]);

/** Request errors named without a 4xx status (some tests and emulators leave `$metadata` empty). */
const PERMANENT = new Set([
  'ValidationException',
  'SerializationException',
  'InvalidParameterException',
  'InvalidParameterValue',
  'InvalidParameterValueException',
  'ClientException',
  'ConflictException',
  'ItemCollectionSizeLimitExceededException',
]);

/**
 * The SDK names SQS errors after the legacy query code when the service sends
 * one (`AWS.SimpleQueueService.NonExistentQueue`); the prefix is dropped so
 * both spellings compare equal.
 */
export function errorName(err: unknown): string {
  const name = (err as { name?: unknown } | null | undefined)?.name;
  return typeof name === 'string' ? name.replace(/^AWS\.SimpleQueueService\./, '') : '';
}

export function errorMessage(err: unknown): string {
  const message = (err as { message?: unknown } | null | undefined)?.message;
  return typeof message === 'string' ? message : String(err);
}

/** The HTTP status the service answered with, when the error came from an answer. */
export function httpStatusOf(err: unknown): number | undefined {
  const status = (err as { $metadata?: { httpStatusCode?: unknown } } | null | undefined)?.$metadata
    ?.httpStatusCode;
  return typeof status === 'number' ? status : undefined;
}

/** A Node.js network failure on the error or on one of its causes (fetch wraps them). */
function isNetworkFailure(err: unknown, depth = 0): boolean {
  if (!err || typeof err !== 'object' || depth > 5) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && NETWORK_CODES.has(code)) return true;
  return isNetworkFailure((err as { cause?: unknown }).cause, depth + 1);
}

/** The kind of an error thrown by an AWS SDK v3 call (see `AwsErrorKind`). */
export function awsErrorKind(err: unknown): AwsErrorKind {
  const name = errorName(err);
  const status = httpStatusOf(err);
  const retryable = (err as { $retryable?: { throttling?: boolean } } | null | undefined)?.$retryable;
  if (CONDITIONAL.has(name) || status === 412) return 'conditional';
  if (THROTTLING.has(name) || status === 429 || retryable?.throttling === true) return 'throttling';
  if (TRANSIENT.has(name) || retryable !== undefined || isNetworkFailure(err)) return 'transient';
  if (status !== undefined && status >= 500) return 'transient';
  if (ALREADY_EXISTS.has(name)) return 'already_exists';
  if (NOT_FOUND.has(name) || status === 404) return 'not_found';
  if (ACCESS_DENIED.has(name) || status === 403) return 'access_denied';
  if (PERMANENT.has(name)) return 'permanent';
  if ((err as { $fault?: unknown } | null | undefined)?.$fault === 'client') return 'permanent';
  if (status !== undefined && status >= 400) return 'permanent';
  return 'unknown';
}

export function isThrottling(err: unknown): boolean {
  return awsErrorKind(err) === 'throttling';
}

/** Worth sending again after a backoff: throttling or transient. */
export function isRetryable(err: unknown): boolean {
  const kind = awsErrorKind(err);
  return kind === 'throttling' || kind === 'transient';
}

export function isConditionalCheckFailed(err: unknown): boolean {
  return awsErrorKind(err) === 'conditional';
}

export function isNotFound(err: unknown): boolean {
  return awsErrorKind(err) === 'not_found';
}

export function isAlreadyExists(err: unknown): boolean {
  return awsErrorKind(err) === 'already_exists';
}

export function isAccessDenied(err: unknown): boolean {
  return awsErrorKind(err) === 'access_denied';
}
