/**
 * A child job that outlives its root (spawned without waiting) still shows in
 * the root's reports. The root's aggregation reads the tree, writes the
 * reports, then sets its final status; a child that ends in between sees the
 * root still open and leaves the reports alone. The root must notice.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resultJsonKey } from '../../functions/core/layout.ts';
import type { JobRecord } from '../../functions/core/model.ts';
import { aggregateJob } from '../../functions/services/aggregate.ts';
import type { Deps } from '../../functions/services/deps.ts';
import { workTasks } from '../../functions/services/submit-job.ts';
import { type EmulatorDeps, startEmulatorDeps } from '../support/emulator-deps.ts';
import { makeJob } from '../support/records.ts';

describe("the root's reports when a child ends while the root is being aggregated", () => {
  let emulators: EmulatorDeps;
  let deps: Deps;

  beforeAll(async () => {
    emulators = await startEmulatorDeps('tree-reports');
    deps = emulators.deps;
  });
  afterAll(async () => {
    await emulators?.stop();
  });

  /** A root whose one task succeeded and was counted, and an open child spawned by that task. */
  async function rootWithOpenChild(): Promise<{ root: JobRecord; child: JobRecord }> {
    const now = new Date().toISOString();
    const rootId = randomBytes(10).toString('hex');
    const open: Partial<JobRecord> = { status: 'running', finishedTasks: [], finishedAt: undefined };
    const root = makeJob({ ...open, jobId: rootId, rootJobId: rootId, totalTasks: 1, hasChildren: true });
    const [task] = workTasks(root, [{ title: 't', prompt: 'p' }], now);
    await deps.tasks.putTasks([
      { ...(task as NonNullable<typeof task>), state: 'succeeded', finishedAt: now },
    ]);
    await deps.jobs.createJob(root);
    await deps.jobs.markTaskFinished(rootId, 1, now);
    const childId = randomBytes(10).toString('hex');
    const child = makeJob({
      ...open,
      jobId: childId,
      rootJobId: rootId,
      depth: 1,
      path: '1',
      parentJobId: rootId,
      parentTaskNo: 1,
      totalTasks: 1,
      budget: undefined,
    });
    await deps.jobs.createJob(child);
    await deps.tasks.putTasks(workTasks(child, [{ title: 'c', prompt: 'p' }], now));
    return { root, child };
  }

  const reportedStates = async (rootId: string) => {
    const result = JSON.parse((await deps.artifacts.getText(resultJsonKey(rootId))) ?? '{}') as {
      status: string;
      results: { tasks: { job_id: string; task_no: number; status: string }[] };
    };
    return {
      status: result.status,
      tasks: result.results.tasks.map((t) => `${t.job_id}/${t.task_no} ${t.status}`),
    };
  };

  it('shows the child as it ended, not as the root first read it', async () => {
    const { root, child } = await rootWithOpenChild();
    // The child ends (its task cancelled, its job aggregated) just before the root's status write.
    const jobs = Object.create(deps.jobs) as Deps['jobs'];
    let childEnded = false;
    jobs.transitionJob = async (...args) => {
      if (args[0] === root.jobId && !childEnded) {
        childEnded = true;
        await deps.tasks.cancelTask(child.jobId, 1, new Date().toISOString());
        expect(await aggregateJob(deps, child.jobId)).toBe('aggregated');
      }
      return deps.jobs.transitionJob(...args);
    };
    expect(await aggregateJob({ ...deps, jobs }, root.jobId)).toBe('aggregated');
    expect(childEnded).toBe(true);
    expect((await deps.jobs.getJob(child.jobId))?.status).toBe('failed');
    expect(await reportedStates(root.jobId)).toEqual({
      status: 'completed',
      tasks: [`${root.jobId}/1 succeeded`, `${child.jobId}/1 cancelled`],
    });
  });

  it('keeps a child that is still open as it is, and its own end rewrites the reports', async () => {
    const { root, child } = await rootWithOpenChild();
    expect(await aggregateJob(deps, root.jobId)).toBe('aggregated');
    expect((await reportedStates(root.jobId)).tasks).toEqual([
      `${root.jobId}/1 succeeded`,
      `${child.jobId}/1 queued`,
    ]);
    await deps.tasks.cancelTask(child.jobId, 1, new Date().toISOString());
    expect(await aggregateJob(deps, child.jobId)).toBe('aggregated');
    expect((await reportedStates(root.jobId)).tasks).toEqual([
      `${root.jobId}/1 succeeded`,
      `${child.jobId}/1 cancelled`,
    ]);
  });
});
