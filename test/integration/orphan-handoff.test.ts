/**
 * Found by FAULT_SEED=40035032 (worker-crashes): a worker asked to hand its
 * subtask to a child job, and its attempt ended (the worker was killed and
 * found lost) between the API's check of its token and the hand-off's write.
 * The child job was created and ran with nobody waiting for it; its root
 * ended while it still ran. Now such a child is cancelled before any of its
 * tasks is sent, and the worker is told its attempt is over.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WorkMessage } from '../../functions/core/messages.ts';
import { createChildJob } from '../../functions/services/children.ts';
import { recordLostWorker } from '../../functions/services/record-result.ts';
import { startTestStack, type TestStack } from '../support/harness.ts';

describe('a hand-off whose attempt ends in the middle of it', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack('workers: {max_retries: 0}\nrecursion: {enable: true, max_depth: 2}');
  });
  afterAll(async () => {
    await stack?.stop();
  });

  /** A job whose one worker hangs, once that worker runs: the parent of the hand-offs below. */
  async function runningParent(request: string): Promise<{ jobId: string; taskNo: number; attempt: number }> {
    const { job_id: jobId } = await stack.client.orchestrate({
      request,
      config: { enable_recursion: true },
      tasks: [{ prompt: `${request} [[hang]]` }],
    });
    for (let i = 0; i < 100 && (await stack.deps.tasks.getTask(jobId, 1))?.state !== 'running'; i++)
      await new Promise((r) => setTimeout(r, 100));
    return { jobId, taskNo: 1, attempt: 1 };
  }

  it('cancels the child job before it runs, and refuses the hand-off with 409', async () => {
    const scope = await runningParent('parent');
    const { jobId } = scope;

    // The lost-worker write lands just before the hand-off's own.
    const tasks = stack.deps.tasks;
    const handoff = tasks.handoffToChild.bind(tasks);
    tasks.handoffToChild = async (...args) => {
      await recordLostWorker(stack.deps, scope, 'worker killed by SIGKILL');
      return handoff(...args);
    };
    const sent: WorkMessage[] = [];
    const sendAll = stack.deps.queue.sendAll.bind(stack.deps.queue);
    stack.deps.queue.sendAll = async (ms) => {
      sent.push(...ms);
      return sendAll(ms);
    };
    try {
      const refused = await createChildJob(stack.deps, {
        scope,
        body: { request: 'child', tasks: [{ prompt: 'part one' }, { prompt: 'part two' }] },
        mode: 'handoff',
      }).catch((e: unknown) => e);
      expect(refused).toMatchObject({ statusCode: 409 });
      const childId = /child job (\w+) was cancelled/.exec((refused as Error).message)?.[1] as string;
      expect((await stack.deps.jobs.getJob(childId))?.status).toBe('cancelled');
      expect(sent.filter((m) => m.type === 'run' && m.jobId === childId)).toEqual([]);
      expect(await stack.waitForJob(childId)).toBe('cancelled');
      expect(await stack.waitForJob(jobId)).toBe('failed');
      // The cancel message then cancels its tasks (none ever ran).
      let states: string[] = [];
      for (let i = 0; i < 100; i++) {
        states = (await stack.deps.tasks.listTasks(childId)).map((t) => t.state);
        if (states.every((s) => s === 'cancelled')) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(states).toEqual(['cancelled', 'cancelled']);
    } finally {
      tasks.handoffToChild = handoff;
      stack.deps.queue.sendAll = sendAll;
    }
  });

  it('a retried hand-off whose first call failed after creating the child records the hand-off and runs the child', async () => {
    // Found by FAULT_SEED=20261201 (sdk-faults): the first call created the child, then failed on
    // the hand-off's write; the retry found the child and answered at once, so nothing waited for it.
    const scope = await runningParent('parent two');
    const { jobId } = scope;
    const tasks = stack.deps.tasks;
    const handoff = tasks.handoffToChild.bind(tasks);
    let failures = 1;
    tasks.handoffToChild = async (...args) => {
      if (failures-- > 0)
        throw Object.assign(new Error('injected: the hand-off write failed'), {
          name: 'InternalServerError',
        });
      return handoff(...args);
    };
    try {
      const request = {
        scope,
        body: { request: 'child two', tasks: [{ prompt: 'part one' }, { prompt: 'part two' }] },
        mode: 'handoff' as const,
      };
      await expect(createChildJob(stack.deps, request)).rejects.toThrow(/hand-off write failed/);
      const again = await createChildJob(stack.deps, request);
      expect(again.created).toBe(false);
      const parentTask = await stack.deps.tasks.getTask(jobId, 1);
      expect(parentTask).toMatchObject({ state: 'waiting_on_child', childJobId: again.job.jobId });
      // Asked once more (that answer lost too): the same child, not a refusal.
      const third = await createChildJob(stack.deps, request);
      expect(third).toMatchObject({ created: false, job: { jobId: again.job.jobId } });
      expect(await stack.waitForJob(again.job.jobId, 60_000)).toBe('completed');
      expect(await stack.waitForJob(jobId, 60_000)).toBe('completed');
    } finally {
      tasks.handoffToChild = handoff;
    }
  });
});
