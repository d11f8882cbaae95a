/**
 * Starts the local launcher's worker processes from a small helper process
 * (spawn-helper.mjs) instead of from the orchestrator itself.
 *
 * A fork copies its parent's page tables: from local mode, whose one process
 * holds the emulators, the API and the dispatcher (300-400 MB), each worker's
 * start stopped that process's event loop for 15-25 ms (`npm run bench`
 * profile), the dispatch of the job's other tasks and every request with it.
 * From the helper the same start takes about 5 ms, and not on our loop.
 *
 * The helper is started with the launcher and again if it ever exits; a
 * worker whose helper exited is killed and reported closed (its attempt is
 * then lost and retried, as any worker that dies).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { fileURLToPath } from 'node:url';

const HELPER = fileURLToPath(new URL('./spawn-helper.mjs', import.meta.url));

/**
 * A worker process started by the helper. Emits `info` (text the process
 * wrote to fd 3, when asked for) and `close` (code, signal, the end of its
 * stderr) once.
 */
export class SpawnedProcess extends EventEmitter<{
  info: [text: string];
  close: [code: number | null, signal: NodeJS.Signals | null, stderr: string];
}> {
  /** Its pid, once the helper has started it. */
  pid: number | undefined;
  exited = false;

  constructor(
    readonly id: number,
    private readonly spawner: ProcessSpawner,
  ) {
    super();
  }

  /** Sends `signal` to the process; nothing once it has exited. */
  kill(signal: NodeJS.Signals): void {
    if (!this.exited) this.spawner.kill(this.id, signal);
  }
}

interface HelperMessage {
  op: 'spawned' | 'info' | 'close';
  id: number;
  pid?: number;
  text?: string;
  code?: number | null;
  signal?: NodeJS.Signals | null;
  stderr?: string;
}

export class ProcessSpawner {
  private helper: ChildProcess | undefined;
  private readonly live = new Map<number, SpawnedProcess>();
  private sequence = 0;
  private closed = false;

  /** The helper's pid while it runs (tests kill it). */
  get helperPid(): number | undefined {
    return this.helper?.pid;
  }

  /** Starts the helper now, so the first worker does not wait for it. */
  warm(): void {
    this.ensureHelper();
  }

  spawn(
    command: string,
    args: readonly string[],
    env: NodeJS.ProcessEnv,
    options: { infoFd?: boolean } = {},
  ): SpawnedProcess {
    if (this.closed) throw new Error('the worker spawner is closed');
    const helper = this.ensureHelper();
    this.sequence += 1;
    const proc = new SpawnedProcess(this.sequence, this);
    this.live.set(proc.id, proc);
    // While a worker lives, the helper's channel keeps this process alive, as the worker itself would.
    if (this.live.size === 1) helper.channel?.ref();
    helper.send({ op: 'spawn', id: proc.id, command, args, env, infoFd: options.infoFd === true });
    return proc;
  }

  kill(id: number, signal: NodeJS.Signals): void {
    if (this.helper?.connected) this.helper.send({ op: 'kill', id, signal });
  }

  /** Stops the helper; workers still running are reported closed. */
  close(): void {
    this.closed = true;
    this.helper?.disconnect();
    this.helper = undefined;
    this.closeAll('the worker spawner was closed');
  }

  private ensureHelper(): ChildProcess {
    if (this.helper?.connected) return this.helper;
    const helper = spawn(process.execPath, [HELPER], {
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      // Nothing of this process's environment (NODE_OPTIONS with tsx's loader, keys): each worker gets its own.
      env: { PATH: process.env.PATH ?? '' },
    });
    helper.on('message', (m: HelperMessage) => this.onMessage(m));
    helper.on('exit', () => {
      if (this.helper !== helper) return;
      this.helper = undefined;
      this.closeAll('the worker spawner exited');
    });
    helper.on('error', () => {});
    helper.unref();
    helper.channel?.unref();
    this.helper = helper;
    return helper;
  }

  private onMessage(m: HelperMessage): void {
    const proc = this.live.get(m.id);
    if (!proc) return;
    if (m.op === 'spawned') proc.pid = m.pid;
    else if (m.op === 'info') proc.emit('info', m.text ?? '');
    else if (m.op === 'close') this.finish(proc, m.code ?? null, m.signal ?? null, m.stderr ?? '');
  }

  private finish(proc: SpawnedProcess, code: number | null, signal: NodeJS.Signals | null, stderr: string) {
    if (proc.exited) return;
    proc.exited = true;
    this.live.delete(proc.id);
    if (this.live.size === 0) this.helper?.channel?.unref();
    proc.emit('close', code, signal, stderr);
  }

  /**
   * Reports every live worker closed, and makes it so: each leads its own
   * process group (spawn-helper.mjs), killed whole here. Without that an
   * unsandboxed worker outlives its helper and its claude runs on beside the
   * retry its report starts (a sandboxed one dies with the helper anyway).
   */
  private closeAll(why: string): void {
    for (const proc of [...this.live.values()]) {
      if (proc.pid !== undefined) {
        try {
          process.kill(-proc.pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
      this.finish(proc, null, 'SIGKILL', why);
    }
  }
}
