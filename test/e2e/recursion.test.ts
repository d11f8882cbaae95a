import { writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack, type TestStack } from '../support/harness.ts';

describe('explore', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack('recursion: {enable: true, max_depth: 2}');
  });
  afterAll(async () => {
    await stack?.stop();
  });
  it('tree', async () => {
    const res = await stack.api('POST', '/api/v1/orchestrate', {
      body: {
        request: 'root',
        config: { enable_recursion: true, max_recursion_depth: 2 },
        tasks: [
          { prompt: 'one' },
          { prompt: 'two [[split:3]] [[split_child:2:split:2]] [[split_all:sleep:800]]' },
          { prompt: 'three' },
          { prompt: 'use a helper [[spawn:child work;plan:2]]' },
        ],
      },
    });
    expect(res.status).toBe(202);
    const id = res.json.job_id;
    const samples: unknown[] = [];
    const t0 = Date.now();
    while (true) {
      const job = await stack.deps.store.getJob(id);
      const tasks = await stack.deps.store.listTasks(id);
      samples.push({
        t: Date.now() - t0,
        status: job?.status,
        active: stack.launcher.active,
        states: tasks.map((t) => t.state),
      });
      if (job && ['completed', 'partial', 'failed'].includes(job.status)) break;
      await new Promise((r) => setTimeout(r, 150));
    }
    const result = await stack.api('GET', `/api/v1/jobs/${id}`);
    const keys = (await stack.deps.artifacts.list(`jobs/${id}/`)).map((o) => o.key);
    const files: Record<string, string | undefined> = {};
    for (const k of keys) if (/\.(md|json)$/.test(k)) files[k] = await stack.deps.artifacts.getText(k);
    await writeFile(
      '/tmp/explore/tree.json',
      JSON.stringify(
        {
          samples,
          result: result.json,
          keys,
          files,
          inv: await stack.invocations(),
          root: await stack.deps.store.getJob(id),
        },
        null,
        2,
      ),
    );
  });
});
