/**
 * Running git from the worker: every call has a deadline, its output is
 * bounded, and the environment is pinned so that neither the machine's git
 * configuration nor anything a Claude session wrote into a checkout's
 * `.git/config` (hooks, an fsmonitor command) runs as part of our own steps.
 */
import { spawn } from 'node:child_process';

export class GitError extends Error {
  constructor(
    readonly args: readonly string[],
    readonly exitCode: number | null,
    readonly stderr: string,
    readonly stdout: string,
  ) {
    super(`git ${subcommand(args)} failed (exit ${exitCode}): ${stderr.trim().slice(-600)}`);
    this.name = 'GitError';
  }
}

/** `fetch` of `-c x=y fetch --quiet url`: what a reader of the error needs, without option values. */
function subcommand(args: readonly string[]): string {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '-c') i += 1;
    else if (!args[i]?.startsWith('-')) return args[i] as string;
  }
  return args.join(' ');
}

export interface GitOptions {
  cwd: string;
  /** Added to the pinned environment (e.g. GIT_INDEX_FILE, author identity). */
  env?: NodeJS.ProcessEnv | undefined;
  /** @default 120 s */
  timeoutMs?: number | undefined;
  input?: string | Buffer | undefined;
  /** Exit codes that are answers rather than failures (e.g. 1 for a merge with conflicts). */
  okCodes?: readonly number[] | undefined;
  /** @default 64 MiB */
  maxOutputBytes?: number | undefined;
  /**
   * Read the user's own git configuration (global excludes, identity). Only
   * for calls on the user's repository from the CLI; workers never do.
   */
  userConfig?: boolean | undefined;
}

export interface GitResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/** Settings that make our git calls ignore hooks and command-running config of the repository. */
const SAFE_CONFIG = [
  '-c',
  'core.hooksPath=/dev/null',
  '-c',
  'core.fsmonitor=false',
  '-c',
  'core.untrackedCache=false',
  '-c',
  'gc.auto=0',
  '-c',
  'maintenance.auto=false',
  '-c',
  'commit.gpgSign=false',
  '-c',
  'tag.gpgSign=false',
  '-c',
  'core.quotePath=false',
];

/** The environment every git call starts from: no prompts, no system or global config, no pager. */
export function gitEnv(extra: NodeJS.ProcessEnv = {}, userConfig = false): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    // Inherited GIT_* variables (GIT_DIR from a hook, a token) must not steer our calls.
    if (!k.startsWith('GIT_')) env[k] = v;
  }
  return {
    ...env,
    GIT_TERMINAL_PROMPT: '0',
    ...(userConfig ? {} : { GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null' }),
    GIT_PAGER: 'cat',
    GIT_OPTIONAL_LOCKS: '0',
    LC_ALL: 'C',
    ...extra,
  };
}

export function runGit(args: readonly string[], options: GitOptions): Promise<GitResult> {
  const full = [...SAFE_CONFIG, ...args];
  const limit = options.maxOutputBytes ?? 64 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    const child = spawn('git', full, {
      cwd: options.cwd,
      env: gitEnv(options.env, options.userConfig),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outBytes = 0;
    let errBytes = 0;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs ?? 120_000);
    child.stdout.on('data', (c: Buffer) => {
      outBytes += c.length;
      if (outBytes <= limit) out.push(c);
    });
    child.stderr.on('data', (c: Buffer) => {
      errBytes += c.length;
      if (errBytes <= 1024 * 1024) err.push(c);
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new GitError(args, null, `could not run git: ${e.message}`, ''));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      if (timedOut) {
        reject(
          new GitError(args, code, `timed out after ${options.timeoutMs ?? 120_000} ms ${stderr}`, stdout),
        );
        return;
      }
      if (outBytes > limit) {
        reject(new GitError(args, code, `output over ${limit} bytes`, ''));
        return;
      }
      const exitCode = code ?? -1;
      if (exitCode === 0 || options.okCodes?.includes(exitCode)) resolve({ stdout, stderr, exitCode });
      else reject(new GitError(args, code, stderr, stdout));
    });
    child.stdin.on('error', () => {
      // git may exit before reading all of its input; its exit code says why.
    });
    child.stdin.end(options.input ?? '');
  });
}

/** Runs git and returns its trimmed stdout. */
export async function git(args: readonly string[], options: GitOptions): Promise<string> {
  return (await runGit(args, options)).stdout.trim();
}

/** NUL-separated output (`-z`) as a list, without the empty tail. */
export function splitZ(text: string): string[] {
  const parts = text.split('\0');
  if (parts.at(-1) === '') parts.pop();
  return parts;
}

/** Environment that makes `identity` the author and committer of the commits git writes. */
export function identityEnv(identity: { name: string; email: string }): NodeJS.ProcessEnv {
  return {
    GIT_AUTHOR_NAME: identity.name,
    GIT_AUTHOR_EMAIL: identity.email,
    GIT_COMMITTER_NAME: identity.name,
    GIT_COMMITTER_EMAIL: identity.email,
  };
}

/**
 * Environment that sends the repository token with every HTTP request of one
 * git call, through GIT_CONFIG_* so it never shows in argv (`ps`) or a URL.
 */
export function tokenEnv(token: string | undefined, username: string): NodeJS.ProcessEnv {
  if (!token) return {};
  const basic = Buffer.from(`${username}:${token}`, 'utf8').toString('base64');
  return {
    GIT_CONFIG_COUNT: '1',
    GIT_CONFIG_KEY_0: 'http.extraHeader',
    GIT_CONFIG_VALUE_0: `Authorization: Basic ${basic}`,
  };
}

/** `-c protocol.*` options that allow only the URL's own scheme: no `ext::`, `file://` or ssh. */
export function remoteProtocolArgs(url: string): string[] {
  const scheme = new URL(url).protocol.replace(':', '');
  return ['-c', 'protocol.allow=never', '-c', `protocol.${scheme}.allow=always`];
}
