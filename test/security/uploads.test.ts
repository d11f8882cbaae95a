/**
 * What a worker can put in storage. Upload links are counted per attempt on
 * the server (files and bytes), each signs its file's size and lives no
 * longer than the attempt; the recorded file list is what storage holds when
 * the result is recorded, never what the worker says; an unsafe name is
 * refused on its own and listed in the result.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobPrefix, workerFilesPrefix, workerLogKey } from '../../functions/core/layout.ts';
import type { HeldWorker, HostileStack } from '../support/hostile-worker.ts';
import { startHostileStack } from '../support/hostile-worker.ts';

const MAX_FILES = 5;

/** The artifact links of a GET /report body: key (relative to the root's prefix) and URL. */
function reportLinks(markdown: string): { key: string; url: string }[] {
  const section = markdown.slice(markdown.lastIndexOf('## Artifact links'));
  return [...section.matchAll(/^- \[(.+?)\]\((\S+)\) \(\d+ bytes\)$/gm)].map((m) => ({
    key: (m[1] as string).replace(/\\(.)/g, '$1'),
    url: m[2] as string,
  }));
}

async function put(url: string, body: string | Uint8Array): Promise<number> {
  try {
    const res = await fetch(url, { method: 'PUT', body, signal: AbortSignal.timeout(15_000) });
    await res.text();
    return res.status;
  } catch {
    // A storage front that drops the connection refuses it too.
    return 0;
  }
}

describe('upload scope', () => {
  let hostile: HostileStack;
  const jobs: string[] = [];

  beforeAll(async () => {
    hostile = await startHostileStack(
      `limits: {max_files_per_worker: ${MAX_FILES}, max_upload_mb_per_worker: 1}\nworkers: {max_workers: 4}`,
    );
  });
  afterAll(async () => {
    if (!hostile) return;
    await Promise.all(jobs.map((id) => hostile.waitForJob(id, 90_000).catch(() => undefined)));
    await hostile.stop();
  });

  const capture = async (label: string, prompt = 'a held worker'): Promise<HeldWorker> => {
    const w = await hostile.capture({
      request: `uploads: ${label}`,
      tasks: [{ prompt: `${prompt} [[hold:${label}]]` }],
    });
    jobs.push(w.jobId);
    return w;
  };
  const uploads = (w: HeldWorker, body: Record<string, unknown>) =>
    hostile.withToken(w.token, 'POST', `/api/v1/jobs/${w.jobId}/tasks/${w.taskNo}/uploads`, {
      attempt: w.attempt,
      ...body,
    });
  const stored = async (w: HeldWorker) =>
    (await hostile.deps.artifacts.list(workerFilesPrefix(w.jobId, 0, w.taskNo))).map((o) =>
      o.key.slice(workerFilesPrefix(w.jobId, 0, w.taskNo).length),
    );

  it('attack: upload past the file cap', async () => {
    const w = await capture('file-cap');
    const five = Array.from({ length: MAX_FILES }, (_, i) => ({ path: `f${i}.txt`, size_bytes: 2 }));
    const first = await uploads(w, { files: five });
    expect(first.status, first.text).toBe(200);
    expect(first.json.files).toHaveLength(MAX_FILES);
    expect(first.json.files_left).toBe(0);
    for (const link of first.json.files) expect(await put(link.url, 'ok')).toBe(200);

    // The same names again do not count twice ...
    const again = await uploads(w, { files: five });
    expect(again.status, again.text).toBe(200);
    expect(again.json.files_left).toBe(0);
    // ... but any new name, in any number of requests, is over the cap.
    for (let i = 0; i < 10; i++) {
      const more = await uploads(w, { files: [{ path: `extra_${i}.txt`, size_bytes: 2 }] });
      expect(more.status, more.text).toBe(413);
      expect(more.json).toMatchObject({ code: 'limit_exceeded', limit: 'max_files_per_worker' });
    }
    const big = await uploads(w, {
      files: Array.from({ length: MAX_FILES }, (_, i) => ({ path: `batch_${i}.txt`, size_bytes: 1 })),
    });
    expect(big.status).toBe(413);

    await w.release();
    expect(await hostile.waitForJob(w.jobId)).toBe('completed');
    // Nothing but the five granted names is stored, and the result lists at most those.
    const keys = await stored(w);
    expect(keys.sort()).toEqual(five.map((f) => f.path).sort());
    const task = await hostile.deps.tasks.getTask(w.jobId, w.taskNo);
    expect(task?.state).toBe('succeeded');
    expect(task?.result?.filesCreated.sort()).toEqual(five.map((f) => f.path).sort());
    expect(task?.uploadFiles).toBe(MAX_FILES);
  });

  it('attack: race many upload requests at once past the file cap', async () => {
    const w = await capture('race');
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => uploads(w, { files: [{ path: `race_${i}.txt`, size_bytes: 1 }] })),
    );
    const granted = answers.filter((a) => a.status === 200);
    expect(granted.length).toBeGreaterThan(0);
    expect(granted.length).toBeLessThanOrEqual(MAX_FILES);
    // The rest are refused: over the cap, or counters that kept moving under them.
    for (const a of answers.filter((x) => x.status !== 200))
      expect([409, 413, 429], a.text).toContain(a.status);
    for (const a of granted) expect(await put(a.json.files[0].url, 'r')).toBe(200);
    const counted = await hostile.deps.tasks.getTask(w.jobId, w.taskNo);
    expect(counted?.uploadFiles).toBe(granted.length);
    expect(counted?.uploadPaths?.size).toBe(granted.length);

    await w.release();
    expect(await hostile.waitForJob(w.jobId)).toBe('completed');
    expect((await stored(w)).length).toBeLessThanOrEqual(MAX_FILES);
  });

  it('attack: upload past the byte cap of the attempt', async () => {
    const w = await capture('byte-cap');
    const mb = 1024 * 1024;
    const whole = await uploads(w, { files: [{ path: 'huge.bin', size_bytes: 2 * mb }] });
    expect(whole.status, whole.text).toBe(413);
    expect(whole.json).toMatchObject({ code: 'limit_exceeded', limit: 'max_upload_mb_per_worker' });

    const part = await uploads(w, { files: [{ path: 'part1.bin', size_bytes: 600 * 1024 }] });
    expect(part.status, part.text).toBe(200);
    expect(part.json.bytes_left).toBe(mb - 600 * 1024);
    // A repeat of the same name signs its bytes again: no way around the cap by re-asking.
    for (const path of ['part2.bin', 'part1.bin']) {
      const res = await uploads(w, { files: [{ path, size_bytes: 600 * 1024 }] });
      expect(res.status, `${path}: ${res.text}`).toBe(413);
    }
    const log = await uploads(w, { files: [], log_bytes: 2 * mb });
    expect(log.status).toBe(413);

    await w.release();
    expect(await hostile.waitForJob(w.jobId)).toBe('completed');
    expect(await stored(w)).not.toContain('huge.bin');
    expect(await stored(w)).not.toContain('part2.bin');
    const task = await hostile.deps.tasks.getTask(w.jobId, w.taskNo);
    expect(task?.uploadBytes).toBeLessThanOrEqual(mb);
  });

  it('attack: upload a bigger body than signed', async () => {
    const w = await capture('oversize');
    const res = await uploads(w, { files: [{ path: 'small.txt', size_bytes: 5 }] });
    expect(res.status, res.text).toBe(200);
    const url = new URL(res.json.files[0].url as string);
    expect(url.searchParams.get('X-Amz-SignedHeaders')?.split(';')).toContain('content-length');

    const status = await put(url.toString(), 'x'.repeat(5000));
    expect(status === 0 || status >= 400, `a body of 5000 bytes on a 5-byte link: ${status}`).toBe(true);
    expect(
      await hostile.deps.artifacts.size(`${workerFilesPrefix(w.jobId, 0, w.taskNo)}small.txt`),
    ).toBeUndefined();
    // The link still takes the size it signed.
    expect(await put(url.toString(), 'hello')).toBe(200);

    await w.release();
    expect(await hostile.waitForJob(w.jobId)).toBe('completed');
    expect(await hostile.deps.artifacts.getText(`${workerFilesPrefix(w.jobId, 0, w.taskNo)}small.txt`)).toBe(
      'hello',
    );
  });

  it('attack: reuse an upload URL after the attempt ended', async () => {
    const w = await capture('late-put');
    const res = await uploads(w, {
      files: [
        { path: 'keep.txt', size_bytes: 8 },
        { path: 'late.txt', size_bytes: 8 },
      ],
    });
    expect(res.status, res.text).toBe(200);
    expect(res.json.expires_in).toBeGreaterThan(0);
    expect(res.json.expires_in).toBeLessThanOrEqual(900);
    const url = Object.fromEntries(
      (res.json.files as { path: string; url: string }[]).map((f) => [f.path, f.url]),
    );
    expect(await put(url['keep.txt'] as string, 'original')).toBe(200);
    await w.release();
    expect(await hostile.waitForJob(w.jobId)).toBe('completed');
    const view = (await hostile.api('GET', `/api/v1/jobs/${w.jobId}`)).json;
    const filesBefore = view.results.tasks[0].files_created as string[];
    expect(filesBefore).toContain('keep.txt');
    expect(filesBefore).not.toContain('late.txt');
    const final = await hostile.deps.artifacts.getText(`${jobPrefix(w.jobId)}FINAL_RESULT.md`);

    // After the end: overwrite a recorded file and add one the result never had.
    await put(url['keep.txt'] as string, 'tampered');
    await put(url['late.txt'] as string, 'injected');

    const after = (await hostile.api('GET', `/api/v1/jobs/${w.jobId}`)).json;
    expect(after.results.tasks[0].files_created).toEqual(filesBefore);
    expect(await hostile.deps.artifacts.getText(`${jobPrefix(w.jobId)}FINAL_RESULT.md`)).toBe(final);
    const report = await hostile.api('GET', `/api/v1/jobs/${w.jobId}/report`);
    expect(report.status).toBe(200);
    const links = reportLinks(report.text);
    expect(links.map((l) => l.key)).not.toContain('depth_0/worker_1/late.txt');
    // Whatever the report still links serves what the result recorded, never the later bytes.
    for (const link of links.filter((l) => l.key.startsWith('depth_0/worker_1/'))) {
      const body = await (await fetch(link.url, { signal: AbortSignal.timeout(15_000) })).text();
      expect(body, link.key).not.toMatch(/tampered|injected/);
    }
    if (!links.some((l) => l.key === 'depth_0/worker_1/keep.txt'))
      expect(report.text).toMatch(/worker file\(s\) not linked/);
  });

  it('attack: report files_created with ../ paths and names it never stored', async () => {
    const w = await capture('self-report');
    const res = await uploads(w, { files: [{ path: 'real.txt', size_bytes: 4 }] });
    expect(await put(res.json.files[0].url, 'real')).toBe(200);
    const result = await hostile.withToken(
      w.token,
      'POST',
      `/api/v1/jobs/${w.jobId}/tasks/${w.taskNo}/result`,
      {
        attempt: w.attempt,
        status: 'succeeded',
        output: 'done',
        files_created: ['../../../etc/shadow', 'ghost.txt', 'real.txt'],
        cost_usd: 0,
      },
    );
    expect(result.status, result.text).toBe(200);
    const task = await hostile.deps.tasks.getTask(w.jobId, w.taskNo);
    expect(task?.result?.filesCreated).toEqual(['real.txt']);
    expect(hostile.logs.some((l) => l.message === 'result names files that were not stored')).toBe(true);

    await w.release();
    expect(await hostile.waitForJob(w.jobId)).toBe('completed');
    const view = await hostile.api('GET', `/api/v1/jobs/${w.jobId}`);
    expect(view.json.results.tasks[0].files_created).toEqual(['real.txt']);
    const report = await hostile.api('GET', `/api/v1/jobs/${w.jobId}/report`);
    for (const text of [view.text, report.text]) expect(text).not.toMatch(/shadow|ghost\.txt/);
  });

  it('attack: upload ..\\..\\x among good files', async () => {
    const evil = '..\\..\\x';
    // Asked for directly: the bad name is refused on its own, the good one is signed.
    const probe = await capture('evil-name-api');
    const mixed = await uploads(probe, {
      files: [
        { path: evil, size_bytes: 4 },
        { path: 'good.txt', size_bytes: 4 },
        { path: '../up.txt', size_bytes: 4 },
        'bare-name.txt',
      ],
    });
    expect(mixed.status, mixed.text).toBe(200);
    expect(mixed.json.files.map((f: { path: string }) => f.path)).toEqual(['good.txt']);
    expect(mixed.json.refused.map((r: { path: string }) => r.path)).toEqual([
      evil,
      '../up.txt',
      'bare-name.txt',
    ]);
    for (const r of mixed.json.refused) expect(r.reason).toMatch(/\w/);
    // Only bad names: nothing to sign, refused as a whole with the reasons.
    const onlyBad = await uploads(probe, { files: [{ path: evil, size_bytes: 1 }] });
    expect(onlyBad.status).toBe(403);
    expect(onlyBad.text).toContain('backslash');
    await probe.release();

    // End to end: the session leaves a file named ..\..\x next to good ones.
    const w = await capture('evil-name', '[[create:good.txt:fine]] [[create:notes/a.md:also fine]]');
    await writeFile(join(w.cwd, evil), 'evil\n');
    await w.release();
    expect(await hostile.waitForJob(w.jobId)).toBe('completed');
    const task = (await hostile.api('GET', `/api/v1/jobs/${w.jobId}`)).json.results.tasks[0];
    expect(task.status).toBe('succeeded');
    expect([...task.files_created].sort()).toEqual(['good.txt', 'notes/a.md']);
    expect(task.refused_files).toEqual([{ path: evil, reason: expect.stringMatching(/backslash/) }]);
    // The log went up, and says what was refused.
    const log = await hostile.deps.artifacts.getText(workerLogKey(w.jobId, 0, w.taskNo));
    expect(log).toContain(`refused by the API: ${evil}`);
    // Nothing named x anywhere, inside the job's prefix or outside it.
    const keys = (await hostile.deps.artifacts.list('')).map((o) => o.key);
    expect(keys.filter((k) => k.includes('\\') || /(^|\/)x$/.test(k) || k.includes('..'))).toEqual([]);
    expect(await hostile.waitForJob(probe.jobId)).toBe('completed');
  });
});
