/**
 * What a newcomer meets in the first minutes, through the real entry points:
 * the quick start run from their own project, no SDK notice on Node 20, and
 * errors that are one human line naming the flag, the field or the variable.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { CLAUDE_DOUBLE } from '../support/harness.ts';
import { runBin, runCommand } from '../support/run-bin.ts';

const QUICK_START = fileURLToPath(new URL('../../quick-start.sh', import.meta.url));
/** Without the CLI's own guard, the SDK prints this on Node 20 (and the test env must not hide it). */
const SDK_NOTICE = /no longer support Node\.js|NodeVersionSupportWarning|AWS SDK for JavaScript \(v3\)/i;
const env = () => {
  const e = { ...process.env };
  delete e.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED;
  return e;
};

describe('the first ten minutes', () => {
  const dirs: string[] = [];
  afterEach(async () => {
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });
  const fresh = async () => {
    const d = await mkdtemp(join(tmpdir(), 'orch-newcomer-'));
    dirs.push(d);
    return d;
  };

  it("quick-start.sh run from the user's own folder resolves --config there and puts the workspace there", async () => {
    const project = await fresh();
    await writeFile(join(project, 'my.yaml'), 'workers: {max_workers: 2}\n');
    const r = await runCommand(
      'bash',
      [QUICK_START, 'Two notes [[plan:2]]', '--config', 'my.yaml', '--claude-command', CLAUDE_DOUBLE],
      { cwd: project, env: env() },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`report: ${project}/workspace/job_[0-9a-f]{20}/FINAL_RESULT\\.md`));
    expect((await readdir(join(project, 'workspace'))).some((f) => f.startsWith('job_'))).toBe(true);
    // No SDK notice on any Node version the project supports.
    expect(r.stderr).not.toMatch(SDK_NOTICE);
  }, 90_000);

  it('an empty request is one line naming it, exit 64, before any emulator starts', async () => {
    const cwd = await fresh();
    const started = Date.now();
    const r = await runBin(['run', '', '--claude-command', CLAUDE_DOUBLE], { cwd, env: env() });
    expect(r.code).toBe(64);
    expect(r.stderr).toBe('orchestrator: the request: must not be empty\n');
    expect(existsSync(join(cwd, 'workspace'))).toBe(false);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('--workers over the deployment limit is reported as --workers, with the limit', async () => {
    const cwd = await fresh();
    const r = await runBin(['run', 'hello', '--workers', '50', '--claude-command', CLAUDE_DOUBLE], {
      cwd,
      env: env(),
    });
    expect(r.code).toBe(64);
    expect(r.stderr).toMatch(/^orchestrator: --workers: .*20.*\(limits\.max_workers_per_job\)\n$/);
    const over = await runBin(['run', 'hello', '--workers', '500', '--claude-command', CLAUDE_DOUBLE], {
      cwd,
      env: env(),
    });
    expect(over.code).toBe(64);
    expect(over.stderr).toMatch(/^orchestrator: --workers: .*100/);
  });

  it('a bad value in the environment is reported as the environment variable', async () => {
    const cwd = await fresh();
    const r = await runBin(['run', 'hello', '--claude-command', CLAUDE_DOUBLE], {
      cwd,
      env: { ...env(), MAX_WORKERS: 'lots' },
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/invalid configuration in the environment/);
    expect(r.stderr).toMatch(/workers\.max_workers: .*\(set by the environment: MAX_WORKERS="lots"\)/);
    expect(r.stderr).not.toMatch(/defaults/);
  });
});
