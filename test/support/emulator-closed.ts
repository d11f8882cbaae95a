/**
 * Whether an unhandled error is dynalite's database (or one of its query
 * iterators) being closed under an in-flight request: what the fault suite's
 * emulator restarts cause on purpose. The request itself fails and is retried
 * like any lost call; every other unhandled error still fails the run.
 */
const CLOSED_CODES = new Set(['LEVEL_DATABASE_NOT_OPEN', 'LEVEL_ITERATOR_NOT_OPEN']);
const CLOSED_MESSAGES = /Database is closed|Iterator is not open/;

export function isEmulatorClosedError(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string' && CLOSED_CODES.has(code)) return true;
  return CLOSED_MESSAGES.test(String((error as Error | undefined)?.message ?? error));
}
