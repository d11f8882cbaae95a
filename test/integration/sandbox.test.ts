/**
 * The local workers' sandbox and the checks around it: how `orchestrator.sandbox`
 * resolves, what one bubblewrap jail allows (no capabilities even as root,
 * read-only system folders, its own folder writable), where workers' scratch
 * folders go, the preflight that stops a root run the CLI would refuse, and
 * the real CLI inside the sandbox with the user's own `claude /login` shared.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../functions/core/config.ts';
import { formatTaskToken } from '../../functions/core/tokens.ts';
import { LocalLauncher, workerScratchParent } from '../../functions/local/local-launcher.ts';
import { checkWorkerContainment, PreflightError } from '../../functions/local/preflight.ts';
import type { ProcessSpawner } from '../../functions/local/process-spawner.ts';
import {
  bwrapArgs,
  PACKAGE_ROOT,
  resolveSandbox,
  runtimePaths,
  SandboxUnavailableError,
} from '../../functions/local/sandbox.ts';
import { localWorkerBundle } from '../../functions/local/worker-bundle.ts';
import { CLAUDE_DOUBLE, startTestStack, type TestStack } from '../support/harness.ts';
import { type MessagesApi, startMessagesApi, text, toolUse } from '../support/messages-api.ts';
import { REAL_CLAUDE, realClaudeEnv } from '../support/real-claude.ts';
import { runBin } from '../support/run-bin.ts';

const isRoot = process.getuid?.() === 0;

function inside(path: string, dir: string): boolean {
  const rel = relative(dir, path);
  return rel === '' || (!rel.startsWith('..') && !rel.startsWith('/'));
}

describe('orchestrator.sandbox', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-sandbox-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('auto takes bubblewrap when it is installed and works (CI installs it)', async () => {
    expect(await resolveSandbox('auto')).toMatchObject({
      kind: 'bwrap',
      command: expect.stringMatching(/bwrap$/),
    });
    expect(await resolveSandbox('none')).toEqual({ kind: 'none', reason: 'orchestrator.sandbox is none' });
  });

  it('auto goes without one, saying why; bwrap refuses to start, naming the fix', async () => {
    const noBwrap = { PATH: join(dir, 'empty') };
    expect(await resolveSandbox('auto', noBwrap)).toEqual({ kind: 'none', reason: 'bwrap is not on PATH' });
    const refused = resolveSandbox('bwrap', noBwrap);
    await expect(refused).rejects.toBeInstanceOf(SandboxUnavailableError);
    await expect(refused).rejects.toBeInstanceOf(PreflightError);
    await expect(refused).rejects.toThrow(/apt-get install bubblewrap.*orchestrator\.sandbox/);
    expect(await resolveSandbox('auto', process.env, 'darwin')).toMatchObject({
      kind: 'none',
      reason: expect.stringMatching(/only on Linux/),
    });

    // Installed, but user namespaces are off (or an AppArmor policy refuses it): the trial run says so.
    const broken = join(dir, 'broken');
    await mkdir(broken, { recursive: true });
    await writeFile(
      join(broken, 'bwrap'),
      '#!/bin/sh\necho "bwrap: No permissions to creating new namespace" >&2\nexit 1\n',
    );
    await chmod(join(broken, 'bwrap'), 0o755);
    expect(await resolveSandbox('auto', { PATH: broken })).toEqual({
      kind: 'none',
      reason: 'bwrap cannot start a sandbox here (bwrap: No permissions to creating new namespace)',
    });
    await expect(resolveSandbox('bwrap', { PATH: broken })).rejects.toThrow(/No permissions/);
  });

  it('a worker jail holds no capabilities (even as root), shows system folders and the worker bundle read-only and its own folder writable', async () => {
    const sandbox = await resolveSandbox('bwrap');
    const bundle = await localWorkerBundle();
    if (sandbox.kind !== 'bwrap') throw new Error('bwrap is required');
    const workerDir = join(dir, 'w1');
    const neighbour = join(dir, 'w2');
    await mkdir(workerDir, { recursive: true });
    await mkdir(neighbour, { recursive: true });
    await writeFile(join(neighbour, 'secret.txt'), 'the neighbour');
    const script = `
      const fs = require('node:fs');
      const { execFileSync } = require('node:child_process');
      const out = {};
      out.capEff = /CapEff:\\s*(\\S+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1];
      const tryWrite = (p) => { try { fs.writeFileSync(p, 'x'); return 'written'; } catch (e) { return e.code; } };
      out.usr = tryWrite('/usr/fleet-sandbox-test');
      out.etc = tryWrite('/etc/fleet-sandbox-test');
      out.pkg = tryWrite(${JSON.stringify(join(PACKAGE_ROOT, 'fleet-sandbox-test'))});
      out.bundle = fs.existsSync(${JSON.stringify(bundle.entry)}) && tryWrite(${JSON.stringify(join(bundle.dir, 'x.mjs'))});
      out.own = tryWrite(${JSON.stringify(join(workerDir, 'mine.txt'))});
      out.neighbour = fs.existsSync(${JSON.stringify(neighbour)});
      try { execFileSync('mount', ['-o', 'remount,rw', '/usr'], { stdio: 'ignore' }); out.remount = 'remounted'; }
      catch { out.remount = 'refused'; }
      out.pid = process.pid;
      process.stdout.write(JSON.stringify(out));
    `;
    const args = bwrapArgs({ workerDir, writable: [], readOnly: runtimePaths(CLAUDE_DOUBLE, bundle.dir) });
    const child = spawn(sandbox.command, [...args, process.execPath, '-e', script], {
      stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (c) => {
      stdout += c;
    });
    child.stderr?.on('data', (c) => {
      stderr += c;
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code, stderr).toBe(0);
    const seen = JSON.parse(stdout);
    expect(seen).toEqual({
      capEff: '0000000000000000',
      usr: 'EROFS',
      etc: 'EROFS',
      pkg: 'EROFS',
      bundle: 'EROFS',
      own: 'written',
      neighbour: false,
      remount: 'refused',
      // Its own pid namespace, where it is pid 1 (so the launcher's SIGTERM reaches it).
      pid: 1,
    });
    expect(await readFile(join(workerDir, 'mine.txt'), 'utf8')).toBe('x');
    expect(await readdir('/usr')).not.toContain('fleet-sandbox-test');
  });

  it("workers' scratch folders are outside the user's home, repository and workspace", async () => {
    expect(workerScratchParent('/tmp', ['/home/u', '/home/u/repo'])).toBe('/tmp');
    // TMPDIR pointing into the home or the repository: /tmp instead.
    expect(workerScratchParent('/home/u/tmp', ['/home/u', '/srv/repo'])).toBe('/tmp');
    expect(workerScratchParent('/srv/repo/.tmp', ['/home/u', '/srv/repo'])).toBe('/tmp');

    const stack = await startTestStack();
    try {
      const res = await stack.api('POST', '/api/v1/orchestrate', {
        body: { request: 'where do I run', tasks: [{ prompt: 'one' }, { prompt: 'two' }] },
      });
      expect(await stack.waitForJob(res.json.job_id)).toBe('completed');
      const runs = await stack.invocations();
      expect(runs.length).toBeGreaterThanOrEqual(2);
      const cwds = new Set(runs.map((r) => r.cwd));
      expect(cwds.size).toBe(runs.length);
      for (const cwd of cwds) {
        expect(inside(cwd, homedir()), cwd).toBe(false);
        expect(inside(cwd, process.cwd()), cwd).toBe(false);
        expect(inside(cwd, stack.workspace), cwd).toBe(false);
      }
    } finally {
      await stack.stop();
    }
  });
});

describe("a worker's environment", () => {
  it("holds what orchestrator.worker_env names, nothing else of the orchestrator's, and never a credential", async () => {
    expect(() => parseConfig('orchestrator: {worker_env: [ORCHESTRATOR_API_KEY]}')).toThrow(
      /orchestrator\.worker_env\[0\]: is a credential/,
    );
    for (const name of ['AWS_SECRET_ACCESS_KEY', 'ANTHROPIC_API_KEY', 'GITHUB_TOKEN', 'NODE_OPTIONS'])
      expect(() => parseConfig(`orchestrator: {worker_env: [${name}]}`), name).toThrow(/credential/);
    expect(() => parseConfig('orchestrator: {worker_env: ["A=B"]}')).toThrow(/variable name/);

    process.env.FLEET_TEST_NAMED = 'named';
    process.env.FLEET_TEST_UNNAMED = 'unnamed';
    const stack = await startTestStack('orchestrator: {worker_env: [FLEET_TEST_NAMED, FLEET_TEST_ABSENT]}');
    try {
      const res = await stack.api('POST', '/api/v1/orchestrate', {
        body: { request: 'env', tasks: [{ prompt: 'what do I see' }] },
      });
      expect(await stack.waitForJob(res.json.job_id)).toBe('completed');
      const keys = (await stack.invocations()).find((r) => r.envKeys)?.envKeys ?? [];
      expect(keys).toContain('FLEET_TEST_NAMED');
      expect(keys).not.toContain('FLEET_TEST_UNNAMED');
      expect(keys).not.toContain('FLEET_TEST_ABSENT');
    } finally {
      await stack.stop();
      delete process.env.FLEET_TEST_NAMED;
      delete process.env.FLEET_TEST_UNNAMED;
    }
  });
});

describe("a job's object store", () => {
  it('is removed a while after its last worker ended, and made again for the next', async () => {
    const workspaceDir = await mkdtemp(join(tmpdir(), 'fleet-stores-'));
    const lost: string[] = [];
    const launcher = new LocalLauncher({
      // No API there: each worker fails at once, which is all this needs.
      apiUrl: 'http://127.0.0.1:9',
      maxConcurrent: 2,
      claudeCommand: CLAUDE_DOUBLE,
      workspaceDir,
      storeIdleMs: 300,
      onLost: (req) => lost.push(`${req.jobId}/${req.taskNo}`),
    });
    const store = join(workspaceDir, '.objects', 'job1');
    const request = {
      jobId: 'job1',
      taskNo: 1,
      attempt: 1,
      taskToken: 'x',
      timeoutSec: 60,
      kind: 'work' as const,
    };
    try {
      await launcher.launch(request);
      expect(existsSync(store)).toBe(true);
      const waitFor = async (what: string, ok: () => boolean) => {
        const deadline = Date.now() + 20_000;
        while (!ok()) {
          if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
          await new Promise((r) => setTimeout(r, 50));
        }
      };
      await waitFor('the worker to end', () => lost.length === 1 && launcher.active === 0);
      // Kept for a retry at first ...
      expect(existsSync(store)).toBe(true);
      await waitFor('the store to go', () => !existsSync(store));
      // ... and made anew for the job's next worker.
      await launcher.launch({ ...request, attempt: 2 });
      expect(existsSync(store)).toBe(true);
      await waitFor('the second worker to end', () => lost.length === 2 && launcher.active === 0);
    } finally {
      await launcher.shutdown();
      await rm(workspaceDir, { recursive: true, force: true });
    }
  });
});

/** The process has ended: gone, or a zombie its (frozen) parent has not reaped. */
async function ended(pid: number): Promise<boolean> {
  for (let i = 0; i < 40; i++) {
    let status: string;
    try {
      status = await readFile(`/proc/${pid}/status`, 'utf8');
    } catch {
      return true;
    }
    if (/^State:\s+Z/m.test(status)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

describe('the local launcher shutting down', () => {
  it('returns within its grace and a few seconds more, even when no worker end is ever reported', async () => {
    const workspaceDir = await mkdtemp(join(tmpdir(), 'fleet-shutdown-'));
    // An API that takes the connection and never answers: the worker waits on it.
    const silent = createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as AddressInfo).port;
    const launcher = new LocalLauncher({
      apiUrl: `http://127.0.0.1:${port}`,
      maxConcurrent: 1,
      claudeCommand: CLAUDE_DOUBLE,
      workspaceDir,
    });
    // The helper that starts workers and reports their ends, frozen: no end will come from it.
    const helper = (launcher as unknown as { spawner: ProcessSpawner }).spawner;
    let workerPid: number | undefined;
    let helperPid: number | undefined;
    try {
      const taskToken = formatTaskToken({ jobId: 'j', taskNo: 1, attempt: 1 }, Buffer.alloc(32, 7));
      await launcher.launch({ jobId: 'j', taskNo: 1, attempt: 1, taskToken, timeoutSec: 60, kind: 'work' });
      const deadline = Date.now() + 20_000;
      while (helper.helperPid === undefined || launcher.active === 0) {
        if (Date.now() > deadline) throw new Error('the worker did not start');
        await new Promise((r) => setTimeout(r, 50));
      }
      await new Promise((r) => setTimeout(r, 300));
      expect(launcher.active).toBe(1);
      workerPid = (launcher as unknown as { running: Map<string, { child?: { pid?: number } }> }).running
        .values()
        .next().value?.child?.pid;
      helperPid = helper.helperPid as number;
      process.kill(helperPid, 'SIGSTOP');
      const t0 = Date.now();
      await launcher.shutdown(200);
      expect(Date.now() - t0).toBeLessThan(8_000);
      expect(launcher.active).toBe(0);
      // Reported closed, and killed with its group: nothing runs on for a retry to meet.
      expect(await ended(workerPid as number)).toBe(true);
    } finally {
      if (helperPid) process.kill(helperPid, 'SIGCONT');

      const closing = new Promise<void>((r) => silent.close(() => r()));
      silent.closeAllConnections();
      await closing;
      await rm(workspaceDir, { recursive: true, force: true });
    }
  }, 30_000);
});

describe('a sandboxed worker stopped', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack('orchestrator: {sandbox: bwrap}\nworkers: {max_workers: 4}');
  });
  afterAll(async () => {
    await stack?.stop();
  });

  const submitHanging = async (request: string) => {
    const res = await stack.api('POST', '/api/v1/orchestrate', {
      body: {
        request,
        config: { max_retries: 0, enable_recursion: false },
        tasks: [{ prompt: `${request} [[hang]]` }],
      },
    });
    expect(res.status).toBe(202);
    return res.json.job_id as string;
  };
  const until = async <T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000) => {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const v = await probe();
      if (v !== undefined) return v;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`timed out waiting for ${what}`);
  };

  it('by a cancel gets the SIGTERM itself (not bwrap): it stops Claude and reports, within seconds', async () => {
    const jobId = await submitHanging('hang then cancel');
    // The session is running: the worker has installed its own handler and started claude.
    await until('the hanging session', async () =>
      (await stack.invocations()).some((r) => (r.prompt ?? '').includes('hang then cancel'))
        ? true
        : undefined,
    );
    const cancelledAt = Date.now();
    expect((await stack.api('POST', `/api/v1/jobs/${jobId}/cancel`)).status).toBe(202);
    await until('the worker to stop', async () => (stack.launcher.active === 0 ? true : undefined), 10_000);
    expect(Date.now() - cancelledAt).toBeLessThan(10_000);
    const task = await until('its late result', async () => {
      const t = await stack.deps.tasks.getTask(jobId, 1);
      return t?.lateResult ? t : undefined;
    });
    expect(task.state).toBe('cancelled');
    expect(task.lateResult?.error).toMatch(/interrupted \(SIGTERM\)/);
    // The double logs a line when it starts and one when it ends: the session ended, it was not left hanging.
    const lines = (await stack.invocations()).filter((r) => (r.prompt ?? '').includes('hang then cancel'));
    expect(lines.some((r) => r.end !== null)).toBe(true);
  });

  it('by a cancel while it is still starting ends at once, before it runs claude', async () => {
    const jobId = await submitHanging('cancel at start');
    await until('the worker to start', async () => (stack.launcher.active > 0 ? true : undefined));
    expect((await stack.api('POST', `/api/v1/jobs/${jobId}/cancel`)).status).toBe(202);
    await until('the worker to stop', async () => (stack.launcher.active === 0 ? true : undefined), 10_000);
    expect((await stack.deps.jobs.getJob(jobId))?.status).toBe('cancelled');
    // A session that did start was stopped, not left hanging.
    const lines = (await stack.invocations()).filter((r) => (r.prompt ?? '').includes('cancel at start'));
    if (lines.length > 0) expect(lines.some((r) => r.end !== null)).toBe(true);
  });
});

describe('preflight: root without a sandbox', () => {
  const bwrap = { kind: 'bwrap' as const };
  const none = { kind: 'none' as const, reason: 'bwrap is not on PATH' };
  // The test double standing for the real CLI run as root (it honours IS_SANDBOX as the CLI does).
  const asRoot = { CLAUDE_DOUBLE_DIRECTIVES: '[[as_root]]' };

  it('stops before submitting when claude would refuse bypassPermissions, naming the fix', async () => {
    const check = checkWorkerContainment({
      sandbox: none,
      permissionMode: 'bypassPermissions',
      claudePath: CLAUDE_DOUBLE,
      workerEnv: asRoot,
      uid: 0,
    });
    await expect(check).rejects.toBeInstanceOf(PreflightError);
    await expect(check).rejects.toThrow(
      /running as root with no sandbox for the workers \(bwrap is not on PATH\).*root\/sudo privileges.*install bubblewrap.*orchestrator\.sandbox.*non-root user/,
    );
  });

  it('lets the run go on with a sandbox, as another user, in another mode, or when claude does not refuse', async () => {
    const base = {
      permissionMode: 'bypassPermissions',
      claudePath: CLAUDE_DOUBLE,
      workerEnv: asRoot,
    };
    await expect(checkWorkerContainment({ ...base, sandbox: bwrap, uid: 0 })).resolves.toBeUndefined();
    await expect(checkWorkerContainment({ ...base, sandbox: none, uid: 1000 })).resolves.toBeUndefined();
    await expect(
      checkWorkerContainment({ ...base, sandbox: none, uid: 0, permissionMode: 'acceptEdits' }),
    ).resolves.toBeUndefined();
    await expect(
      checkWorkerContainment({ ...base, sandbox: none, uid: 0, workerEnv: {} }),
    ).resolves.toBeUndefined();
  });

  it(`the real CLI ${isRoot ? 'is refused (this test runs as root)' : 'passes (this test does not run as root)'}`, async () => {
    const check = checkWorkerContainment({
      sandbox: none,
      permissionMode: 'bypassPermissions',
      claudePath: REAL_CLAUDE,
    });
    if (isRoot) await expect(check).rejects.toThrow(/root\/sudo privileges/);
    else await expect(check).resolves.toBeUndefined();
  });
});

describe('orchestrator run as root with no sandbox', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-root-run-'));
    // A claude that, like the real CLI run as root, refuses bypassPermissions outside a sandbox.
    await writeFile(
      join(dir, 'claude'),
      `#!/bin/sh\nCLAUDE_DOUBLE_DIRECTIVES='[[as_root]]' exec ${JSON.stringify(process.execPath)} ${JSON.stringify(CLAUDE_DOUBLE)} "$@"\n`,
    );
    await chmod(join(dir, 'claude'), 0o755);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it(
    isRoot
      ? 'stops before submitting anything, with the fix (this test runs as root)'
      : 'is not stopped by the preflight as another user; the refusal would come from claude itself',
    async () => {
      const run = await runBin(['run', 'hello', '--no-repo', '--claude-command', join(dir, 'claude')], {
        cwd: dir,
        env: { ...process.env, ORCHESTRATOR_SANDBOX: 'none', ORCHESTRATOR_WORKSPACE: join(dir, 'ws') },
      });
      if (isRoot) {
        expect(run.code).toBe(1);
        expect(run.stderr).toMatch(/^orchestrator: running as root with no sandbox/m);
        expect(run.stderr).toMatch(/install bubblewrap/);
        expect(run.stderr).not.toMatch(/submitted/);
      } else {
        expect(run.stderr).toMatch(/submitted/);
      }
    },
  );
});

describe("the real CLI in the sandbox with the user's own claude login", () => {
  let userHome: string;
  let savedHome: string | undefined;
  let api: MessagesApi;
  let stack: TestStack;
  const configJson = JSON.stringify({ numStartups: 3, fleetMarker: 'the user config' });

  beforeAll(async () => {
    userHome = await mkdtemp(join(tmpdir(), 'fleet-user-home-'));
    await mkdir(join(userHome, '.claude'), { recursive: true });
    await writeFile(join(userHome, '.claude', '.credentials.json'), '{"claudeAiOauth":{}}');
    await writeFile(join(userHome, '.claude.json'), configJson);
    await writeFile(join(userHome, 'diary.txt'), 'private');
    api = await startMessagesApi((request) =>
      request.toolsCalled.includes('Write')
        ? text('Wrote it.')
        : toolUse('Write', { file_path: 'login-check.md', content: 'through the shared login\n' }),
    );
    // The launcher finds the user's ~/.claude from HOME, as os.homedir() does.
    savedHome = process.env.HOME;
    process.env.HOME = userHome;
    const { HOME: _home, ...claudeEnv } = realClaudeEnv(api.url, userHome);
    stack = await startTestStack(
      'orchestrator: {sandbox: bwrap}',
      { ...claudeEnv, ANTHROPIC_AUTH_TOKEN: '', CLAUDE_CODE_USE_BEDROCK: '', CLAUDE_CODE_USE_VERTEX: '' },
      { claudeCommand: REAL_CLAUDE, shareClaudeLogin: true },
    );
  });
  afterAll(async () => {
    await stack?.stop();
    await api?.stop();
    if (savedHome === undefined) delete process.env.HOME;
    else process.env.HOME = savedHome;
    if (userHome) await rm(userHome, { recursive: true, force: true });
  });

  it('runs a session that keeps its files in ~/.claude, leaves ~/.claude.json and the rest of the home alone', async () => {
    const res = await stack.api('POST', '/api/v1/orchestrate', {
      body: { request: 'login check', tasks: [{ prompt: 'write login-check.md' }] },
    });
    expect(res.status).toBe(202);
    const jobId = res.json.job_id as string;
    const status = await stack.waitForJob(jobId, 180_000);
    const view = (await stack.api('GET', `/api/v1/jobs/${jobId}`)).json;
    expect(status, JSON.stringify(view.results?.tasks)).toBe('completed');
    expect(api.requests.length).toBeGreaterThanOrEqual(2);
    // The CLI wrote its session into the user's ~/.claude (shared read-write) ...
    const claudeDir = await readdir(join(userHome, '.claude'));
    expect(claudeDir).toContain('projects');
    // ... read a copy of ~/.claude.json, and saw nothing else of the home.
    expect(await readFile(join(userHome, '.claude.json'), 'utf8')).toBe(configJson);
    expect((await readdir(userHome)).sort()).toEqual(['.claude', '.claude.json', 'diary.txt']);
  });
});
