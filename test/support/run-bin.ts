/**
 * Runs the real `orchestrator` bin as a user would, asynchronously (emulators
 * started by the test live in this process and must keep answering).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../bin/orchestrator.mjs', import.meta.url));

export interface BinRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runBin(args: string[], options: { cwd?: string; env: NodeJS.ProcessEnv }): Promise<BinRun> {
  return runCommand(process.execPath, [BIN, ...args], options);
}

/** Runs any command to its end, collecting both outputs (the quick-start script, the bin). */
export function runCommand(
  command: string,
  args: string[],
  options: { cwd?: string; env: NodeJS.ProcessEnv },
): Promise<BinRun> {
  return new Promise((resolve) => {
    const child = spawn(command, args, {
      ...(options.cwd ? { cwd: options.cwd } : {}),
      env: options.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => {
      stdout += c;
    });
    child.stderr.on('data', (c) => {
      stderr += c;
    });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
