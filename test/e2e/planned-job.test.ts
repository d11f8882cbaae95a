import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WorkMessage } from '../../functions/core/messages.ts';
import { mirrorJob } from '../../functions/local/mirror.ts';
import { startTestStack, type TestStack } from '../support/harness.ts';

describe('a planned request, end to end through the HTTP API', () => {
  let stack: TestStack;
  let jobId: string;
  const sent: WorkMessage[] = [];

  beforeAll(async () => {
    stack = await startTestStack('workers: {max_workers: 5}');
    // Watch what goes on the queue (the stack's handlers share this one WorkQueue).
    const queue = stack.deps.queue;
    const send = queue.send.bind(queue);
    const sendAll = queue.sendAll.bind(queue);
    queue.send = async (m, delay) => {
      sent.push(m);
      return send(m, delay);
    };
    queue.sendAll = async (ms) => {
      sent.push(...ms);
      return sendAll(ms);
    };
    // Each worker sleeps long enough that parallel runs must overlap.
    const submitted = await stack.api('POST', '/api/v1/orchestrate', {
      body: { request: 'Write a short guide in three parts [[plan:3]] [[sleep:1500]]' },
    });
    expect(submitted.status).toBe(202);
    jobId = submitted.json.job_id;
    expect(submitted.json.status).toBe('planning');
    await stack.waitForJob(jobId);
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('plans three subtasks and completes them all', async () => {
    const { status, json } = await stack.api('GET', `/api/v1/jobs/${jobId}`);
    expect(status).toBe(200);
    expect(json.status).toBe('completed');
    expect(
      json.results.tasks.map((t: { worker_id: string; status: string }) => [t.worker_id, t.status]),
    ).toEqual([
      ['worker_1', 'succeeded'],
      ['worker_2', 'succeeded'],
      ['worker_3', 'succeeded'],
    ]);
    for (const task of json.results.tasks) expect(task.files_created.length).toBeGreaterThan(0);
  });

  it('is aggregated exactly once, by the request that finished the last task (a small job needs no aggregate message)', () => {
    expect(sent.filter((m) => m.type === 'aggregate' && m.jobId === jobId)).toHaveLength(0);
    const finished = stack.logs.filter((l) => l.message === 'job finished' && l.extra?.jobId === jobId);
    expect(finished.map((l) => l.extra?.moved)).toEqual([true]);
    expect(sent.filter((m) => m.type === 'run').map((m) => (m.type === 'run' ? m.taskNo : -1))).toEqual([
      0, 1, 2, 3,
    ]);
  });

  it('runs the workers in parallel: their claude sessions overlap in time', async () => {
    const runs = (await stack.invocations()).filter((r) => r.end !== null);
    const workers = runs.filter((r) => (r.prompt ?? '').startsWith('You are worker'));
    expect(workers).toHaveLength(3);
    const latestStart = Math.max(...workers.map((r) => r.start));
    const earliestEnd = Math.min(...workers.map((r) => r.end as number));
    expect(latestStart).toBeLessThan(earliestEnd);
  });

  it('stores every worker file and log, the level report, FINAL_RESULT.md, result.json and REPORT.html in S3', async () => {
    const keys = (await stack.deps.artifacts.list(`jobs/${jobId}/`)).map((o) =>
      o.key.slice(`jobs/${jobId}/`.length),
    );
    expect(keys).toEqual(
      expect.arrayContaining([
        'depth_0/LEVEL_0_REPORT.md',
        'FINAL_RESULT.md',
        'result.json',
        'REPORT.html',
        'logs/depth_0_planner.log',
        'logs/depth_0_worker_1.log',
        'logs/depth_0_worker_2.log',
        'logs/depth_0_worker_3.log',
      ]),
    );
    for (const n of [1, 2, 3]) expect(keys.some((k) => k.startsWith(`depth_0/worker_${n}/`))).toBe(true);
    const result = JSON.parse((await stack.deps.artifacts.getText(`jobs/${jobId}/result.json`)) as string);
    expect(result.status).toBe('completed');
    expect(result.results.tasks).toHaveLength(3);
  });

  it('mirrors the S3 prefix to workspace/job_<id>/ byte for byte', async () => {
    const { dir } = await mirrorJob(stack.deps.artifacts, jobId, stack.workspace);
    const local = await listFiles(dir);
    const remote = (await stack.deps.artifacts.list(`jobs/${jobId}/`))
      .map((o) => o.key.slice(`jobs/${jobId}/`.length))
      .sort();
    expect(local).toEqual(remote);
    // The HTML report's relative log links resolve inside the local copy.
    expect(local).toContain('REPORT.html');
    const html = await readFile(join(dir, 'REPORT.html'), 'utf8');
    for (const n of [1, 2, 3]) {
      expect(html).toContain(`"log_href":"logs/depth_0_worker_${n}.log"`);
      expect(local).toContain(`logs/depth_0_worker_${n}.log`);
    }
    for (const rel of remote) {
      const bytes = await stack.deps.artifacts.getBytes(`jobs/${jobId}/${rel}`);
      expect(Buffer.compare(Buffer.from(bytes as Uint8Array), await readFile(join(dir, rel)))).toBe(0);
    }
  });

  it('serves FINAL_RESULT.md as markdown with presigned links to every artifact', async () => {
    const report = await stack.api('GET', `/api/v1/jobs/${jobId}/report`);
    expect(report.status).toBe(200);
    expect(report.headers.get('content-type')).toMatch(/^text\/markdown/);
    expect(report.text).toContain('completed');
    expect(report.text).toMatch(/\[result\.json\]\(http:\/\/127\.0\.0\.1:\d+\/.*X-Amz-Signature=/);
    const link = /\[FINAL_RESULT\.md\]\((http[^)]+)\)/.exec(report.text)?.[1] as string;
    const fetched = await fetch(link);
    expect(fetched.status).toBe(200);
    expect(await fetched.text()).toContain(jobId);
  });

  it('reports status with per-state task counts, and lists the job newest first', async () => {
    const status = await stack.api('GET', `/api/v1/jobs/${jobId}/status`);
    expect(status.json).toMatchObject({
      job_id: jobId,
      status: 'completed',
      total_tasks: 3,
      finished_tasks: 3,
    });
    expect(status.json.tasks.succeeded).toBe(3);
    const list = await stack.api('GET', '/api/v1/jobs?limit=5');
    expect(list.json.jobs[0].job_id).toBe(jobId);
  });
});

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      if (e.isDirectory()) await walk(join(d, e.name));
      else out.push(relative(dir, join(d, e.name)));
    }
  };
  await walk(dir);
  return out.sort();
}
