/**
 * Runs one `claude -p` session: the prompt goes in on stdin (no argument
 * length limit, and no flag can swallow it), output is captured with a cap,
 * and the process is stopped when the task's time is up or when asked to.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import {
  addUsage,
  type ClaudeProcessOutcome,
  type ClaudeUsage,
  findResultObject,
  usageOf,
} from '../functions/core/claude-result.ts';

export interface ClaudeInvocation {
  command: string;
  args: string[];
  prompt: string;
  cwd: string;
  timeoutMs: number;
  env: NodeJS.ProcessEnv;
  /** Aborting stops the session the same way a timeout does (SIGTERM, then SIGKILL). */
  signal?: AbortSignal;
  /** Grace between SIGTERM and SIGKILL. */
  killGraceMs?: number;
  onOutput?: (stream: 'stdout' | 'stderr', chunk: string) => void;
}

const MAX_CAPTURE = 8 * 1024 * 1024;
/**
 * Memory is sampled often at first, since a short session may be gone before a
 * slow sampler looks, then every second; a process that starts and ends
 * between two samples (a quick tool run) is missed, its parents' peaks are not.
 */
const FIRST_SAMPLE_MS = 25;
const MAX_SAMPLE_MS = 1_000;
/** A session that forks more processes than this is measured on the first ones only. */
const MAX_SAMPLED_PROCESSES = 256;

/**
 * What every Claude session of one attempt used, summed: an attempt may run
 * several (the decide run and the work session; a merge's conflict sessions),
 * and its result reports them together.
 */
export class SessionTally {
  usage: ClaudeUsage | undefined;
  peakMemoryMb: number | undefined;

  add(run: ClaudeProcessOutcome): void {
    this.usage = addUsage(this.usage, usageOf(findResultObject(run.stdout)));
    if (run.peakMemoryMb !== undefined)
      this.peakMemoryMb = Math.max(this.peakMemoryMb ?? 0, run.peakMemoryMb);
  }
}

// The sessions are started deep inside the attempt's steps: the tally travels with the async context instead.
const tallies = new AsyncLocalStorage<SessionTally>();

/** The tally of the attempt this code runs in, if any. */
export function currentTally(): SessionTally | undefined {
  return tallies.getStore();
}

/** Runs `fn` with every `runClaude` inside it adding to `tally`. */
export function withSessionTally<T>(tally: SessionTally, fn: () => Promise<T>): Promise<T> {
  return tallies.run(tally, fn);
}

export function runClaude(inv: ClaudeInvocation): Promise<ClaudeProcessOutcome> {
  const started = Date.now();
  const tally = tallies.getStore();
  return new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    let settled = false;
    const child = spawn(inv.command, inv.args, {
      cwd: inv.cwd,
      env: inv.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const memory = child.pid === undefined ? undefined : new MemoryWatch(child.pid);

    const stop = () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      setTimeout(() => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }, inv.killGraceMs ?? 5_000).unref();
    };
    const timer = setTimeout(() => {
      timedOut = true;
      stop();
    }, inv.timeoutMs);
    const onAbort = () => stop();
    inv.signal?.addEventListener('abort', onAbort, { once: true });
    // 'abort' never fires for a signal that was aborted before this run started.
    if (inv.signal?.aborted) stop();

    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      // The tail is what matters (the result is the last line of a stream): keep it, drop the start.
      stdout += chunk;
      if (stdout.length > MAX_CAPTURE) stdout = stdout.slice(-MAX_CAPTURE);
      inv.onOutput?.('stdout', chunk);
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      if (stderr.length < MAX_CAPTURE) stderr += chunk;
      inv.onOutput?.('stderr', chunk);
    });
    const finish = (exitCode: number | null, signal: string | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      memory?.stop();
      inv.signal?.removeEventListener('abort', onAbort);
      const peakMemoryMb = memory?.peakMb();
      const outcome: ClaudeProcessOutcome = {
        exitCode,
        signal,
        stdout,
        stderr,
        timedOut,
        durationMs: Date.now() - started,
        ...(peakMemoryMb !== undefined && { peakMemoryMb }),
      };
      tally?.add(outcome);
      resolve(outcome);
    };
    child.on('error', (err) => {
      stderr += `\nfailed to start ${inv.command}: ${err.message}`;
      finish(127, null);
    });
    child.on('close', (code, signal) => finish(code, signal));
    child.stdin.on('error', () => {
      // The CLI may exit before reading all of stdin (e.g. an argument error); its exit code says why.
    });
    child.stdin.end(inv.prompt);
  });
}

/**
 * Samples the resident memory of a process and its descendants from
 * `/proc` while it runs. Once the process has exited its numbers are gone,
 * so the peak is the larger of the highest sampled total and any single
 * process's own high-water mark (VmHWM). Without `/proc` (macOS, Windows)
 * nothing is sampled and no peak is reported.
 */
class MemoryWatch {
  private peakKb = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly pid: number) {
    this.schedule(FIRST_SAMPLE_MS);
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(delayMs: number): void {
    this.timer = setTimeout(() => {
      this.sample();
      if (this.timer !== undefined) this.schedule(Math.min(MAX_SAMPLE_MS, delayMs * 2));
    }, delayMs);
    this.timer.unref();
  }

  peakMb(): number | undefined {
    return this.peakKb > 0 ? Math.round(this.peakKb / 1024) : undefined;
  }

  private sample(): void {
    let totalKb = 0;
    for (const pid of processTree(this.pid)) {
      const status = readProc(`/proc/${pid}/status`);
      if (status === undefined) continue;
      totalKb += statusKb(status, 'VmRSS');
      this.peakKb = Math.max(this.peakKb, statusKb(status, 'VmHWM'));
    }
    this.peakKb = Math.max(this.peakKb, totalKb);
  }
}

function processTree(root: number): number[] {
  const pids = [root];
  for (let i = 0; i < pids.length && pids.length < MAX_SAMPLED_PROCESSES; i++) {
    const children = readProc(`/proc/${pids[i]}/task/${pids[i]}/children`);
    for (const pid of children?.split(/\s+/) ?? []) if (/^\d+$/.test(pid)) pids.push(Number(pid));
  }
  return pids.slice(0, MAX_SAMPLED_PROCESSES);
}

function readProc(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    // Gone already, or no /proc on this platform.
    return undefined;
  }
}

function statusKb(status: string, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  return m ? Number(m[1]) : 0;
}
