import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { finalReportKey, levelReportKey } from '../../functions/core/layout.ts';
import { startTestStack, type TestStack } from '../support/harness.ts';

describe('failures, retries and timeouts, end to end', () => {
  let stack: TestStack;
  beforeAll(async () => {
    // No sandbox: `[[as_root]]` stands for the real CLI run as root outside one (a sandbox sets IS_SANDBOX=1).
    stack = await startTestStack('orchestrator: {sandbox: none}');
  });
  afterAll(async () => {
    await stack?.stop();
  });

  async function submit(body: unknown): Promise<string> {
    const res = await stack.api('POST', '/api/v1/orchestrate', { body });
    expect(res.status).toBe(202);
    return res.json.job_id as string;
  }

  it('a subtask that always fails is retried exactly max_retries times, then the job ends partial with the reason', async () => {
    const jobId = await submit({
      request: 'three parts, one broken',
      config: { max_retries: 2 },
      tasks: [{ prompt: 'part one' }, { prompt: 'part two [[fail]]' }, { prompt: 'part three' }],
    });
    expect(await stack.waitForJob(jobId)).toBe('partial');

    const result = (await stack.api('GET', `/api/v1/jobs/${jobId}`)).json;
    const broken = result.results.tasks.find((t: { task_no: number }) => t.task_no === 2);
    expect(broken.status).toBe('failed');
    expect(broken.attempts).toBe(3);
    expect(broken.attempt_history.map((a: { attempt: number }) => a.attempt)).toEqual([1, 2, 3]);
    expect(broken.error).toMatch(/error_during_execution/);
    const runsOfBroken = (await stack.invocations()).filter(
      (r) => r.end !== null && (r.prompt ?? '').includes('part two'),
    );
    expect(runsOfBroken).toHaveLength(3);

    const finalReport = await stack.deps.artifacts.getText(finalReportKey(jobId));
    expect(finalReport).toMatch(/partial/);
    expect(finalReport).toMatch(/error_during_execution/);
    expect(await stack.deps.artifacts.getText(levelReportKey(jobId, 0))).toMatch(/error_during_execution/);
  });

  it('a worker that hangs is stopped at its timeout and ends timed_out', async () => {
    const jobId = await submit({
      request: 'one that never ends',
      config: { max_retries: 0, default_timeout: 2 },
      tasks: [{ prompt: 'wait forever [[hang]]' }],
    });
    expect(await stack.waitForJob(jobId, 30_000)).toBe('failed');
    const task = (await stack.api('GET', `/api/v1/jobs/${jobId}`)).json.results.tasks[0];
    expect(task.status).toBe('timed_out');
    expect(task.error).toMatch(/timed out after 2s/);
    expect(await stack.deps.artifacts.getText(finalReportKey(jobId))).toMatch(/timed out/);
  });

  it('a worker whose claude crashes is retried, and the crash is recorded per attempt', async () => {
    const jobId = await submit({
      request: 'crash once',
      config: { max_retries: 1 },
      tasks: [{ prompt: 'flaky [[crash]]' }],
    });
    expect(await stack.waitForJob(jobId)).toBe('failed');
    const task = (await stack.api('GET', `/api/v1/jobs/${jobId}`)).json.results.tasks[0];
    expect(task.attempts).toBe(2);
    expect(task.attempt_history[0].error).toMatch(/without a result object/);
    expect(task.attempt_history[0].exit_code).toBe(134);
  });

  it('a subtask that fails once and then succeeds ends the job completed on its second attempt', async () => {
    const jobId = await submit({
      request: 'flaky once',
      config: { max_retries: 2 },
      tasks: [{ prompt: 'recover [[fail_times:1]]' }],
    });
    expect(await stack.waitForJob(jobId)).toBe('completed');
    const task = (await stack.api('GET', `/api/v1/jobs/${jobId}`)).json.results.tasks[0];
    expect(task.attempts).toBe(2);
    expect(task.status).toBe('succeeded');
    // The retry got 1.5 times the time of the attempt before it.
    expect((await stack.deps.tasks.getTask(jobId, 1))?.timeoutSec).toBe(900);

    // Each attempt keeps its own log: the retry's does not overwrite the failure's.
    const logs = task.attempt_history.map((a: { log_key: string }) => a.log_key);
    expect(logs).toEqual([
      `jobs/${jobId}/logs/depth_0_worker_1.log`,
      `jobs/${jobId}/logs/depth_0_worker_1.attempt-2.log`,
    ]);
    expect(await stack.deps.artifacts.getText(logs[0])).toContain(`/1 attempt 1 `);
    expect(await stack.deps.artifacts.getText(logs[1])).toContain(`/1 attempt 2 `);
    expect(task.log_key).toBe(logs[1]);
    const finalReport = await stack.deps.artifacts.getText(finalReportKey(jobId));
    expect(finalReport).toContain(
      '[attempt 1](logs/depth_0_worker_1.log), [attempt 2](logs/depth_0_worker_1.attempt-2.log)',
    );

    // Both attempts are on the timeline, and the failed one counts as retry time on the critical path.
    const perf = (await stack.api('GET', `/api/v1/jobs/${jobId}`)).json.performance;
    expect(perf.timeline.map((t: { attempt: number; status: string }) => [t.attempt, t.status])).toEqual([
      [1, 'failed'],
      [2, 'succeeded'],
    ]);
    expect(perf.timeline[1].queued_at).toBe(perf.timeline[0].finished_at);
    expect(
      perf.critical_path.steps.map((s: { attempt: number; retry: boolean }) => [s.attempt, s.retry]),
    ).toEqual([
      [1, true],
      [2, false],
    ]);
    expect(perf.critical_path.retries_ms).toBeGreaterThan(0);
  });

  it('a claude that is not logged in fails the job at once, without retries, and says how to fix it', async () => {
    const started = Date.now();
    const jobId = await submit({ request: 'anything [[logged_out]]', config: { max_retries: 3 } });
    expect(await stack.waitForJob(jobId)).toBe('failed');
    const result = (await stack.api('GET', `/api/v1/jobs/${jobId}`)).json;
    expect(result.error).toMatch(/not logged in.*\/login.*ANTHROPIC_API_KEY/);
    expect(result.planning.attempts).toBe(1);
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it('a claude that refuses to run as root fails its task at once, without retries, and names the fix', async () => {
    const jobId = await submit({
      request: 'two parts, one on a root-only machine',
      config: { max_retries: 3 },
      tasks: [{ prompt: 'part one' }, { prompt: 'part two as root [[as_root]]' }],
    });
    expect(await stack.waitForJob(jobId)).toBe('partial');
    const result = (await stack.api('GET', `/api/v1/jobs/${jobId}`)).json;
    const refused = result.results.tasks.find((t: { task_no: number }) => t.task_no === 2);
    expect(refused.status).toBe('failed');
    expect(refused.attempts).toBe(1);
    expect(refused.error).toMatch(/bypassPermissions when run as root/);
    expect(refused.error).toMatch(/non-root user, or inside a sandbox/);
    expect(refused.error).toMatch(/IS_SANDBOX=1 only inside/);
    const runs = (await stack.invocations()).filter(
      (r) => r.end !== null && (r.prompt ?? '').includes('part two as root'),
    );
    expect(runs).toHaveLength(1);
  });

  it('the same run message delivered twice starts one worker', async () => {
    const jobId = await submit({
      request: 'duplicate delivery',
      tasks: [{ prompt: 'only once please [[sleep:1500]]' }],
    });
    // A second copy of the message SQS may deliver (at-least-once), sent while the first is being handled.
    await stack.deps.queue.send({ type: 'run', jobId, taskNo: 1, attempt: 1 });
    await stack.deps.queue.send({ type: 'run', jobId, taskNo: 1, attempt: 1 });
    expect(await stack.waitForJob(jobId)).toBe('completed');
    const runs = (await stack.invocations()).filter(
      (r) => (r.prompt ?? '').includes('only once please') && r.end !== null,
    );
    expect(runs).toHaveLength(1);
    expect(
      stack.logs.filter((l) => l.message.startsWith('run message dropped') && l.extra?.jobId === jobId)
        .length,
    ).toBe(2);
  });
});
