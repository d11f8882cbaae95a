/**
 * The hostile-worker stand-in itself: a held session hands over a real, live
 * token of its own attempt, reports its probes, and finishes normally once
 * released. The attack files build on these guarantees.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseTaskToken } from '../../functions/core/tokens.ts';
import { type HostileStack, startHostileStack } from '../support/hostile-worker.ts';

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

describe('hostile-worker stand-in', () => {
  let hostile: HostileStack;
  let scratch: string;
  let dead: number;
  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'hostile-probe-'));
    dead = await closedPort();
    // No sandbox: this checks the stand-in's own reports against the host (in a sandbox a write to /tmp
    // lands in the worker's private /tmp; test/security/local-containment.test.ts covers that).
    hostile = await startHostileStack(
      'orchestrator: {sandbox: none}',
      {},
      {
        writeTargets: [join(scratch, 'planted.txt'), '/proc/hostile-cannot-write-here'],
        probeUrls: [`http://127.0.0.1:${dead}/`],
      },
    );
  });
  afterAll(async () => {
    await hostile?.stop();
    await rm(scratch, { recursive: true, force: true });
  });

  it("captures a live token of the held task that the API accepts for that task's own assignment", async () => {
    const w = await hostile.capture({
      request: 'stand-in check',
      tasks: [{ prompt: 'hold me [[hold:own]]' }, { prompt: 'a sibling' }],
    });
    expect(w.label).toBe('own');
    expect(parseTaskToken(w.token)).toEqual({ jobId: w.jobId, taskNo: w.taskNo, attempt: w.attempt });
    expect(w.taskNo).toBe(1);
    expect(w.attempt).toBe(1);
    expect(w.apiUrl).toMatch(/^http/);
    expect(w.cwd).not.toBe('');

    // The token works while held: the attempt is live, the assignment is this task's.
    const own = await hostile.withToken(
      w.token,
      'GET',
      `/api/v1/jobs/${w.jobId}/tasks/${w.taskNo}/assignment`,
    );
    expect(own.status, own.text).toBe(200);
    expect(own.json.attempt).toBe(w.attempt);
    expect(own.json.prompt).toContain('hold me');
    expect((await hostile.deps.tasks.getTask(w.jobId, w.taskNo))?.state).toBe('running');

    // ... and without the token the same call is refused, so the 200 came from the token.
    const none = await hostile.api('GET', `/api/v1/jobs/${w.jobId}/tasks/${w.taskNo}/assignment`, {
      headers: { 'x-api-key': '' },
    });
    expect(none.status).toBe(401);

    await w.release();
    expect(await hostile.waitForJob(w.jobId)).toBe('completed');
    const task = await hostile.deps.tasks.getTask(w.jobId, w.taskNo);
    expect(task?.state).toBe('succeeded');
    expect(task?.result?.output).toMatch(/hold: released/);
  });

  it('reports what the session could write and reach', async () => {
    const w = await hostile.capture({ request: 'probes', tasks: [{ prompt: 'probe [[hold:probe]]' }] });
    // Each probe reports what really happened, whatever containment is in force.
    const planted = join(scratch, 'planted.txt');
    const writes = Object.fromEntries(w.probes.writes.map((p) => [p.path, p.written]));
    expect(Object.keys(writes).sort()).toEqual([planted, '/proc/hostile-cannot-write-here'].sort());
    expect(writes['/proc/hostile-cannot-write-here']).toBe(false);
    const content = await readFile(planted, 'utf8').catch(() => undefined);
    if (writes[planted]) expect(content).toMatch(/^written by hostile worker/);
    else expect(content).toBeUndefined();
    expect(w.probes.connections).toEqual([
      expect.objectContaining({ url: `http://127.0.0.1:${dead}/`, connected: false }),
    ]);
    expect(typeof w.probes.secrets).toBe('object');
    await w.release();
    expect(await hostile.waitForJob(w.jobId)).toBe('completed');
  });

  it('holds the planner with [[hold_plan:LABEL]] in the request, and not the workers', async () => {
    const w = await hostile.capture({ request: 'plan this [[hold_plan:planner]] [[plan:2]]' });
    expect(w.taskNo).toBe(0);
    expect((await hostile.deps.jobs.getJob(w.jobId))?.status).toBe('planning');
    await w.release();
    expect(await hostile.waitForJob(w.jobId)).toBe('completed');
    // Work sessions quote the request, yet only the planner held.
    expect(hostile.reports().filter((r) => r.jobId === w.jobId)).toHaveLength(1);
  });
});
