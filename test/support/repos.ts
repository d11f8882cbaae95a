/**
 * Sample repositories for the repository tests: build one with real git,
 * bundle it, upload the bundle through `POST /sources`, and fetch a job's
 * branch back into a repository to look at it with git.
 */
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import type { TestStack } from './harness.ts';

const exec = promisify(execFile);

/** Git with no global or system config, so a developer's settings never change a test. */
export const GIT_ENV: NodeJS.ProcessEnv = {
  PATH: process.env.PATH,
  HOME: process.env.HOME,
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_AUTHOR_NAME: 'Sample Author',
  GIT_AUTHOR_EMAIL: 'author@example.com',
  GIT_COMMITTER_NAME: 'Sample Author',
  GIT_COMMITTER_EMAIL: 'author@example.com',
};

export async function git(cwd: string, ...args: string[]): Promise<string> {
  const { stdout } = await exec('git', args, { cwd, env: GIT_ENV, maxBuffer: 256 * 1024 * 1024 });
  return stdout.trim();
}

/** A repository on `main` with one commit holding `files`. */
export async function sampleRepo(dir: string, files: Record<string, string>): Promise<string> {
  await mkdir(dir, { recursive: true });
  await git(dir, 'init', '--quiet', '-b', 'main');
  for (const [path, text] of Object.entries(files)) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), text);
  }
  await git(dir, 'add', '-A');
  await git(dir, 'commit', '--quiet', '-m', 'Sample base');
  return git(dir, 'rev-parse', 'HEAD');
}

/** `git bundle create <file> main`: the whole history, as a caller would upload it. */
export async function bundleOf(dir: string, file: string, ref = 'main'): Promise<string> {
  await git(dir, 'bundle', 'create', '--quiet', file, ref);
  return file;
}

type Api = Pick<TestStack, 'api'>;

/** Uploads a bundle file the way a caller does: POST /sources, then PUT to the presigned URL. */
export async function uploadSource(stack: Api, body: Buffer): Promise<string> {
  const created = await stack.api('POST', '/api/v1/sources', { body: { size_bytes: body.length } });
  if (created.status !== 201) throw new Error(`POST /sources: ${created.status} ${created.text}`);
  const put = await fetch(created.json.upload.url, { method: 'PUT', body });
  if (!put.ok) throw new Error(`upload: ${put.status}`);
  return created.json.bundle_id as string;
}

/** Downloads the job's branch bundle (GET /jobs/{id}/bundle) and fetches it into `repo` as `fleet/<id>`. */
export async function fetchJobBranch(
  stack: Api,
  jobId: string,
  repo: string,
  scratch: string,
): Promise<string> {
  const info = await stack.api('GET', `/api/v1/jobs/${jobId}/bundle`);
  if (info.status !== 200) throw new Error(`GET bundle: ${info.status} ${info.text}`);
  const bytes = Buffer.from(await (await fetch(info.json.url)).arrayBuffer());
  const file = join(scratch, `${jobId}.bundle`);
  await writeFile(file, bytes);
  await git(
    repo,
    'fetch',
    '--quiet',
    '--no-write-fetch-head',
    file,
    `+refs/heads/${info.json.branch}:refs/heads/${info.json.branch}`,
  );
  return info.json.branch as string;
}
