/**
 * JobsFinished, the metric the FailedJobs alarm and the dashboard read: in a
 * Lambda one CloudWatch EMF line per finished job, in the namespace, with the
 * dimensions infra/constructs/monitoring.ts names; in local mode a debug line.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  JOB_STATUS_DIMENSION,
  JOBS_FINISHED_METRIC,
  METRIC_NAMESPACE,
  SERVICE_DIMENSION,
  SERVICE_NAME,
} from '../../functions/core/metrics.ts';
import { metrics } from '../../functions/handlers/lambda/runtime.ts';
import { logMetrics } from '../../functions/local/local-log.ts';

/** The EMF objects written to stdout while `run` runs. */
function emfLines(run: () => void): Record<string, unknown>[] {
  const written: string[] = [];
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    written.push(String(chunk));
    return true;
  });
  try {
    run();
  } finally {
    spy.mockRestore();
  }
  return written
    .flatMap((w) => w.split('\n'))
    .filter((line) => line.includes('"_aws"'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('JobsFinished in a Lambda (EMF)', () => {
  it('writes one EMF line per finished job, with the status as a dimension', () => {
    const lines = emfLines(() => {
      metrics.jobFinished('failed');
      metrics.jobFinished('completed');
    });
    expect(lines).toHaveLength(2);
    const [failed, completed] = lines;
    expect(failed).toMatchObject({
      _aws: {
        CloudWatchMetrics: [
          {
            Namespace: METRIC_NAMESPACE,
            Dimensions: [[SERVICE_DIMENSION, JOB_STATUS_DIMENSION]],
            Metrics: [{ Name: JOBS_FINISHED_METRIC, Unit: 'Count' }],
          },
        ],
      },
      [SERVICE_DIMENSION]: SERVICE_NAME,
      [JOB_STATUS_DIMENSION]: 'failed',
      [JOBS_FINISHED_METRIC]: 1,
    });
    // Each line carries only its own status: nothing of the first is left over in the second.
    expect(completed).toMatchObject({ [JOB_STATUS_DIMENSION]: 'completed', [JOBS_FINISHED_METRIC]: 1 });
  });
});

describe('JobsFinished in local mode', () => {
  it('is a debug line, nothing on stdout', () => {
    const debug = vi.fn();
    const log = { debug, info: vi.fn(), warn: vi.fn(), error: vi.fn() };
    expect(emfLines(() => logMetrics(log).jobFinished('partial'))).toEqual([]);
    expect(debug).toHaveBeenCalledWith('metric', { metric: JOBS_FINISHED_METRIC, status: 'partial' });
  });
});
