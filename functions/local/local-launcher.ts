/**
 * The local launcher: each worker is a child process running the same
 * container entrypoint the Fargate task runs. At most `maxConcurrent` run at
 * once; the rest wait in launch order. A worker that outlives its task's
 * timeout by the grace period is killed, and a worker that exits without
 * reporting is handed to `onLost`, as ECS task-state events are in AWS.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { taskIdEnv } from '../adapters/ecs-launcher.ts';
import {
  isCredentialedStep,
  type Launcher,
  type LaunchHandle,
  type LaunchRequest,
  type WorkerStatus,
} from '../adapters/launcher.ts';

const WORKER_ENTRY = fileURLToPath(new URL('../../container/worker.ts', import.meta.url));
// Resolved from here, not from the caller's directory, so `orchestrator` works from anywhere.
const TSX_LOADER = import.meta.resolve('tsx');

export interface LocalLauncherOptions {
  apiUrl: string;
  maxConcurrent: number;
  claudeCommand: string;
  /** Where workers make their scratch directories: outside the user's repository and workspace. */
  workspaceDir: string;
  /** Token for private git remotes: given only to the steps that run no AI (fetch, push). */
  gitToken?: string | undefined;
  /** Extra environment for workers (e.g. the test double's switches). */
  env?: NodeJS.ProcessEnv;
  /**
   * The workers sign in with the user's own `claude /login` (no API key is
   * configured): a sandbox then shows the user's ~/.claude, read-write, in
   * the worker's home, and a copy of ~/.claude.json.
   */
  shareClaudeLogin?: boolean;
  /** Time past the task's timeout before the process is killed. */
  killGraceSec?: number;
  onLost?: (request: LaunchRequest, reason: string, exitCode: number | undefined) => void;
}

interface Slot {
  request: LaunchRequest;
  handle: string;
  child?: ChildProcess;
  stopped?: string;
}

export class LocalLauncher implements Launcher {
  private readonly waiting: Slot[] = [];
  private readonly running = new Map<string, Slot>();
  private sequence = 0;
  private closed = false;
  private idleResolvers: (() => void)[] = [];

  constructor(private readonly options: LocalLauncherOptions) {}

  async launch(request: LaunchRequest): Promise<LaunchHandle> {
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
      slot.child.kill('SIGTERM');
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
    for (const slot of this.running.values()) {
      slot.stopped = 'shutdown';
      slot.child?.kill('SIGTERM');
    }
    if (this.running.size === 0) return;
    const killer = setTimeout(() => {
      for (const slot of this.running.values()) slot.child?.kill('SIGKILL');
    }, graceMs);
    await new Promise<void>((resolve) => this.idleResolvers.push(resolve));
    clearTimeout(killer);
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
    const child = spawn(process.execPath, ['--import', TSX_LOADER, WORKER_ENTRY], {
      env: workerEnv(this.options, request),
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    slot.child = child;
    this.running.set(slot.handle, slot);
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (c: string) => {
      stderr = (stderr + c).slice(-4000);
    });
    const grace = (this.options.killGraceSec ?? 60) * 1000;
    const deadline = setTimeout(
      () => {
        slot.stopped = `worker exceeded its timeout of ${request.timeoutSec}s by more than ${grace / 1000}s`;
        child.kill('SIGKILL');
      },
      request.timeoutSec * 1000 + grace,
    );
    deadline.unref();
    child.on('close', (code, signal) => {
      clearTimeout(deadline);
      this.running.delete(slot.handle);
      if (code !== 0 && slot.stopped !== 'shutdown') {
        const why =
          slot.stopped ?? (signal ? `worker killed by ${signal}` : `worker exited with code ${code}`);
        const detail = stderr.trim().split('\n').slice(-3).join(' | ');
        this.options.onLost?.(request, detail ? `${why}: ${detail}` : why, code ?? undefined);
      }
      this.pump();
    });
  }
}

/** Variables that carry repository credentials: never inherited, given only to credentialed steps. */
const GIT_TOKEN_VARIABLES = new Set(['ORCHESTRATOR_GIT_TOKEN', 'GIT_TOKEN']);

/**
 * The worker sees the API and its token, never the data plane's endpoints or
 * credentials; a step without AI (fetch, push) also gets the git token, and
 * a worker that runs Claude never does.
 */
function workerEnv(options: LocalLauncherOptions, request: LaunchRequest): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries({ ...process.env, ...options.env })) {
    if (k.startsWith('AWS_') || k === 'NODE_OPTIONS' || k.startsWith('VITEST') || GIT_TOKEN_VARIABLES.has(k))
      continue;
    env[k] = v;
  }
  const credentialed = isCredentialedStep(request.kind);
  return {
    ...env,
    API_URL: options.apiUrl,
    TASK_ID: taskIdEnv(request),
    TASK_TOKEN: request.taskToken,
    CLAUDE_COMMAND: options.claudeCommand,
    WORKSPACE_DIR: options.workspaceDir,
    // Workers on one machine unpack each base commit once and borrow its objects (see container/checkout.ts).
    FLEET_SHARED_OBJECTS: join(options.workspaceDir, '.objects'),
    WORKER_ROLE: credentialed ? 'git' : 'ai',
    ...(credentialed && options.gitToken ? { GIT_TOKEN: options.gitToken } : {}),
  };
}
