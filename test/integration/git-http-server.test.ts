/**
 * The git smart-HTTP test server serves real clones and pushes through
 * `git http-backend`, and refuses requests without the token.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GitHttpServer, startGitHttpServer } from '../support/git-http-server.ts';

const execFileAsync = promisify(execFile);
const TOKEN = 's3cret';

let tmp: string;
let root: string;
let work: string;
let server: GitHttpServer;
let firstCommit: string;

/** Only PATH from the outside: the developer's git config, credential helpers and GIT_DIR stay out. */
function gitEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: tmp,
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_TERMINAL_PROMPT: '0',
    GIT_AUTHOR_NAME: 'Fleet Test',
    GIT_AUTHOR_EMAIL: 'fleet@example.invalid',
    GIT_COMMITTER_NAME: 'Fleet Test',
    GIT_COMMITTER_EMAIL: 'fleet@example.invalid',
    ...extra,
  };
}

/** The token travels in a header from the environment, never in argv or the URL. */
const WITH_TOKEN = {
  GIT_CONFIG_COUNT: '1',
  GIT_CONFIG_KEY_0: 'http.extraHeader',
  GIT_CONFIG_VALUE_0: `Authorization: Basic ${Buffer.from(`x-access-token:${TOKEN}`).toString('base64')}`,
};

async function git(args: string[], cwd: string, extra: Record<string, string> = {}): Promise<string> {
  const { stdout } = await execFileAsync('git', args, { cwd, env: gitEnv(extra), timeout: 30_000 });
  return stdout.trim();
}

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'git-http-test-'));
  root = join(tmp, 'repos');
  work = join(tmp, 'work');
  await git(['init', '--quiet', '--bare', '--initial-branch=main', join(root, 'demo.git')], tmp);
  await git(['init', '--quiet', '--initial-branch=main', work], tmp);
  await writeFile(join(work, 'README.md'), 'hello from demo\n');
  await git(['add', 'README.md'], work);
  await git(['commit', '--quiet', '-m', 'first'], work);
  firstCommit = await git(['rev-parse', 'HEAD'], work);
  await git(['push', '--quiet', join(root, 'demo.git'), 'main'], work);
  server = await startGitHttpServer({ root, token: TOKEN });
});

afterAll(async () => {
  await server?.stop();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('git http server', () => {
  it('answers 401 with a Basic challenge without credentials and serves refs with a Bearer token', async () => {
    const refs = `${server.repoUrl('demo')}/info/refs?service=git-upload-pack`;
    const refused = await fetch(refs);
    expect(refused.status).toBe(401);
    expect(refused.headers.get('www-authenticate')).toBe('Basic realm="git"');

    const served = await fetch(refs, { headers: { Authorization: `Bearer ${TOKEN}` } });
    expect(served.status).toBe(200);
    expect(served.headers.get('content-type')).toBe('application/x-git-upload-pack-advertisement');
    expect(await served.text()).toContain(`${firstCommit} refs/heads/main`);
  });

  it('clones over HTTP with the token in an extra header', async () => {
    const before = server.requests.length;
    const dest = join(tmp, 'clone-ok');
    await git(['clone', '--quiet', server.repoUrl('demo'), dest], tmp, WITH_TOKEN);

    expect(await readFile(join(dest, 'README.md'), 'utf8')).toBe('hello from demo\n');
    expect(await git(['rev-parse', 'HEAD'], dest)).toBe(firstCommit);
    const made = server.requests.slice(before);
    expect(made.length).toBeGreaterThan(0);
    expect(made.every((r) => r.authorized)).toBe(true);
  });

  it('refuses a clone without the token', async () => {
    const before = server.requests.length;
    const dest = join(tmp, 'clone-refused');
    await expect(git(['clone', '--quiet', server.repoUrl('demo'), dest], tmp)).rejects.toMatchObject({
      code: 128,
    });
    const made = server.requests.slice(before);
    expect(made.some((r) => !r.authorized && r.path === '/demo.git/info/refs')).toBe(true);
    expect(made.some((r) => r.authorized)).toBe(false);
  });

  it('accepts a push of a new branch with the token', async () => {
    await git(['switch', '--quiet', '-c', 'fleet/abc'], work);
    await writeFile(join(work, 'change.txt'), 'pushed over http\n');
    await git(['add', 'change.txt'], work);
    await git(['commit', '--quiet', '-m', 'second'], work);
    const pushed = await git(['rev-parse', 'HEAD'], work);

    await git(['push', '--quiet', server.repoUrl('demo'), 'fleet/abc'], work, WITH_TOKEN);

    expect(await git(['--git-dir', join(root, 'demo.git'), 'rev-parse', 'fleet/abc'], tmp)).toBe(pushed);
    expect(server.requests.some((r) => r.method === 'POST' && r.path === '/demo.git/git-receive-pack')).toBe(
      true,
    );
  });
});
