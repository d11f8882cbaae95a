import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { OrchestratorClient } from '../../functions/client/orchestrator-client.ts';
import { CLAUDE_DOUBLE } from '../support/harness.ts';
import { BIN } from '../support/run-bin.ts';

/** Starts `orchestrator serve` in `cwd` with a fixed key; resolves once it prints its API_URL. */
async function serve(cwd: string, key: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [BIN, 'serve', '--port', '0', '--claude-command', CLAUDE_DOUBLE], {
    cwd,
    env: { ...process.env, ORCHESTRATOR_API_KEY: key },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve not ready: ${out}`)), 30_000);
    child.stdout?.on('data', (c) => {
      out += c;
      const found = /^API_URL=(\S+)$/m.exec(out)?.[1];
      if (found && /^TABLE_NAME=/m.test(out)) {
        clearTimeout(timer);
        resolve(found);
      }
    });
    child.once('close', (code) => reject(new Error(`serve exited with ${code}: ${out}`)));
  });
  return { child, url };
}

async function stop(child: ChildProcess): Promise<void> {
  const closed = new Promise((r) => child.once('close', r));
  child.kill('SIGTERM');
  await closed;
}

describe('orchestrator serve, stopped and started again on the same workspace', () => {
  const dirs: string[] = [];
  const children: ChildProcess[] = [];
  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL');
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('still answers for the jobs that finished before: status, result, report and its links', async () => {
    const cwd = await mkdtemp(join(tmpdir(), 'orch-restart-'));
    dirs.push(cwd);
    const key = `cok_${'r'.repeat(43)}`;

    const first = await serve(cwd, key);
    children.push(first.child);
    const before = new OrchestratorClient(first.url, key);
    const { job_id: jobId } = await before.orchestrate({
      request: 'two notes',
      tasks: [{ prompt: 'First note [[files:2]]' }, { prompt: 'Second note' }],
    });
    const done = await before.wait(jobId, { timeoutMs: 60_000, pollMs: 200 });
    expect(done.status).toBe('completed');
    const reportBefore = await before.report(jobId);
    await stop(first.child);
    expect(existsSync(join(cwd, 'workspace', '.state', 's3'))).toBe(true);

    const second = await serve(cwd, key);
    children.push(second.child);
    const after = new OrchestratorClient(second.url, key);
    expect((await after.status(jobId)).status).toBe('completed');
    const result = await after.result(jobId);
    expect(result.results.tasks.map((t) => [t.worker_id, t.status, t.files_created.length])).toEqual(
      done.results.tasks.map((t) => [t.worker_id, t.status, t.files_created.length]),
    );
    expect((await after.jobs()).jobs.map((j) => j.job_id)).toContain(jobId);
    const report = await after.report(jobId);
    // The stored report, unchanged; links are signed anew for the new server.
    expect(report.split('## Artifact links')[0]).toBe(reportBefore.split('## Artifact links')[0]);
    const links = [...report.matchAll(/\]\((http[^)]+)\) \((\d+) bytes\)/g)];
    expect(links.length).toBeGreaterThanOrEqual(6);
    for (const [, href, size] of links) {
      const res = await fetch(href as string);
      expect(res.status, href).toBe(200);
      expect((await res.arrayBuffer()).byteLength).toBe(Number(size));
    }
    // And it keeps working: a new job runs on the restarted server.
    const next = await after.orchestrate({ request: 'one more', tasks: [{ prompt: 'Third note' }] });
    expect((await after.wait(next.job_id, { timeoutMs: 60_000, pollMs: 200 })).status).toBe('completed');
    await stop(second.child);
  });
});
