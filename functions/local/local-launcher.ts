/**
 * The local launcher: each worker is a child process running the same
 * container entrypoint the Fargate task runs. At most `maxConcurrent` run at
 * once; the rest wait in launch order. A worker that outlives its task's
 * timeout by the grace period is killed, and a worker that exits without
 * reporting is handed to `onLost`, as ECS task-state events are in AWS.
 *
 * Each worker gets a scratch directory of its own under `workspaceDir`, an
 * environment built from an allow-list (never the orchestrator's keys or
 * AWS settings), and, with a sandbox, a bubblewrap jail (sandbox.ts) that
 * shows it only that directory read-write.
 *
 * Workers run the worker bundle (worker-bundle.ts), the one the image runs,
 * built from the current sources when they changed: starting the TypeScript
 * through tsx took most of a second per worker.
 */
import { copyFileSync, existsSync, mkdirSync, renameSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { isAbsolute, join, relative, resolve } from 'node:path';
import {
  isCredentialedStep,
  type Launcher,
  type LaunchHandle,
  LaunchRefusedError,
  type LaunchRequest,
  type WorkerStatus,
} from '../adapters/launcher.ts';
import { workerIdentityEnv } from '../core/worker-identity.ts';
import { ProcessSpawner, type SpawnedProcess } from './process-spawner.ts';
import { bwrapArgs, claudeExecutable, type ResolvedSandbox, runtimePaths } from './sandbox.ts';
import { localWorkerBundle, touchWorkerBundle, type WorkerBundle } from './worker-bundle.ts';
import { inheritedByWorkers } from './worker-env.ts';

/**
 * Loaded before anything else: in its sandbox the worker is pid 1, and pid 1
 * ignores a signal it has no handler for. Until the worker installs its own
 * SIGTERM handler (which uploads and reports), a SIGTERM ends it as it would
 * any other process.
 */
const EARLY_SIGTERM = `data:text/javascript,${encodeURIComponent(
  "process.on('SIGTERM', () => { if (process.listenerCount('SIGTERM') === 1) process.exit(143); });",
)}`;

export interface LocalLauncherOptions {
  apiUrl: string;
  maxConcurrent: number;
  claudeCommand: string;
  /** Where workers make their scratch directories: outside the user's repository and workspace. */
  workspaceDir: string;
  /** Token for private git remotes: given only to the steps that run no AI (fetch, push). */
  gitToken?: string | undefined;
  /**
   * Environment given to workers on purpose, on top of the allow-list (the
   * test double's switches, the model gateway's ANTHROPIC_BASE_URL). An
   * explicit HOME here is the workers' home, writable inside a sandbox.
   */
  env?: NodeJS.ProcessEnv;
  /** Run each worker in this sandbox; none when omitted. */
  sandbox?: ResolvedSandbox;
  /**
   * The workers sign in with the user's own `claude /login` (no API key is
   * configured): a sandbox then shows the user's ~/.claude, read-write, in
   * the worker's home, and a copy of ~/.claude.json.
   */
  shareClaudeLogin?: boolean;
  /** More paths a sandboxed worker may write (tests: the double's log and state). */
  writablePaths?: readonly string[];
  /** Time past the task's timeout before the process is killed. */
  killGraceSec?: number;
  /** How long a job's object store is kept after its last worker ended (default 10 minutes). */
  storeIdleMs?: number;
  onLost?: (request: LaunchRequest, reason: string, exitCode: number | undefined) => void;
  /** The bundle workers run; by default this process's bundle of the package's sources. */
  workerBundle?: () => Promise<WorkerBundle>;
}

interface Slot {
  request: LaunchRequest;
  handle: string;
  child?: SpawnedProcess;
  sandboxed?: boolean;
  /** Inside a sandbox: the worker's own pid, which signals must reach (bwrap does not pass them on). */
  innerPid?: number;
  stopped?: string;
}

export class LocalLauncher implements Launcher {
  private readonly waiting: Slot[] = [];
  private readonly running = new Map<string, Slot>();
  private sequence = 0;
  private closed = false;
  private idleResolvers: (() => void)[] = [];
  /** Running workers per job object store, and the removal of the stores no worker uses. */
  private readonly storeUsers = new Map<string, number>();
  private readonly storeRemovals = new Map<string, NodeJS.Timeout>();
  private bundle: WorkerBundle | undefined;
  private readonly spawner = new ProcessSpawner();

  constructor(private readonly options: LocalLauncherOptions) {
    // Checked (or built) while the stack starts, not when the first task is waiting for it.
    this.prepare().catch(() => {});
    this.spawner.warm();
  }

  /** The worker bundle, checked against the sources once (a failed build is tried again). */
  async prepare(): Promise<WorkerBundle> {
    this.bundle = await (this.options.workerBundle ?? localWorkerBundle)();
    return this.bundle;
  }

  async launch(request: LaunchRequest): Promise<LaunchHandle> {
    if (this.closed) throw new Error('launcher is shut down');
    try {
      await this.prepare();
    } catch (err) {
      // A source that does not compile fails the attempt with esbuild's message; retrying it would not help.
      throw new LaunchRefusedError(`could not build the worker: ${(err as Error).message}`, false);
    }
    if (this.closed) throw new Error('launcher is shut down');
    this.sequence += 1;
    const slot: Slot = { request, handle: `local:${process.pid}:${this.sequence}` };
    this.waiting.push(slot);
    this.pump();
    return { handle: slot.handle };
  }

  async stop(handle: string, reason: string): Promise<void> {
    const queued = this.waiting.findIndex((s) => s.handle === handle);
    if (queued >= 0) {
      this.waiting.splice(queued, 1);
      return;
    }
    const slot = this.running.get(handle);
    if (slot?.child) {
      slot.stopped = reason;
      terminate(slot);
    }
  }

  /** Running or waiting for a slot; anything else this process never started or already saw exit. */
  async status(handles: readonly string[]): Promise<Map<string, WorkerStatus>> {
    const waiting = new Set(this.waiting.map((s) => s.handle));
    return new Map(
      handles.map(
        (h) =>
          [h, this.running.has(h) || waiting.has(h) ? { state: 'running' } : { state: 'missing' }] as const,
      ),
    );
  }

  /** Number of worker processes alive now. */
  get active(): number {
    return this.running.size;
  }

  /** Stops every worker (SIGTERM, then SIGKILL) and refuses new launches. */
  async shutdown(graceMs = 5_000): Promise<void> {
    this.closed = true;
    this.waiting.length = 0;
    for (const timer of this.storeRemovals.values()) clearTimeout(timer);
    this.storeRemovals.clear();
    for (const slot of this.running.values()) {
      slot.stopped = 'shutdown';
      terminate(slot);
    }
    if (this.running.size > 0) {
      const killer = setTimeout(() => {
        for (const slot of this.running.values()) slot.child?.kill('SIGKILL');
      }, graceMs);
      // A SIGKILL is reported within the helper's stderr drain; past that, stop waiting: closing the
      // spawner below reports whatever is left closed.
      let giveUp: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.idleResolvers.push(resolve)),
        new Promise<void>((resolve) => {
          giveUp = setTimeout(resolve, graceMs + SHUTDOWN_AFTER_KILL_MS);
        }),
      ]);
      clearTimeout(killer);
      clearTimeout(giveUp);
    }
    this.spawner.close();
  }

  private pump(): void {
    while (!this.closed && this.running.size < this.options.maxConcurrent && this.waiting.length > 0) {
      const slot = this.waiting.shift() as Slot;
      this.start(slot);
    }
    if (this.running.size === 0) {
      for (const resolve of this.idleResolvers.splice(0)) resolve();
    }
  }

  private start(slot: Slot): void {
    const { request } = slot;
    // Named after the launch, so one launch's folder is never another's.
    const workerDir = join(this.options.workspaceDir, `w${slot.handle.split(':').pop()}`);
    const objects = sharedObjectsDir(this.options, request);
    try {
      // Synchronous, so a worker counted as running always has a process a stop can reach.
      this.useStore(objects);
      prepareWorkerDir(workerDir, objects, this.options);
    } catch (err) {
      this.releaseStore(objects);
      this.options.onLost?.(request, `could not start the worker: ${(err as Error).message}`, undefined);
      return;
    }
    this.running.set(slot.handle, slot);
    const env = workerEnv(this.options, request, workerDir);
    const sandbox = this.options.sandbox;
    slot.sandboxed = sandbox?.kind === 'bwrap';
    // Launches go through prepare(), which sets the bundle.
    const bundle = this.bundle as WorkerBundle;
    touchWorkerBundle(bundle);
    const node = [process.execPath, ...(slot.sandboxed ? ['--import', EARLY_SIGTERM] : []), bundle.entry];
    const child =
      sandbox?.kind === 'bwrap'
        ? this.spawner.spawn(
            sandbox.command,
            [...bwrapArgs(sandboxLayout(this.options, workerDir, env, bundle)), ...node],
            env,
            { infoFd: true },
          )
        : this.spawner.spawn(node[0] as string, node.slice(1), env);
    slot.child = child;
    let info = '';
    child.on('info', (c) => {
      info += c;
      const pid = /"child-pid":\s*(\d+)/.exec(info)?.[1];
      if (pid && slot.innerPid === undefined) {
        slot.innerPid = Number(pid);
        // Stopped while bwrap was still starting: pass the SIGTERM on now.
        if (slot.stopped) terminate(slot);
      }
    });
    const grace = (this.options.killGraceSec ?? 60) * 1000;
    const deadline = setTimeout(
      () => {
        slot.stopped = `worker exceeded its timeout of ${request.timeoutSec}s by more than ${grace / 1000}s`;
        // SIGKILL to bwrap takes the sandboxed worker with it (--die-with-parent).
        child.kill('SIGKILL');
      },
      request.timeoutSec * 1000 + grace,
    );
    deadline.unref();
    child.on('close', (code, signal, stderr) => {
      clearTimeout(deadline);
      this.running.delete(slot.handle);
      if (code !== 0 && slot.stopped !== 'shutdown') {
        const why =
          slot.stopped ?? (signal ? `worker killed by ${signal}` : `worker exited with code ${code}`);
        const detail = stderr.trim().split('\n').slice(-3).join(' | ');
        this.options.onLost?.(request, detail ? `${why}: ${detail}` : why, code ?? undefined);
      }
      if (!env.KEEP_WORKSPACE) void rm(workerDir, { recursive: true, force: true }).catch(() => {});
      this.releaseStore(objects);
      this.pump();
    });
  }

  private useStore(objects: string): void {
    this.storeUsers.set(objects, (this.storeUsers.get(objects) ?? 0) + 1);
    clearTimeout(this.storeRemovals.get(objects));
    this.storeRemovals.delete(objects);
  }

  /**
   * A job's store outlives its last worker for a while (a retry or the merge
   * step reuses it), then goes, so a long `serve` does not keep one unpacked
   * repository per job it ever ran.
   */
  private releaseStore(objects: string): void {
    const left = (this.storeUsers.get(objects) ?? 1) - 1;
    if (left > 0) {
      this.storeUsers.set(objects, left);
      return;
    }
    this.storeUsers.delete(objects);
    const timer = setTimeout(() => {
      this.storeRemovals.delete(objects);
      if (this.storeUsers.has(objects)) return;
      // Moved aside at once, so a worker starting now makes a fresh store while the old one is deleted.
      const doomed = `${objects}.removed-${Date.now()}`;
      try {
        renameSync(objects, doomed);
      } catch {
        return;
      }
      void rm(doomed, { recursive: true, force: true }).catch(() => {});
    }, this.options.storeIdleMs ?? STORE_IDLE_MS);
    timer.unref();
    this.storeRemovals.set(objects, timer);
  }
}

/** How long shutdown waits, after its SIGKILL, for the workers' ends to be reported. */
const SHUTDOWN_AFTER_KILL_MS = 5_000;

/** How long a job's object store is kept after its last worker ended. */
const STORE_IDLE_MS = 10 * 60_000;

/**
 * Where the stack makes the workers' scratch folder: the system's temporary
 * folder, unless TMPDIR points into the user's home or the current
 * directory (a repository, most likely); then /tmp. Checkouts must never
 * sit inside the user's folders, where git would find the user's repository
 * around them.
 */
export function workerScratchParent(
  temp: string = tmpdir(),
  userDirs: readonly string[] = [homedir(), process.cwd()],
): string {
  const inside = (dir: string) => {
    const rel = relative(resolve(dir), resolve(temp));
    return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
  };
  if (!userDirs.some(inside)) return temp;
  return '/tmp';
}

/** SIGTERM to the worker itself: inside a sandbox that is the inner pid, not bwrap's. */
function terminate(slot: Slot): void {
  const child = slot.child;
  if (!child || child.exited) return;
  if (slot.sandboxed) {
    // Before bwrap names the worker's pid, the info handler passes the SIGTERM on; SIGTERM to bwrap
    // itself would end the worker with SIGKILL, without its upload and report.
    if (slot.innerPid === undefined) return;
    try {
      process.kill(slot.innerPid, 'SIGTERM');
      return;
    } catch {
      // Already gone: stop bwrap itself.
    }
  }
  child.kill('SIGTERM');
}

/**
 * The store of unpacked base commits a job's workers share. One per job:
 * its workers may write it, so a store shared across jobs would let one
 * job's worker plant objects in another job's checkouts.
 */
function sharedObjectsDir(options: LocalLauncherOptions, request: LaunchRequest): string {
  const job = /^[A-Za-z0-9_-]{1,64}$/.test(request.jobId) ? request.jobId : 'job';
  return join(options.workspaceDir, '.objects', job);
}

/** The worker's own directory (0700), with its home; the shared object store next to it. */
function prepareWorkerDir(workerDir: string, objects: string, options: LocalLauncherOptions): void {
  mkdirSync(join(workerDir, 'home'), { recursive: true, mode: 0o700 });
  mkdirSync(objects, { recursive: true, mode: 0o700 });
  const userConfig = join(homedir(), '.claude.json');
  if (options.sandbox?.kind === 'bwrap' && options.shareClaudeLogin && existsSync(userConfig)) {
    // A copy: the CLI replaces this file by renaming over it, which a bind-mounted file refuses.
    copyFileSync(userConfig, join(workerDir, 'home', '.claude.json'));
  }
}

/** What one worker's bubblewrap shows: its directory, the object store and what the options name. */
function sandboxLayout(
  options: LocalLauncherOptions,
  workerDir: string,
  env: NodeJS.ProcessEnv,
  bundle: WorkerBundle,
): Parameters<typeof bwrapArgs>[0] {
  const writable = [env.FLEET_SHARED_OBJECTS as string, ...(options.writablePaths ?? [])];
  const explicitHome = options.env?.HOME;
  if (explicitHome) writable.push(explicitHome);
  const mounts: { source: string; target: string }[] = [];
  const login = join(homedir(), '.claude');
  if (options.shareClaudeLogin && !explicitHome && existsSync(login))
    mounts.push({ source: login, target: join(env.HOME as string, '.claude') });
  return {
    workerDir,
    writable: writable.filter((p) => existsSync(p)),
    readOnly: runtimePaths(options.claudeCommand, bundle.dir),
    mounts,
  };
}

/**
 * The worker sees the API and its token, never the data plane's endpoints or
 * credentials; a step without AI (fetch, push) also gets the git token, and
 * a worker that runs Claude never does.
 */
export function workerEnv(
  options: LocalLauncherOptions,
  request: LaunchRequest,
  workerDir: string,
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && inheritedByWorkers(k)) env[k] = v;
  Object.assign(env, options.env);
  const credentialed = isCredentialedStep(request.kind);
  const sandboxed = options.sandbox?.kind === 'bwrap';
  const claude = sandboxed ? claudeExecutable(options.claudeCommand) : undefined;
  return {
    ...env,
    ...(sandboxed
      ? {
          // Only the worker's own folders exist in there: its home unless one was given on purpose.
          HOME: options.env?.HOME || join(workerDir, 'home'),
          TMPDIR: '/tmp',
          // The real CLI refuses bypassPermissions as root unless it is told it runs in a sandbox.
          IS_SANDBOX: '1',
          CLAUDE_CODE_BUBBLEWRAP: '1',
        }
      : {}),
    API_URL: options.apiUrl,
    ...workerIdentityEnv(request),
    // The real path: a symlink on PATH may point into a folder the sandbox does not show.
    CLAUDE_COMMAND: claude?.path ?? options.claudeCommand,
    WORKSPACE_DIR: workerDir,
    // The workers of a job unpack each base commit once and borrow its objects (see container/checkout.ts).
    FLEET_SHARED_OBJECTS: sharedObjectsDir(options, request),
    WORKER_ROLE: credentialed ? 'git' : 'ai',
    ...(credentialed && options.gitToken ? { GIT_TOKEN: options.gitToken } : {}),
  };
}
