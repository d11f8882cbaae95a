import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLAUDE_DOUBLE } from '../support/harness.ts';
import { BIN, runBin } from '../support/run-bin.ts';

const VERSION = (
  JSON.parse(readFileSync(fileURLToPath(new URL('../../package.json', import.meta.url)), 'utf8')) as {
    version: string;
  }
).version;

/** A line the command printed, and when this test saw it. */
interface SeenLine {
  at: number;
  text: string;
}

/** Runs the bin, keeping each stderr line with the time it arrived. */
function follow(
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; stdout: string; lines: SeenLine[] }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let partial = '';
    const lines: SeenLine[] = [];
    child.stdout.on('data', (c) => {
      stdout += c;
    });
    child.stderr.on('data', (c: Buffer) => {
      partial += c.toString();
      const parts = partial.split('\n');
      partial = parts.pop() ?? '';
      for (const text of parts) lines.push({ at: Date.now(), text });
    });
    child.on('close', (code) => resolve({ code, stdout, lines }));
  });
}

describe('the remote commands against `orchestrator serve`', () => {
  let dir: string;
  let server: ChildProcess;
  let env: NodeJS.ProcessEnv;
  let stateDir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'orch-remote-'));
    stateDir = join(dir, 'double-state');
    await writeFile(
      join(dir, 'config.yaml'),
      [
        // The double records when it acts in a folder outside its own, so it runs unjailed here.
        'orchestrator: {sandbox: none, worker_env: [CLAUDE_DOUBLE_STATE_DIR]}',
        'workers: {max_workers: 3, max_retries: 0, progress_interval_ms: 500}',
      ].join('\n'),
    );
    server = spawn(process.execPath, [BIN, 'serve', '--port', '0', '--claude-command', CLAUDE_DOUBLE], {
      cwd: dir,
      env: { ...process.env, CLAUDE_DOUBLE_STATE_DIR: stateDir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const { url, key } = await new Promise<{ url: string; key: string }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`serve not ready: ${out}`)), 30_000);
      server.stdout?.on('data', (c) => {
        out += c;
        const url = /^API_URL=(\S+)$/m.exec(out)?.[1];
        const key = /^API_KEY=(\S+)$/m.exec(out)?.[1];
        if (url && key) {
          clearTimeout(timer);
          resolve({ url, key });
        }
      });
    });
    env = { ...process.env, ORCHESTRATOR_API_URL: url, ORCHESTRATOR_API_KEY: key };
  });
  afterAll(async () => {
    server?.kill('SIGTERM');
    await new Promise((r) => server?.once('close', r));
    await rm(dir, { recursive: true, force: true });
  });

  const bin = (...args: string[]) => runBin(args, { env });

  it('--version prints the version; usage errors exit 64, not a job outcome', async () => {
    const version = await bin('--version');
    expect(version).toMatchObject({ code: 0, stdout: `${VERSION}\n` });
    const missing = await bin('status');
    expect(missing.code).toBe(64);
    expect(missing.stderr).toMatch(/missing required argument 'job'/);
    const unknown = await bin('jobs', '--nope');
    expect(unknown.code).toBe(64);
    const noUrl = await runBin(['status', 'x'], { env: { ...process.env, ORCHESTRATOR_API_URL: '' } });
    expect(noUrl.code).toBe(64);
    expect(noUrl.stderr).toBe('orchestrator: --api-url <url> (or ORCHESTRATOR_API_URL) is required\n');
  });

  it('an API refusal is one line and exit 1', async () => {
    const run = await bin('status', 'ffffffffffffffffffff');
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(
      /^orchestrator: GET \/api\/v1\/jobs\/ffffffffffffffffffff\/status -> 404: job \S+ not found\n$/,
    );
    const bad = await bin('submit', '   ');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/request: must not be empty/);
  });

  it("watch shows each worker's new action within 2 s, then the job's outcome; result, report, logs and jobs read it", async () => {
    // The worker waits a little first, so `watch` (a process of its own) is following when the steps come.
    const submitted = await bin(
      'submit',
      'Take steps',
      '--task',
      'Step it [[sleep:3000]] [[steps:4:1000]]',
      '--workers',
      '1',
    );
    expect(submitted.code, submitted.stderr).toBe(0);
    const jobId = submitted.stdout.trim();
    expect(jobId).toMatch(/^[0-9a-f]{20}$/);

    const watched = await follow(['watch', jobId], env);
    expect(watched.code).toBe(0);
    const printed = (await readFile(join(stateDir, 'steps.jsonl'), 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { step: number; at: number });
    expect(printed.map((p) => p.step)).toEqual([1, 2, 3, 4]);
    const following = watched.lines[0]?.at ?? 0;
    for (const { step, at } of printed) {
      const line = watched.lines.find((l) => l.text.includes(`Bash echo step ${step}`));
      expect(line, `step ${step} in:\n${watched.lines.map((l) => l.text).join('\n')}`).toBeDefined();
      // Measured from when the step happened or `watch` was up, whichever came later.
      expect((line as SeenLine).at - Math.max(at, following), `step ${step}`).toBeLessThan(2_000);
    }
    expect(printed.filter((p) => p.at > following).length, 'steps while watch followed').toBeGreaterThan(1);
    expect(watched.lines.map((l) => l.text)).toContainEqual(
      expect.stringMatching(new RegExp(`^job ${jobId} completed: 1/1 finished`)),
    );

    const result = await bin('result', jobId);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ job_id: jobId, status: 'completed' });
    const report = await bin('report', jobId);
    expect(report.stdout).toMatch(/^# /);
    expect(report.stdout).toMatch(/Artifact links/);
    const log = await bin('logs', jobId, 'worker_1');
    expect(log.code).toBe(0);
    expect(log.stdout).toMatch(/\[turn 4\] Bash echo step 4/);
    const jobs = await bin('jobs', '--limit', '5');
    expect(jobs.stdout.split('\n')[0]).toMatch(/^JOB\s+STATUS\s+TASKS\s+CREATED\s+REQUEST$/);
    expect(jobs.stdout).toContain(jobId);
    const status = await bin('status', jobId);
    expect(status.stdout).toMatch(new RegExp(`^${jobId} completed: \\d+/\\d+ finished`));
  });

  it('logs -f follows a running worker to its end; cancel stops a job and watch exits 3', async () => {
    const submitted = await bin('submit', 'Slow steps', '--task', 'Step [[steps:3:700]]');
    const jobId = submitted.stdout.trim();
    let followed = await bin('logs', '-f', jobId, 'worker_1');
    for (let i = 0; i < 20 && followed.code !== 0; i++) {
      await new Promise((r) => setTimeout(r, 300));
      followed = await bin('logs', '-f', jobId, 'worker_1');
    }
    expect(followed.code, followed.stderr).toBe(0);
    expect(followed.stdout).toMatch(/\[turn 3\] Bash echo step 3/);
    expect(followed.stdout).toMatch(/-> succeeded/);

    const long = await bin('submit', 'Wait [[sleep:60000]]');
    const longId = long.stdout.trim();
    const watching = follow(['watch', longId], env);
    await new Promise((r) => setTimeout(r, 1500));
    const cancelled = await bin('cancel', longId);
    expect(cancelled.code).toBe(0);
    expect(cancelled.stdout).toMatch(new RegExp(`^${longId} (cancelled|running|planning)\\n$`));
    const watched = await watching;
    expect(watched.code).toBe(3);
    // Cancelling again succeeds and says where the job is, like every repeated call here.
    const again = await bin('cancel', longId);
    expect(again).toMatchObject({ code: 0, stdout: `${longId} cancelled\n` });
  });
});
