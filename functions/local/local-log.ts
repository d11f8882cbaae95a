/** Structured log lines for local mode: JSON (or plain text) to a file or stderr, filtered by level. */
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { JOBS_FINISHED_METRIC } from '../core/metrics.ts';
import type { Log, Metrics } from '../services/deps.ts';

const LEVELS = { DEBUG: 10, INFO: 20, WARN: 30, ERROR: 40, SILENT: 100 } as const;
export type LogLevel = keyof typeof LEVELS;

export interface LocalLogOptions {
  level: LogLevel;
  structured: boolean;
  /** Append here; stderr when absent. */
  file?: string | undefined;
}

export function createLocalLog(options: LocalLogOptions): Log {
  if (options.file) mkdirSync(dirname(options.file), { recursive: true });
  const threshold = LEVELS[options.level];
  const write = (level: Exclude<LogLevel, 'SILENT'>, message: string, extra?: Record<string, unknown>) => {
    if (LEVELS[level] < threshold) return;
    const timestamp = new Date().toISOString();
    const line = options.structured
      ? JSON.stringify({ timestamp, level, message, ...extra })
      : `${timestamp} ${level} ${message}${extra ? ` ${JSON.stringify(extra)}` : ''}`;
    if (options.file) appendFileSync(options.file, `${line}\n`);
    else process.stderr.write(`${line}\n`);
  };
  return {
    debug: (m, e) => write('DEBUG', m, e),
    info: (m, e) => write('INFO', m, e),
    warn: (m, e) => write('WARN', m, e),
    error: (m, e) => write('ERROR', m, e),
  };
}

/** Local mode has no CloudWatch: what a deployment would count is a debug line. */
export function logMetrics(log: Log): Metrics {
  return {
    jobFinished: (status) => log.debug('metric', { metric: JOBS_FINISHED_METRIC, status }),
  };
}
