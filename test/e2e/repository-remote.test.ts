/**
 * A job whose source is a git URL: a step without AI fetches it with the
 * deployment's token, the workers (which never see the token) change it, and
 * a second step without AI pushes the merged branch back. The remote is a
 * local smart-HTTP server that requires the token.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STEP_TASK_NO } from '../../functions/core/layout.ts';
import { type GitHttpServer, startGitHttpServer } from '../support/git-http-server.ts';
import { startTestStack, type TestStack } from '../support/harness.ts';
import { git, sampleRepo } from '../support/repos.ts';

const TOKEN = 'remote-s3cret-token';

describe('a job on a git URL', () => {
  let dir: string;
  let server: GitHttpServer;
  let stack: TestStack;
  let base: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'orch-remote-'));
    const work = join(dir, 'work');
    base = await sampleRepo(work, { 'app.txt': 'hello\n', 'old.txt': 'old\n' });
    await git(dir, 'clone', '--quiet', '--bare', work, join(dir, 'remotes', 'demo.git'));
    server = await startGitHttpServer({ root: join(dir, 'remotes'), token: TOKEN });
    stack = await startTestStack('git: {allow_http: true, push_results: true}', {}, { gitToken: TOKEN });
  });
  afterAll(async () => {
    await stack?.stop();
    await server?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('fetches the remote in a step without AI, merges the workers, and pushes fleet/<job_id> back', async () => {
    const submitted = await stack.api('POST', '/api/v1/orchestrate', {
      body: {
        request: 'Change the demo [[plan:2]] [[append:app.txt:world]]',
        source: { git: { url: server.repoUrl('demo'), ref: 'main' } },
      },
    });
    expect(submitted.status, submitted.text).toBe(202);
    const jobId = submitted.json.job_id;
    // The planner waits for the fetch: nothing runs Claude before the base is known.
    const planner = await stack.deps.tasks.getTask(jobId, 0);
    expect(['pending', 'queued', 'launching', 'running', 'succeeded']).toContain(planner?.state);
    expect(await stack.waitForJob(jobId, 60_000)).toBe('completed');

    const result = (await stack.api('GET', `/api/v1/jobs/${jobId}`)).json;
    expect(result.git).toMatchObject({
      source: { kind: 'git', url: server.repoUrl('demo'), ref: 'main' },
      base_commit: base,
      state: 'merged',
      branch: `fleet/${jobId}`,
      pushed_to: `${server.repoUrl('demo')}#refs/heads/fleet/${jobId}`,
    });
    expect(result.steps.map((s: { kind: string; status: string }) => `${s.kind}:${s.status}`)).toEqual([
      'source:succeeded',
      'merge:succeeded',
      'push:succeeded',
    ]);
    const remote = join(dir, 'remotes', 'demo.git');
    expect(await git(remote, 'rev-parse', `fleet/${jobId}`)).toBe(result.git.head_commit);
    expect(await git(remote, 'show', `fleet/${jobId}:app.txt`)).toBe('hello\nworld');
    expect(await git(remote, 'rev-parse', 'main')).toBe(base);
    // Every request to the remote carried the token.
    expect(server.requests.length).toBeGreaterThan(0);
    expect(server.requests.every((r) => r.authorized)).toBe(true);
    expect(server.requests.some((r) => r.path.endsWith('/git-receive-pack'))).toBe(true);
  });

  it('never gives the token to a process that runs Claude', async () => {
    const sessions = await stack.invocations();
    expect(sessions.length).toBeGreaterThan(0);
    for (const s of sessions) {
      expect(s.envKeys).not.toContain('GIT_TOKEN');
      expect(s.envKeys).not.toContain('ORCHESTRATOR_GIT_TOKEN');
      expect(s.envKeys).toContain('GIT_CEILING_DIRECTORIES');
    }
  });

  it('fails the job with the reason when the remote refuses the fetch, and never starts its tasks', async () => {
    const other = await startGitHttpServer({ root: join(dir, 'remotes'), token: 'a-different-token' });
    try {
      const submitted = await stack.api('POST', '/api/v1/orchestrate', {
        body: {
          request: 'Never runs',
          tasks: [{ prompt: 'x [[create:y.txt:z]]' }],
          source: { git: { url: other.repoUrl('demo') } },
        },
      });
      const jobId = submitted.json.job_id;
      expect(await stack.waitForJob(jobId, 60_000)).toBe('failed');
      const result = (await stack.api('GET', `/api/v1/jobs/${jobId}`)).json;
      expect(result.error).toMatch(/^fetching the repository failed: git fetch .* failed/);
      expect(result.error).not.toContain(TOKEN);
      expect(result.results.tasks[0].status).toBe('cancelled');
      const source = await stack.deps.tasks.getTask(jobId, STEP_TASK_NO.source);
      // A refused login does not improve with retries: one attempt.
      expect(source?.attempts).toHaveLength(1);
    } finally {
      await other.stop();
    }
  });

  it('refuses remotes the deployment does not allow before creating anything', async () => {
    const refused = await stack.api('POST', '/api/v1/orchestrate', {
      body: { request: 'x', source: { git: { url: 'file:///etc' } } },
    });
    expect(refused.status).toBe(400);
    expect(refused.json.issues).toEqual([{ path: 'source.git.url', message: expect.stringMatching(/http/) }]);
  });
});
