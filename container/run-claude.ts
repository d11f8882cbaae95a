/**
 * Runs one `claude -p` session: the prompt goes in on stdin (no argument
 * length limit, and no flag can swallow it), output is captured with a cap,
 * and the process is stopped when the task's time is up or when asked to.
 */
import { spawn } from 'node:child_process';
import type { ClaudeProcessOutcome } from '../functions/core/claude-result.ts';

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

export function runClaude(inv: ClaudeInvocation): Promise<ClaudeProcessOutcome> {
  const started = Date.now();
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
      if (stdout.length < MAX_CAPTURE) stdout += chunk;
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
      inv.signal?.removeEventListener('abort', onAbort);
      resolve({ exitCode, signal, stdout, stderr, timedOut, durationMs: Date.now() - started });
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
