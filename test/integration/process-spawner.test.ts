/**
 * Local workers are started by a small helper process, so that a fork of the
 * big local-mode process never stops its event loop. What the launcher relies
 * on: exit codes and signals, the end of stderr, fd 3 for bubblewrap's info,
 * signals that reach the process, a helper that dies taking its workers'
 * reports with it, and a helper that never keeps the orchestrator alive.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { ProcessSpawner, type SpawnedProcess } from '../../functions/local/process-spawner.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

function closed(proc: SpawnedProcess) {
  return new Promise<{ code: number | null; signal: string | null; stderr: string }>((resolve) =>
    proc.once('close', (code, signal, stderr) => resolve({ code, signal, stderr })),
  );
}

/** The process has ended: no longer there, or a zombie nobody reaped yet. */
function gone(pid: number): boolean {
  for (let i = 0; i < 40; i++) {
    let state: string;
    try {
      state = /^State:\s+(\S)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? '';
    } catch {
      return true;
    }
    if (state === 'Z') return true;
    spawnSync('/bin/sleep', ['0.05']);
  }
  return false;
}

describe('the worker spawner', () => {
  const spawners: ProcessSpawner[] = [];
  const make = () => {
    const s = new ProcessSpawner();
    spawners.push(s);
    return s;
  };
  afterEach(() => {
    for (const s of spawners.splice(0)) s.close();
  });

  it('runs a process with the environment given, and reports its exit code and the end of its stderr', async () => {
    const proc = make().spawn(
      process.execPath,
      ['-e', "process.stderr.write('x'.repeat(5000) + 'env=' + process.env.ONLY_THIS); process.exit(3)"],
      { ONLY_THIS: 'yes', PATH: process.env.PATH },
    );
    const end = await closed(proc);
    expect(end.code).toBe(3);
    expect(end.stderr).toHaveLength(4000);
    expect(end.stderr.endsWith('env=yes')).toBe(true);
    expect(proc.exited).toBe(true);
    expect(proc.pid).toBeGreaterThan(0);
  });

  it('passes on what the process writes to fd 3, when asked to', async () => {
    const proc = make().spawn(
      process.execPath,
      ['-e', 'require("node:fs").writeSync(3, JSON.stringify({ "child-pid": 42 }))'],
      { PATH: process.env.PATH },
      { infoFd: true },
    );
    let info = '';
    proc.on('info', (t) => {
      info += t;
    });
    expect((await closed(proc)).code).toBe(0);
    expect(JSON.parse(info)).toEqual({ 'child-pid': 42 });
  });

  it('delivers a signal, even one sent before the helper reported the start', async () => {
    const proc = make().spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)'], {
      PATH: process.env.PATH,
    });
    proc.kill('SIGTERM');
    expect(await closed(proc)).toMatchObject({ code: null, signal: 'SIGTERM' });
  });

  it('takes the processes a worker started with it when it kills the worker with SIGKILL', async () => {
    // The "worker" starts a long child (as a worker starts claude) and names it on stderr.
    const proc = make().spawn(
      process.execPath,
      [
        '-e',
        `const c = require('node:child_process').spawn('/bin/sleep', ['30'], { stdio: 'ignore' });
         process.stderr.write('child=' + c.pid + '\\n'); setTimeout(() => {}, 60_000);`,
      ],
      { PATH: process.env.PATH },
    );
    const pid = await new Promise<number>((resolve) => {
      const poll = setInterval(() => {
        // The helper keeps stderr until the end; the child's pid is read from /proc instead.
        if (proc.pid === undefined) return;
        const kids = spawnSync('pgrep', ['-P', String(proc.pid)], { encoding: 'utf8' }).stdout.trim();
        if (kids) {
          clearInterval(poll);
          resolve(Number(kids.split('\n')[0]));
        }
      }, 50);
    });
    proc.kill('SIGKILL');
    const end = await closed(proc);
    expect(end.signal).toBe('SIGKILL');
    expect(end.stderr).toContain(`child=${pid}`);
    expect(gone(pid)).toBe(true);
  });

  it('reports a worker closed once it exited, even while something it started still holds its stderr', async () => {
    const t0 = Date.now();
    // A descendant in a session of its own (out of the worker's group) inherits stderr and outlives it.
    const proc = make().spawn(
      process.execPath,
      [
        '-e',
        `const c = require('node:child_process').spawn('/bin/sleep', ['30'], { stdio: ['ignore', 'ignore', 'inherit'], detached: true });
         process.stderr.write('held=' + c.pid + '\\n'); c.unref(); process.exit(4);`,
      ],
      { PATH: process.env.PATH },
    );
    const end = await closed(proc);
    const held = Number(/held=(\d+)/.exec(end.stderr)?.[1]);
    if (held > 0) process.kill(held, 'SIGKILL');
    expect(end.code).toBe(4);
    expect(held).toBeGreaterThan(0);
    expect(Date.now() - t0).toBeLessThan(10_000);
  });

  it('reports the process closed when it cannot be started', async () => {
    const end = await closed(make().spawn('/nonexistent/worker', [], {}));
    expect(end.code).not.toBe(0);
    expect(end.stderr).toMatch(/ENOENT/);
  });

  it('kills its running workers and reports them closed when the helper dies, and starts a new helper for the next', async () => {
    const spawner = make();
    const proc = spawner.spawn('/bin/sleep', ['30'], { PATH: process.env.PATH });
    const end = closed(proc);
    await new Promise((r) => setTimeout(r, 200));
    const helper = spawner.helperPid;
    expect(helper).toBeGreaterThan(0);
    process.kill(helper as number, 'SIGKILL');
    expect(await end).toMatchObject({ signal: 'SIGKILL', stderr: 'the worker spawner exited' });
    // Reported closed, and closed: it does not outlive its helper.
    expect(gone(proc.pid as number)).toBe(true);
    const next = spawner.spawn('/bin/true', [], { PATH: process.env.PATH });
    expect((await closed(next)).code).toBe(0);
    expect(spawner.helperPid).not.toBe(helper);
  });

  it('keeps the orchestrator alive while a worker runs, and not after', () => {
    const probe = `
      import { register } from 'tsx/esm/api';
      register();
      const { ProcessSpawner } = await import('./functions/local/process-spawner.ts');
      const spawner = new ProcessSpawner();
      spawner.warm();
      const t0 = Date.now();
      spawner.spawn('/bin/sleep', ['1'], { PATH: process.env.PATH }).on('close', (code) => {
        console.log(JSON.stringify({ code, waitedMs: Date.now() - t0 }));
      });
    `;
    const t0 = Date.now();
    const out = spawnSync(process.execPath, ['--input-type=module', '-e', probe], {
      cwd: REPO,
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(out.status, out.stderr).toBe(0);
    expect(JSON.parse(out.stdout.trim())).toMatchObject({ code: 0 });
    expect(JSON.parse(out.stdout.trim()).waitedMs).toBeGreaterThanOrEqual(900);
    // The process ended with its worker, not when something timed out.
    expect(Date.now() - t0).toBeLessThan(15_000);
  });
});
