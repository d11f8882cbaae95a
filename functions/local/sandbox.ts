/**
 * The local workers' sandbox: on Linux, each worker runs inside bubblewrap
 * (`bwrap`). It sees the system folders, Node, the orchestrator's own code,
 * the worker bundle it runs and the claude executable read-only; a private
 * /tmp, /proc and /dev; and read-write only its own scratch directory, its
 * job's shared object store and whatever the launcher names on purpose (a
 * shared `claude /login`). The user's home and repositories, other workers'
 * checkouts and the orchestrator's process are out of sight. The network is
 * shared: workers reach the API on 127.0.0.1 (the emulators there check
 * every request, see emulator-guard.ts).
 *
 * `orchestrator.sandbox`: `auto` (bwrap when it is installed and works),
 * `bwrap` (refuse to start without it) or `none`.
 */
import { execFile } from 'node:child_process';
import { constants, existsSync, lstatSync, readlinkSync, realpathSync } from 'node:fs';
import { access } from 'node:fs/promises';
import { delimiter, dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PreflightError } from './preflight.ts';

export type SandboxMode = 'auto' | 'bwrap' | 'none';

export type ResolvedSandbox =
  | { kind: 'bwrap'; command: string }
  | {
      kind: 'none';
      /** Why workers run without a sandbox, for the log and the preflight's message. */
      reason: string;
    };

/** orchestrator.sandbox is bwrap and bubblewrap cannot run here: `run` and `serve` stop with the fix. */
export class SandboxUnavailableError extends PreflightError {
  constructor(message: string) {
    super(message);
    this.name = 'SandboxUnavailableError';
  }
}

/** The orchestrator's own files: the package root (functions/ and container/ live under it). */
export const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));

const PROBE_TIMEOUT_MS = 10_000;

async function onPath(command: string, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  for (const dir of (env.PATH ?? '').split(delimiter).filter(Boolean)) {
    const candidate = join(dir, command);
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not in this PATH entry.
    }
  }
  return undefined;
}

/** Runs a trivial sandbox: user namespaces may be off, or an AppArmor policy may refuse bwrap. */
function probe(bwrap: string): Promise<string | undefined> {
  const args = [
    '--ro-bind',
    '/',
    '/',
    '--proc',
    '/proc',
    '--dev',
    '/dev',
    '--unshare-pid',
    '--die-with-parent',
    '--cap-drop',
    'ALL',
    '--',
    process.execPath,
    '-e',
    '0',
  ];
  return new Promise((done) => {
    execFile(bwrap, args, { timeout: PROBE_TIMEOUT_MS }, (err, _stdout, stderr) => {
      done(err ? (stderr || err.message).trim().split('\n')[0]?.slice(0, 300) || 'failed' : undefined);
    });
  });
}

/**
 * Decides how workers run: `auto` takes bwrap when it is on PATH and a trial
 * sandbox starts, `bwrap` throws SandboxUnavailableError when it cannot.
 */
export async function resolveSandbox(
  mode: SandboxMode,
  env: NodeJS.ProcessEnv = process.env,
  platform: NodeJS.Platform = process.platform,
): Promise<ResolvedSandbox> {
  if (mode === 'none') return { kind: 'none', reason: 'orchestrator.sandbox is none' };
  const unavailable = (reason: string): ResolvedSandbox => {
    if (mode === 'bwrap')
      throw new SandboxUnavailableError(
        `orchestrator.sandbox is bwrap, but ${reason}. Install bubblewrap (e.g. \`apt-get install bubblewrap\`) ` +
          'and allow unprivileged user namespaces, or set orchestrator.sandbox to auto or none',
      );
    return { kind: 'none', reason };
  };
  if (platform !== 'linux') return unavailable(`bubblewrap runs only on Linux (this is ${platform})`);
  const command = await onPath('bwrap', env);
  if (!command) return unavailable('bwrap is not on PATH');
  const failure = await probe(command);
  if (failure) return unavailable(`bwrap cannot start a sandbox here (${failure})`);
  return { kind: 'bwrap', command };
}

/** What one worker's sandbox shows. */
export interface SandboxLayout {
  /** The worker's own scratch directory: read-write, and its working directory. */
  workerDir: string;
  /** Read-write as well (the shared object store, a shared claude login, test files). */
  writable: readonly string[];
  /** Read-only extras beyond the system folders (Node, the orchestrator, claude). */
  readOnly: readonly string[];
  /** `HOME -> source` binds: the user's `~/.claude` shown inside the worker's own home. */
  mounts?: readonly { source: string; target: string }[];
}

/** System folders every process needs, read-only; symlinks (merged /usr) are recreated as symlinks. */
const SYSTEM_DIRS = ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32', '/etc', '/nix/store'];
/** Where resolv.conf often points (systemd-resolved): without it, names do not resolve inside. */
const OPTIONAL_RO = ['/run/systemd/resolve'];

function isWithin(path: string, dir: string): boolean {
  const rel = relative(dir, path);
  return rel === '' || (!rel.startsWith('..') && !rel.startsWith(sep) && rel !== '..');
}

/**
 * The read-only folders a worker needs to run the worker bundle (in
 * `bundleDir`, see worker-bundle.ts) and claude.
 */
export function runtimePaths(claudeCommand: string, bundleDir: string): string[] {
  const paths = new Set<string>();
  // Node's installation (nvm, volta and the like keep it under the home).
  paths.add(dirname(dirname(realpathSync(process.execPath))));
  paths.add(PACKAGE_ROOT);
  // Installed as a dependency, the orchestrator's own dependencies are hoisted next to it.
  const nm = `${sep}node_modules${sep}`;
  const hoisted = PACKAGE_ROOT.indexOf(nm);
  if (hoisted >= 0) paths.add(PACKAGE_ROOT.slice(0, hoisted + nm.length - 1));
  // Inside one of the above in a checkout; in the user's cache folder for a global install.
  paths.add(bundleDir);
  const claude = claudeExecutable(claudeCommand);
  if (claude) paths.add(claude.root);
  // Drop what another entry or a system folder already shows.
  const all = [...new Set([...paths].map((p) => resolve(p)))].filter((p) => existsSync(p));
  return all.filter(
    (p) =>
      !SYSTEM_DIRS.some((d) => isWithin(p, d)) && !all.some((other) => other !== p && isWithin(p, other)),
  );
}

/**
 * The claude executable as the sandbox sees it: its real path (a symlink
 * such as ~/.local/bin/claude points into a folder that would be hidden),
 * and the folder to show, its package when it has one.
 */
export function claudeExecutable(command: string): { path: string; root: string } | undefined {
  if (!command.includes(sep)) return undefined;
  let path: string;
  try {
    path = realpathSync(resolve(command));
  } catch {
    return undefined;
  }
  let root = dirname(path);
  for (let dir = root, up = 0; up < 3 && dir !== dirname(dir); up++, dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) {
      root = dir;
      break;
    }
  }
  return { path, root };
}

/** The bwrap arguments for one worker, up to and including `--`; the command follows. */
export function bwrapArgs(layout: SandboxLayout): string[] {
  const args = [
    '--die-with-parent',
    // No TIOCSTI into the orchestrator's terminal.
    '--new-session',
    '--unshare-pid',
    '--unshare-ipc',
    '--unshare-uts',
    '--unshare-cgroup-try',
    // Run as root, bwrap would otherwise keep every capability, enough to remount the read-only folders.
    '--cap-drop',
    'ALL',
    // The worker is pid 1 in its namespace, so a SIGTERM sent to it (the launcher's stop) arrives.
    '--as-pid-1',
    '--info-fd',
    '3',
  ];
  for (const dir of SYSTEM_DIRS) {
    let stat: ReturnType<typeof lstatSync>;
    try {
      stat = lstatSync(dir);
    } catch {
      continue;
    }
    if (stat.isSymbolicLink()) args.push('--symlink', readlinkSync(dir), dir);
    else args.push('--ro-bind', dir, dir);
  }
  for (const dir of OPTIONAL_RO) args.push('--ro-bind-try', dir, dir);
  args.push('--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp');
  for (const dir of layout.readOnly) args.push('--ro-bind', dir, dir);
  args.push('--bind', layout.workerDir, layout.workerDir);
  for (const dir of layout.writable) args.push('--bind', dir, dir);
  for (const m of layout.mounts ?? []) args.push('--bind', m.source, m.target);
  // Everything not bound above is read-only: a write elsewhere fails instead of vanishing with the sandbox.
  args.push('--remount-ro', '/', '--chdir', layout.workerDir, '--');
  return args;
}
