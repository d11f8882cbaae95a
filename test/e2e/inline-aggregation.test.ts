/**
 * A small root job is aggregated by the request that finished its last task;
 * when that fails, the queue takes over, and the job still ends with its
 * reports. A job over the inline limit always goes through the queue.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WorkMessage } from '../../functions/core/messages.ts';
import { INLINE_AGGREGATE_MAX_TASKS } from '../../functions/services/record-result.ts';
import { startTestStack, type TestStack } from '../support/harness.ts';

describe('aggregation of a finished job', () => {
  let stack: TestStack;
  const sent: WorkMessage[] = [];
  let failReports = 0;

  beforeAll(async () => {
    stack = await startTestStack(
      `workers: {max_workers: 5}\nlimits: {max_workers_per_job: ${INLINE_AGGREGATE_MAX_TASKS + 5}}`,
    );
    const queue = stack.deps.queue;
    const send = queue.send.bind(queue);
    queue.send = async (m, delay) => {
      sent.push(m);
      return send(m, delay);
    };
    const artifacts = stack.deps.artifacts;
    const putText = artifacts.putText.bind(artifacts);
    artifacts.putText = async (key, body, type) => {
      if (failReports > 0 && key.endsWith('FINAL_RESULT.md')) {
        failReports -= 1;
        throw new Error('S3 is down for a moment');
      }
      return putText(key, body, type);
    };
  });
  afterAll(async () => {
    await stack?.stop();
  });

  const run = async (tasks: number) => {
    const submitted = await stack.api('POST', '/api/v1/orchestrate', {
      body: { request: 'r', tasks: Array.from({ length: tasks }, (_, i) => ({ prompt: `t${i}` })) },
    });
    expect(submitted.status, submitted.text).toBe(202);
    const jobId = submitted.json.job_id as string;
    expect(await stack.waitForJob(jobId, 60_000)).toBe('completed');
    expect(await stack.deps.artifacts.getText(`jobs/${jobId}/FINAL_RESULT.md`)).toBeDefined();
    return sent.filter((m) => m.type === 'aggregate' && m.jobId === jobId).length;
  };

  it('a small job: no aggregate message', async () => {
    expect(await run(2)).toBe(0);
  });

  it('a small job whose inline reports fail: one aggregate message, and the queue finishes it', async () => {
    failReports = 1;
    expect(await run(1)).toBe(1);
    expect(failReports).toBe(0);
  });

  it(`a job of more than ${INLINE_AGGREGATE_MAX_TASKS} tasks: through the queue`, async () => {
    expect(await run(INLINE_AGGREGATE_MAX_TASKS + 1)).toBe(1);
  });
});
