/**
 * The CLI's commands other than `run` and `serve` (a remote server's client,
 * `keys`, `--version`, usage errors) start without the local stack: the
 * emulators, the handlers and the AWS SDK clients load only when a stack starts.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

/** Loads the CLI module in a fresh node and lists the CommonJS modules it pulled in. */
const PROBE = `
import { createRequire } from 'node:module';
import { register } from 'tsx/esm/api';
register();
await import('./functions/local/cli.ts');
console.log(JSON.stringify(Object.keys(createRequire(import.meta.url).cache)));
`;

describe('CLI start-up', () => {
  it('loads no AWS SDK client and no emulator until a command starts the local stack', () => {
    const out = spawnSync(process.execPath, ['--input-type=module', '-e', PROBE], {
      cwd: REPO,
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(out.status, out.stderr).toBe(0);
    const loaded = JSON.parse(out.stdout.trim().split('\n').at(-1) ?? '[]') as string[];
    expect(loaded.length).toBeGreaterThan(0);
    expect(loaded.filter((m) => /@aws-sdk\/client-|dynalite|fauxqs/.test(m))).toEqual([]);
  });
});
