/**
 * The request that ends a small job's last task reads the job's tasks beside
 * its write on the job, and the aggregation uses that read when it shows every
 * task final. When it does not (a sibling ended in between) or the read
 * failed, the reports must still show every task as it ended.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resultJsonKey } from '../../functions/core/layout.ts';
import type { JobRecord, TaskRecord } from '../../functions/core/model.ts';
import { aggregateJob } from '../../functions/services/aggregate.ts';
import type { Deps } from '../../functions/services/deps.ts';
import { workTasks } from '../../functions/services/submit-job.ts';
import { type EmulatorDeps, startEmulatorDeps } from '../support/emulator-deps.ts';
import { makeJob } from '../support/records.ts';

describe('aggregation with the tasks read beside the last close', () => {
  let emulators: EmulatorDeps;
  let deps: Deps;

  beforeAll(async () => {
    emulators = await startEmulatorDeps('early-tasks');
    deps = emulators.deps;
  });
  afterAll(async () => {
    await emulators?.stop();
  });

  /** A running root job of two tasks: the first succeeded, the second in `second`. */
  async function twoTaskJob(second: TaskRecord['state']): Promise<JobRecord> {
    const now = new Date().toISOString();
    const jobId = randomBytes(10).toString('hex');
    const job = makeJob({ jobId, rootJobId: jobId, status: 'running', totalTasks: 2, finishedTasks: [] });
    const [a, b] = workTasks(
      job,
      [
        { title: 'a', prompt: 'p' },
        { title: 'b', prompt: 'p' },
      ],
      now,
    ) as [TaskRecord, TaskRecord];
    await deps.jobs.createJob({ ...job, finishedAt: undefined });
    await deps.tasks.putTasks([
      { ...a, state: 'succeeded', finishedAt: now },
      { ...b, state: second },
    ]);
    await deps.jobs.markTaskFinished(jobId, 1, now);
    return (await deps.jobs.getJob(jobId)) as JobRecord;
  }

  const reported = async (jobId: string) => {
    const result = JSON.parse((await deps.artifacts.getText(resultJsonKey(jobId))) ?? '{}') as {
      results: { tasks: { task_no: number; status: string }[] };
    };
    return result.results.tasks.map((t) => `${t.task_no} ${t.status}`);
  };

  it('reads the tasks again when the early read still showed a sibling running', async () => {
    const job = await twoTaskJob('running');
    const early = deps.tasks.listTasks(job.jobId);
    await early;
    // The sibling ends after the early read, before the aggregation.
    await deps.tasks.cancelTask(job.jobId, 2, new Date().toISOString());
    expect(await aggregateJob(deps, job.jobId, job, early)).toBe('aggregated');
    expect(await reported(job.jobId)).toEqual(['1 succeeded', '2 cancelled']);
    expect((await deps.jobs.getJob(job.jobId))?.status).not.toBe('running');
  });

  it('reads the tasks again when the early read failed', async () => {
    const job = await twoTaskJob('succeeded');
    const early = Promise.reject(new Error('the read lost its response'));
    expect(await aggregateJob(deps, job.jobId, job, early)).toBe('aggregated');
    expect(await reported(job.jobId)).toEqual(['1 succeeded', '2 succeeded']);
    expect((await deps.jobs.getJob(job.jobId))?.status).toBe('completed');
  });

  it('uses the early read when every task in it is final', async () => {
    const job = await twoTaskJob('succeeded');
    const early = deps.tasks.listTasks(job.jobId);
    await early;
    // Were the tasks read again, the aggregation would find this one missing and wait.
    const tasks = Object.create(deps.tasks) as Deps['tasks'];
    tasks.listTasks = async () => [];
    expect(await aggregateJob({ ...deps, tasks }, job.jobId, job, early)).toBe('aggregated');
    expect(await reported(job.jobId)).toEqual(['1 succeeded', '2 succeeded']);
  });
});
