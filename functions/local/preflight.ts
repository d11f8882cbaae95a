/** Fail fast, with the fix, when the claude executable is missing or broken. */
import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { delimiter, isAbsolute, join, resolve } from 'node:path';

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
