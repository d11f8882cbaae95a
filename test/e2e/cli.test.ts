import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createAwsClients } from '../../functions/adapters/aws-clients.ts';
import { JobStore } from '../../functions/adapters/job-store.ts';
import { startEmulators } from '../../functions/local/emulators.ts';
import { CLAUDE_DOUBLE } from '../support/harness.ts';
import { BIN, type BinRun, runBin } from '../support/run-bin.ts';

type Run = BinRun;

/** Runs the real bin from an empty directory, as a user on a fresh clone would. */
function orchestrator(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return runBin(args, { cwd, env: { ...process.env, ...env } });
}

describe('the orchestrator command', () => {
  const dirs: string[] = [];
  const children: ChildProcess[] = [];
  async function freshDir(): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'orch-cli-'));
    dirs.push(dir);
    return dir;
  }
  afterEach(async () => {
    for (const c of children.splice(0)) c.kill('SIGKILL');
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });

  it('run: takes a request to FINAL_RESULT.md in workspace/job_<id>/ and exits 0', async () => {
    const cwd = await freshDir();
    const run = await orchestrator(
      ['run', 'Write two notes [[plan:2]]', '--claude-command', CLAUDE_DOUBLE],
      cwd,
    );
    expect(run.code, run.stderr).toBe(0);
    const reportPath = /report: (.+FINAL_RESULT\.md)/.exec(run.stdout)?.[1] as string;
    expect(reportPath).toMatch(new RegExp(`^${cwd}/workspace/job_[0-9a-f]{20}/FINAL_RESULT\\.md$`));
    const report = await readFile(reportPath, 'utf8');
    expect(report).toMatch(/completed/);
    // The log tells what finished, not only what was launched or failed.
    const logLines = (await readFile(join(cwd, 'workspace', 'orchestrator.log'), 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const finished = logLines.filter((l) => l.message === 'worker finished');
    expect(finished.map((l) => l.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    expect(logLines.find((l) => l.message === 'job finished')).toMatchObject({
      status: 'completed',
      tasks: 3,
      succeeded: 3,
    });
    const jobDir = reportPath.replace(/FINAL_RESULT\.md$/, '');
    for (const f of [
      'result.json',
      'depth_0/LEVEL_0_REPORT.md',
      'logs/depth_0_worker_1.log',
      'logs/depth_0_worker_2.log',
    ]) {
      expect(existsSync(join(jobDir, f)), f).toBe(true);
    }
    // One total everywhere, the planner's session included: the summary printed, result.json and the report.
    const result = JSON.parse(await readFile(join(jobDir, 'result.json'), 'utf8'));
    const workers = result.results.tasks.reduce((s: number, t: { cost_usd: number }) => s + t.cost_usd, 0);
    expect(result.planning.cost_usd).toBeGreaterThan(0);
    expect(result.cost.total_usd).toBeCloseTo(workers + result.planning.cost_usd, 6);
    const usd = (n: number) => `$${n.toFixed(4)}`;
    expect(run.stdout).toContain(
      `cost: ${usd(result.cost.total_usd)} (workers ${usd(workers)}, planning ${usd(result.planning.cost_usd)})`,
    );
    expect(report).toContain(`- Total cost: ${usd(result.cost.total_usd)} `);
  });

  it('run --json prints the result object; a failed job exits 1', async () => {
    const cwd = await freshDir();
    const run = await orchestrator(
      [
        'run',
        'This cannot work [[fail]]',
        '--claude-command',
        CLAUDE_DOUBLE,
        '--retries',
        '0',
        '--json',
        '--workspace',
        join(cwd, 'ws'),
      ],
      cwd,
    );
    expect(run.code).toBe(1);
    const result = JSON.parse(run.stdout);
    expect(result.status).toBe('failed');
    expect(result.error).toMatch(/planning failed/);
    expect(existsSync(result.local_final_report)).toBe(true);
  });

  it('run: Ctrl-C cancels the job on the server, still mirrors what finished, and exits 130', async () => {
    const cwd = await freshDir();
    const child = spawn(
      process.execPath,
      [
        BIN,
        'run',
        'One quick, one endless',
        '--task',
        'Quick note',
        '--task',
        'Never ends [[hang]]',
        '--workers',
        '2',
        '--claude-command',
        CLAUDE_DOUBLE,
        '--no-repo',
      ],
      { cwd, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    children.push(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => {
      stdout += c;
    });
    const quickDone = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`worker_1 never finished:\n${stderr}`)), 60_000);
      child.stderr.on('data', (c) => {
        stderr += c;
        if (/worker_1\s+succeeded/.test(stderr)) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    await quickDone;
    child.kill('SIGINT');
    const code = await new Promise<number | null>((r) => child.once('close', r));
    expect(code, stderr).toBe(130);
    expect(stderr).toMatch(/interrupted: cancelling the job and keeping what finished/);
    expect(stdout).toMatch(/Job [0-9a-f]{20}: CANCELLED/);
    expect(stdout).toMatch(/- worker_1 succeeded/);
    const jobDir = /files: (\S+)/.exec(stdout)?.[1] as string;
    expect(existsSync(join(jobDir, 'depth_0', 'worker_1'))).toBe(true);
    expect(await readFile(join(jobDir, 'FINAL_RESULT.md'), 'utf8')).toMatch(/cancelled/i);
  });

  it('run: with AWS_ENDPOINT_URL_* set (e.g. LocalStack) it uses those endpoints instead of starting emulators', async () => {
    const cwd = await freshDir();
    const emulators = await startEmulators();
    try {
      const run = await orchestrator(
        ['run', 'External [[plan:1]]', '--claude-command', CLAUDE_DOUBLE, '--json'],
        cwd,
        emulators.env,
      );
      expect(run.code, run.stderr).toBe(0);
      expect(run.stderr).toMatch(/external endpoints/);
      const jobId = JSON.parse(run.stdout).job_id as string;
      // The job lives in the emulator we started, which outlives the command.
      const jobs = new JobStore(createAwsClients(emulators.env).ddb, 'claude-orchestrator');
      expect((await jobs.getJob(jobId))?.status).toBe('completed');
    } finally {
      await emulators.stop();
    }
  });

  it('fails fast with the fix when the claude executable cannot be found', async () => {
    const cwd = await freshDir();
    const run = await orchestrator(['run', 'hello', '--claude-command', 'definitely-not-claude-xyz'], cwd);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/cannot find the claude executable "definitely-not-claude-xyz"/);
    expect(run.stderr).toMatch(/npm install -g @anthropic-ai\/claude-code/);
  });

  it('stops at start-up on a bad config value, naming the option and the reason', async () => {
    const cwd = await freshDir();
    await writeFile(join(cwd, 'bad.yaml'), 'workers:\n  max_workers: 0\n');
    const run = await orchestrator(
      ['run', 'hello', '--config', 'bad.yaml', '--claude-command', CLAUDE_DOUBLE],
      cwd,
    );
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/workers\.max_workers/);
    expect(run.stderr).toMatch(/>=\s*1|at least|too small/i);
  });

  it('serve: prints API_URL and API_KEY when ready, answers, and stops cleanly on SIGTERM', async () => {
    const cwd = await freshDir();
    const child = spawn(process.execPath, [BIN, 'serve', '--port', '0', '--claude-command', CLAUDE_DOUBLE], {
      cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let stdout = '';
    const ready = new Promise<{ url: string; key: string }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`serve not ready: ${stdout}`)), 20_000);
      child.stdout.on('data', (c) => {
        stdout += c;
        const url = /^API_URL=(http:\/\/127\.0\.0\.1:\d+)$/m.exec(stdout)?.[1];
        const key = /^API_KEY=(\S+)$/m.exec(stdout)?.[1];
        if (url && key && /^TABLE_NAME=/m.test(stdout)) {
          clearTimeout(timer);
          resolve({ url, key });
        }
      });
    });
    const { url, key } = await ready;
    const list = await fetch(`${url}/api/v1/jobs`, { headers: { 'x-api-key': key } });
    expect(list.status).toBe(200);
    expect((await fetch(`${url}/api/v1/jobs`)).status).toBe(401);

    // `orchestrator keys` manages the running server's keys from another process, as it does for a deployment.
    const keysEnv = {
      AWS_ENDPOINT_URL_DYNAMODB: /^AWS_ENDPOINT_URL_DYNAMODB=(\S+)$/m.exec(stdout)?.[1] as string,
      // The embedded DynamoDB answers only holders of the stack's secret, which serve prints for this.
      ORCHESTRATOR_EMULATOR_SECRET: /^ORCHESTRATOR_EMULATOR_SECRET=(\S+)$/m.exec(stdout)?.[1] as string,
    };
    expect(keysEnv.ORCHESTRATOR_EMULATOR_SECRET).toMatch(/^[0-9a-f]{64}$/);
    // Without it, the endpoint refuses `keys` as it refuses a worker.
    const refused = await orchestrator(
      ['keys', 'list', '--table', /^TABLE_NAME=(\S+)$/m.exec(stdout)?.[1] as string],
      cwd,
      { AWS_ENDPOINT_URL_DYNAMODB: keysEnv.AWS_ENDPOINT_URL_DYNAMODB },
    );
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/AccessDenied/);
    const table = /^TABLE_NAME=(\S+)$/m.exec(stdout)?.[1] as string;
    const created = await orchestrator(
      ['keys', 'create', '--tenant', 'team-b', '--table', table],
      cwd,
      keysEnv,
    );
    expect(created.code, created.stderr).toBe(0);
    const teamKey = /^API_KEY=(\S+)$/m.exec(created.stdout)?.[1] as string;
    const keyId = /^KEY_ID=(\S+)/m.exec(created.stdout)?.[1] as string;
    expect((await fetch(`${url}/api/v1/jobs`, { headers: { 'x-api-key': teamKey } })).status).toBe(200);
    const revoked = await orchestrator(['keys', 'revoke', keyId, '--table', table], cwd, keysEnv);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect((await fetch(`${url}/api/v1/jobs`, { headers: { 'x-api-key': teamKey } })).status).toBe(401);

    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    const stoppedAt = Date.now();
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(Date.now() - stoppedAt).toBeLessThan(10_000);
  });
});
