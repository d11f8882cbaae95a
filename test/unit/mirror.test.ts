/**
 * The local mirror of a job's files (`orchestrator run`): names come from
 * workers, so colliding or unsafe names are skipped one by one with the
 * reason, and nothing is ever written through a link planted in the folder.
 */
import { link, lstat, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ArtifactObject } from '../../functions/adapters/artifacts.ts';
import { jobPrefix } from '../../functions/core/layout.ts';
import { mirrorJob } from '../../functions/local/mirror.ts';
import { makeJob, makeResult, makeTask } from '../support/records.ts';

const JOB = 'job0000000000000001';

/** The job's objects, as the storage lists them (key order). */
function storage(files: Record<string, string>) {
  const prefix = jobPrefix(JOB);
  const keys = Object.keys(files)
    .map((name) => `${prefix}${name}`)
    .sort();
  return {
    list: async (p: string): Promise<ArtifactObject[]> =>
      keys
        .filter((k) => k.startsWith(p))
        .map((key) => ({ key, size: (files[key.slice(prefix.length)] ?? '').length })),
    getBytes: async (key: string) => {
      const text = files[key.slice(prefix.length)];
      return text === undefined ? undefined : new TextEncoder().encode(text);
    },
  };
}

async function tree(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => !e.isDirectory())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1))
    .sort();
}

describe('mirrorJob', () => {
  let scratch: string;
  let workspace: string;
  let outside: string;
  let jobDir: string;
  beforeEach(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'mirror-'));
    workspace = join(scratch, 'workspace');
    outside = join(scratch, 'outside');
    jobDir = join(workspace, `job_${JOB}`);
    await mkdir(outside, { recursive: true });
    await writeFile(join(outside, 'secret.txt'), 'the user file\n');
  });
  afterEach(async () => {
    await rm(scratch, { recursive: true, force: true });
  });

  it('copies every file, byte for byte', async () => {
    const files = {
      'FINAL_RESULT.md': '# done\n',
      'depth_0/worker_1/notes.md': 'n',
      'logs/depth_0_worker_1.log': 'l',
    };
    const out = await mirrorJob(storage(files), JOB, workspace);
    expect(out).toEqual({ dir: jobDir, files: 3, skipped: [], removedLinks: [] });
    expect(await tree(jobDir)).toEqual(Object.keys(files).sort());
    expect(await readFile(join(jobDir, 'depth_0/worker_1/notes.md'), 'utf8')).toBe('n');
  });

  it('skips one of `a` and `a/b` with the reason, and copies everything else', async () => {
    const out = await mirrorJob(
      storage({ 'depth_0/worker_1/a': 'file a', 'depth_0/worker_1/a/b': 'file b', 'FINAL_RESULT.md': 'r' }),
      JOB,
      workspace,
    );
    expect(out.files).toBe(2);
    expect(out.skipped).toEqual([
      {
        path: 'depth_0/worker_1/a/b',
        reason: 'depth_0/worker_1/a is a file of this job, so it cannot also be a folder',
      },
    ]);
    expect(await readFile(join(jobDir, 'depth_0/worker_1/a'), 'utf8')).toBe('file a');
    expect(await readFile(join(jobDir, 'FINAL_RESULT.md'), 'utf8')).toBe('r');
  });

  it('skips names that are not safe relative paths', async () => {
    const out = await mirrorJob(
      storage({ '../escape.txt': 'x', 'a//b': 'x', 'ok.txt': 'ok' }),
      JOB,
      workspace,
    );
    expect(out.files).toBe(1);
    expect(out.skipped.map((s) => s.path).sort()).toEqual(['../escape.txt', 'a//b']);
    expect(await tree(scratch)).toEqual([`outside/secret.txt`, `workspace/job_${JOB}/ok.txt`]);
  });

  it('does not follow a link planted where a file goes: the link is replaced by the file', async () => {
    await mkdir(jobDir, { recursive: true });
    await symlink(join(outside, 'secret.txt'), join(jobDir, 'FINAL_RESULT.md'));
    const out = await mirrorJob(
      storage({ 'FINAL_RESULT.md': 'the report', 'result.json': '{}' }),
      JOB,
      workspace,
    );
    expect(out).toMatchObject({ files: 2, skipped: [], removedLinks: ['FINAL_RESULT.md'] });
    expect((await lstat(join(jobDir, 'FINAL_RESULT.md'))).isFile()).toBe(true);
    expect(await readFile(join(jobDir, 'FINAL_RESULT.md'), 'utf8')).toBe('the report');
    expect(await readFile(join(outside, 'secret.txt'), 'utf8')).toBe('the user file\n');
  });

  it('does not follow a link planted where a folder goes: the link is replaced by a folder', async () => {
    await mkdir(jobDir, { recursive: true });
    await symlink(outside, join(jobDir, 'depth_0'));
    const out = await mirrorJob(
      storage({ 'depth_0/secret.txt': 'mirrored', 'depth_0/new.txt': 'mirrored too' }),
      JOB,
      workspace,
    );
    expect(out).toMatchObject({ files: 2, skipped: [], removedLinks: ['depth_0'] });
    expect(await tree(outside)).toEqual(['secret.txt']);
    expect(await readFile(join(outside, 'secret.txt'), 'utf8')).toBe('the user file\n');
    expect(await tree(jobDir)).toEqual(['depth_0/new.txt', 'depth_0/secret.txt']);
  });

  it('does not follow a link planted as the job folder itself', async () => {
    await mkdir(workspace, { recursive: true });
    await symlink(outside, jobDir);
    const out = await mirrorJob(storage({ 'secret.txt': 'mirrored', 'x.txt': 'x' }), JOB, workspace);
    expect(out).toMatchObject({ files: 2, skipped: [], removedLinks: ['.'] });
    expect(await tree(outside)).toEqual(['secret.txt']);
    expect(await readFile(join(outside, 'secret.txt'), 'utf8')).toBe('the user file\n');
    expect((await lstat(jobDir)).isDirectory()).toBe(true);
  });

  it('copies nothing, and says why, when a file is where the job folder goes', async () => {
    await mkdir(workspace, { recursive: true });
    await writeFile(jobDir, 'planted');
    const out = await mirrorJob(storage({ 'x.txt': 'x' }), JOB, workspace);
    expect(out).toMatchObject({
      files: 0,
      skipped: [{ path: '.', reason: `${jobDir}: a file is where the folder goes` }],
    });
  });

  it('replaces a planted hard link instead of writing into the file it shares', async () => {
    await mkdir(jobDir, { recursive: true });
    await link(join(outside, 'secret.txt'), join(jobDir, 'result.json'));
    const out = await mirrorJob(storage({ 'result.json': '{"real":true}' }), JOB, workspace);
    expect(out).toMatchObject({ files: 1, skipped: [], removedLinks: [] });
    expect(await readFile(join(jobDir, 'result.json'), 'utf8')).toBe('{"real":true}');
    expect(await readFile(join(outside, 'secret.txt'), 'utf8')).toBe('the user file\n');
  });

  it('skips a file whose place is taken by a folder', async () => {
    await mkdir(join(jobDir, 'notes.md'), { recursive: true });
    const out = await mirrorJob(storage({ 'notes.md': 'n', 'other.md': 'o' }), JOB, workspace);
    expect(out.files).toBe(1);
    expect(out.skipped).toEqual([
      { path: 'notes.md', reason: 'notes.md is a folder of this job, so it cannot also be a file' },
    ]);
  });

  it('copies a worker file only as its result recorded it: one written or changed afterwards is skipped', async () => {
    const files = {
      'FINAL_RESULT.md': '# done\n',
      'depth_0/worker_1/kept.md': 'as recorded',
      'depth_0/worker_1/changed.md': 'rewritten after the result',
      'depth_0/worker_1/late.md': 'written after the result',
    };
    const job = makeJob({ jobId: JOB, totalTasks: 1 });
    const task = makeTask(1, {
      jobId: JOB,
      result: makeResult({
        filesCreated: ['kept.md', 'changed.md'],
        fileVersions: [`${'as recorded'.length}:`, '3:'],
      }),
    });
    const out = await mirrorJob(storage(files), JOB, workspace, [{ job, tasks: [task] }]);
    expect(await tree(jobDir)).toEqual(['FINAL_RESULT.md', 'depth_0/worker_1/kept.md']);
    expect(out.skipped.map((f) => f.path).sort()).toEqual([
      'depth_0/worker_1/changed.md',
      'depth_0/worker_1/late.md',
    ]);
    expect(out.skipped[0]?.reason).toMatch(/after the result/);
  });
});
