/**
 * Runs the `claude` test double as a worker would (prompt on stdin, empty by
 * default), with an environment free of the switches a surrounding test run
 * may carry, and reads its single result line.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import { CLAUDE_DOUBLE } from './harness.ts';

export interface DoubleRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Variables that would change the double's behaviour or reach a real API; never inherited. */
const SCRUBBED = ['CLAUDE_DOUBLE_DIRECTIVES', 'CLAUDE_DOUBLE_LOG', 'API_URL', 'TASK_TOKEN', 'TASK_ID'];

export function runDouble(
  args: string[],
  opts: { cwd: string; stateDir: string; env?: Record<string, string | undefined> },
): Promise<DoubleRun> {
  const env: NodeJS.ProcessEnv = { ...process.env, CLAUDE_DOUBLE_STATE_DIR: opts.stateDir };
  for (const k of SCRUBBED) delete env[k];
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  const child = spawn(process.execPath, [CLAUDE_DOUBLE, ...args], {
    cwd: opts.cwd,
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  child.stdin.end('');
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The one JSON result object a `--output-format json` run prints. */
export function resultOf(r: DoubleRun): Record<string, unknown> {
  const lines = r.stdout.trim().split('\n');
  expect(lines).toHaveLength(1);
  return JSON.parse(lines[0] ?? '') as Record<string, unknown>;
}

/** Every file under `dir`, as sorted relative paths with forward slashes. */
export function listFiles(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...listFiles(path.join(dir, e.name), rel));
    else out.push(rel);
  }
  return out.sort();
}
