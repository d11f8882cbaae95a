/**
 * The limits of a worker's progress posts, apart from progress.ts's schemas:
 * the worker needs the numbers, and importing the schemas would load zod on
 * its start-up path.
 */

/** Most events one post may carry (a worker batches what happened since its last post). */
export const MAX_EVENTS_PER_POST = 20;
/** Largest piece of log one post may carry. */
export const MAX_LOG_CHUNK_CHARS = 32 * 1024;
/** Log kept live per attempt; the whole log is uploaded when the attempt ends. */
export const MAX_LIVE_LOG_CHARS = 4 * 1024 * 1024;
/** A worker posting faster than this is answered 429 (the post doubles as its heartbeat). */
export const MIN_POST_INTERVAL_MS = 400;
