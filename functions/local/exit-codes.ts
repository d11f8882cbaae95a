/**
 * Exit codes of `orchestrator`, one table for every command (the README
 * lists them). A script can tell a job that failed from a command it called
 * wrongly: usage errors never share a code with a job's outcome.
 */
import type { JobStatus } from '../core/task-states.ts';

export const EXIT = {
  /** The job completed, or the command did what it was asked. */
  ok: 0,
  /** The job failed, or the command could not do what it was asked (API refused or unreachable, bad config). */
  failed: 1,
  /** The job ended with some workers failed. */
  partial: 2,
  /** The job was cancelled. */
  cancelled: 3,
  /** The command line was wrong: unknown option, missing argument, bad value (BSD's EX_USAGE). */
  usage: 64,
  /** Interrupted (Ctrl-C): 128 + SIGINT. */
  interrupted: 130,
} as const;

/** The exit code of a command that waited for a job to end. */
export function exitCodeOf(status: JobStatus): number {
  switch (status) {
    case 'completed':
      return EXIT.ok;
    case 'partial':
      return EXIT.partial;
    case 'cancelled':
      return EXIT.cancelled;
    default:
      return EXIT.failed;
  }
}

/** A wrong command line: printed as one line, exit code 64. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
