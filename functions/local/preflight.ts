/**
 * Fail fast, with the fix, when the claude executable is missing or broken,
 * or would refuse to run in the workers as they are set up (root, no sandbox).
 */
import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import { inheritedByWorkers } from './worker-env.ts';

export class PreflightError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PreflightError';
  }
}

const INSTALL_HINT =
  'Install Claude Code with `npm install -g @anthropic-ai/claude-code` (then run `claude` once and /login, ' +
  'or set ANTHROPIC_API_KEY), or point --claude-command / CLAUDE_COMMAND / orchestrator.claude_command at the executable.';

/** Returns the absolute path of the command, after checking that `--version` answers. */
export async function checkClaudeCommand(
  command: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ path: string; version: string }> {
  const path = await locate(command, env);
  if (!path) throw new PreflightError(`cannot find the claude executable "${command}". ${INSTALL_HINT}`);
  const version = await new Promise<string>((resolveVersion, reject) => {
    execFile(path, ['--version'], { timeout: 15_000, env }, (err, stdout, stderr) => {
      if (err)
        reject(
          new PreflightError(
            `"${path} --version" failed: ${(stderr || err.message).trim().slice(0, 300)}. ${INSTALL_HINT}`,
          ),
        );
      else resolveVersion(stdout.trim());
    });
  });
  return { path, version };
}

async function locate(command: string, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  const candidates =
    command.includes('/') || isAbsolute(command)
      ? [resolve(command)]
      : (env.PATH ?? '')
          .split(delimiter)
          .filter(Boolean)
          .map((dir) => join(dir, command));
  for (const candidate of candidates) {
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not here; try the next PATH entry.
    }
  }
  return undefined;
}

/** What the CLI prints when it refuses bypassPermissions as root outside a sandbox (2.1.197). */
const ROOT_REFUSAL = /root\/sudo privileges/;
const PROBE_TIMEOUT_MS = 30_000;

export interface ContainmentCheck {
  /** How workers will be jailed (resolveSandbox). */
  sandbox: { kind: 'bwrap' } | { kind: 'none'; reason: string };
  permissionMode: string;
  /** The claude executable, as checkClaudeCommand found it. */
  claudePath: string;
  /** Environment the workers' claude gets besides the allow-list (see workerEnv). */
  workerEnv?: NodeJS.ProcessEnv;
  /** The orchestrator's environment, of which workers inherit only the allow-list. */
  env?: NodeJS.ProcessEnv;
  uid?: number | undefined;
}

/**
 * Run as root without a sandbox, the real CLI refuses bypassPermissions, and
 * every worker would fail. Stops before anything is submitted, naming the fix.
 * Whether this claude refuses is asked of claude itself: a one-turn run in
 * the workers' environment, its model a local stand-in that answers every
 * request with an error, so nothing leaves the machine.
 */
export async function checkWorkerContainment(check: ContainmentCheck): Promise<void> {
  const uid = 'uid' in check ? check.uid : process.getuid?.();
  if (uid !== 0 || check.sandbox.kind !== 'none' || check.permissionMode !== 'bypassPermissions') return;
  const refusal = await probeRootRefusal(check);
  if (!refusal) return;
  throw new PreflightError(
    `running as root with no sandbox for the workers (${check.sandbox.reason}), claude refuses ` +
      `--permission-mode bypassPermissions ("${refusal}"). Fix: install bubblewrap (e.g. \`apt-get install ` +
      'bubblewrap`) with orchestrator.sandbox auto or bwrap (ORCHESTRATOR_SANDBOX), or run the orchestrator as a non-root user',
  );
}

async function probeRootRefusal(check: ContainmentCheck): Promise<string | undefined> {
  // Answers like the Messages API refusing the request: the CLI stops at its first turn, without retrying.
  const model = createServer((req, res) => {
    req.resume();
    if (req.method === 'HEAD') return void res.writeHead(200).end();
    res.writeHead(400, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({ type: 'error', error: { type: 'invalid_request_error', message: 'preflight' } }),
    );
  });
  await new Promise<void>((done) => model.listen(0, '127.0.0.1', done));
  const home = await mkdtemp(join(tmpdir(), 'claude-fleet-preflight-'));
  try {
    const { port } = model.address() as AddressInfo;
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(check.env ?? process.env))
      if (v !== undefined && inheritedByWorkers(k)) env[k] = v;
    Object.assign(env, check.workerEnv, {
      HOME: home,
      ANTHROPIC_BASE_URL: `http://127.0.0.1:${port}`,
      ANTHROPIC_API_KEY: 'preflight-probe',
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    });
    const output = await new Promise<string>((done) => {
      const child = execFile(
        check.claudePath,
        ['-p', '--output-format', 'json', '--max-turns', '1', '--permission-mode', check.permissionMode],
        { env, timeout: PROBE_TIMEOUT_MS, cwd: home },
        (_err, stdout, stderr) => done(`${stdout}\n${stderr}`),
      );
      child.stdin?.end('preflight: reply with one word');
    });
    const line = output.split('\n').find((l) => ROOT_REFUSAL.test(l));
    return line?.trim().slice(0, 200);
  } finally {
    model.close();
    model.closeAllConnections();
    await rm(home, { recursive: true, force: true });
  }
}
