/**
 * Local mode's worker bundle: reused while its sources are unchanged, built
 * anew as soon as one changes (never stale code), and safe to build from
 * several processes at once. A small project of its own stands for the
 * worker's sources.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LaunchRefusedError } from '../../functions/adapters/launcher.ts';
import { LocalLauncher } from '../../functions/local/local-launcher.ts';
import { defaultCacheDir, ensureWorkerBundle } from '../../functions/local/worker-bundle.ts';

const exec = promisify(execFile);

describe('the local worker bundle', () => {
  let root: string;
  let cacheDir: string;
  const cache = () => ({ cacheDir, root, entryPoints: { worker: 'main.ts', spawn: 'spawn.ts' } });
  /** Sources written a while ago: a file changed just before a build is never trusted (see SETTLE_MS). */
  const write = async (name: string, text: string) => {
    await writeFile(join(root, name), text);
    const past = new Date(Date.now() - 60_000 - Math.floor(Math.random() * 60_000));
    await utimes(join(root, name), past, past);
  };
  const run = async (entry: string) => (await exec(process.execPath, [entry])).stdout.trim();

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'fleet-bundle-src-'));
    cacheDir = join(root, 'cache');
    await write('main.ts', "import { msg } from './msg.ts';\nconsole.log(msg satisfies string);\n");
    await write('msg.ts', "export const msg: string = 'one';\n");
    await write('spawn.ts', "console.log('spawn');\n");
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('is reused while no input changed, and rebuilt when one did', async () => {
    const first = await ensureWorkerBundle(cache());
    expect(first.built).toBe(true);
    expect(await run(first.entry)).toBe('one');

    const again = await ensureWorkerBundle(cache());
    expect(again).toEqual({ ...first, built: false });

    // A new mtime with the same content (a checkout, a touch) is no change.
    const later = new Date(Date.now() - 5_000);
    await utimes(join(root, 'msg.ts'), later, later);
    expect(await ensureWorkerBundle(cache())).toEqual({ ...first, built: false });

    // The same size, only the content differs: the bundle must follow it.
    await write('msg.ts', "export const msg: string = 'two';\n");
    const changed = await ensureWorkerBundle(cache());
    expect(changed.built).toBe(true);
    expect(changed.dir).not.toBe(first.dir);
    expect(await run(changed.entry)).toBe('two');
    expect(await ensureWorkerBundle(cache())).toEqual({ ...changed, built: false });

    // Back to the first content: the first bundle is the right one again.
    await write('msg.ts', "export const msg: string = 'one';\n");
    const back = await ensureWorkerBundle(cache());
    expect(back.dir).toBe(first.dir);
    expect(await run(back.entry)).toBe('one');
  });

  it('follows a new import, and a removed input', async () => {
    const first = await ensureWorkerBundle(cache());
    await write('extra.ts', "export const extra = 'extra';\n");
    await write(
      'main.ts',
      "import { extra } from './extra.ts';\nimport { msg } from './msg.ts';\nconsole.log(msg, extra);\n",
    );
    const grown = await ensureWorkerBundle(cache());
    expect(grown.built).toBe(true);
    expect(await run(grown.entry)).toBe('one extra');

    await rm(join(root, 'extra.ts'));
    await write('main.ts', "import { msg } from './msg.ts';\nconsole.log(msg satisfies string);\n");
    const shrunk = await ensureWorkerBundle(cache());
    expect(shrunk.dir).toBe(first.dir);
  });

  it('is never reused when a source changed right before or during its build', async () => {
    // Just written: esbuild may have read the file before or after this change.
    await writeFile(join(root, 'msg.ts'), "export const msg: string = 'new';\n");
    const unsettled = await ensureWorkerBundle(cache());
    expect(await run(unsettled.entry)).toBe('new');
    const next = await ensureWorkerBundle(cache());
    expect(next.built).toBe(true);
    expect(next.dir).not.toBe(unsettled.dir);
  });

  it('comes out whole when several processes build it at once', async () => {
    const all = await Promise.all([1, 2, 3].map(() => ensureWorkerBundle(cache())));
    expect(new Set(all.map((b) => b.dir)).size).toBe(1);
    const [one] = all;
    expect(await run(one?.entry as string)).toBe('one');
    // No temporary folders left behind.
    expect((await readdir(cacheDir)).filter((n) => n.startsWith('.tmp-'))).toEqual([]);
    // `orchestrator spawn` for Claude, next to the bundle.
    const bin = join(one?.dir as string, 'bin', 'orchestrator');
    expect((await stat(bin)).mode & 0o111).toBe(0o111);
    expect((await exec(bin)).stdout.trim()).toBe('spawn');
  });

  it("fails a launch with esbuild's message while a source does not compile, and launches once it does", async () => {
    await write('msg.ts', 'export const msg: string = ;\n');
    const launcher = new LocalLauncher({
      apiUrl: 'http://127.0.0.1:9',
      maxConcurrent: 1,
      claudeCommand: 'claude',
      workspaceDir: join(root, 'workers'),
      workerBundle: () => ensureWorkerBundle(cache()),
    });
    const request = {
      jobId: 'job1',
      taskNo: 1,
      attempt: 1,
      taskToken: 'x',
      timeoutSec: 60,
      kind: 'work' as const,
    };
    try {
      const refused = launcher.launch(request);
      await expect(refused).rejects.toBeInstanceOf(LaunchRefusedError);
      // Retrying the same sources cannot help: the attempt fails with the reason.
      await expect(refused).rejects.toMatchObject({
        retryable: false,
        message: expect.stringMatching(/could not build the worker: .*msg\.ts/s),
      });
      await write('msg.ts', "export const msg: string = 'fixed';\n");
      await expect(launcher.launch(request)).resolves.toMatchObject({ handle: expect.any(String) });
    } finally {
      await launcher.shutdown();
    }
  });

  it("is kept in the package's node_modules, or the user's cache folder, never a shared temporary folder", async () => {
    await mkdir(join(root, 'node_modules'));
    expect(defaultCacheDir(root)).toBe(join(root, 'node_modules', '.cache', 'claude-fleet'));
    expect(defaultCacheDir(join(root, 'missing'), { XDG_CACHE_HOME: '/home/u/.cache' })).toBe(
      '/home/u/.cache/claude-fleet',
    );
  });
});
