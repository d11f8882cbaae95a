/**
 * The repository phase of `npm run bench` (alone: `npm run bench:repo`): a
 * repository of BENCH_REPO_FILES (10,000) files and about 100 MB, with
 * uncommitted changes, and BENCH_REPO_WORKERS (5) workers each changing
 * BENCH_REPO_CHANGES (10) files, through local mode with the test double.
 *
 * It prints the time of each git step (snapshot, upload, checkout, commit,
 * worker upload, merge, fetch back), what the git steps add to a job (the
 * same job without a repository is the baseline), and each worker's upload
 * next to the compressed size of the content it changed.
 * BENCH_REPO_SANDBOX (auto, bwrap or none) sets `orchestrator.sandbox`, to
 * tell the sandbox's share of the checkout apart.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { deflateSync } from 'node:zlib';
import { nodeHttpTransport } from '../functions/client/node-transport.ts';
import { OrchestratorClient } from '../functions/client/orchestrator-client.ts';
import {
  mergeBundleKey,
  STEP_TASK_NO,
  workerBundleKey,
  workerLogKey,
  workerPatchKey,
} from '../functions/core/layout.ts';
import { addResultBranch, snapshotRepository } from '../functions/local/repo-snapshot.ts';
import { startTestStack, type TestStack } from '../test/support/harness.ts';
import { git } from '../test/support/repos.ts';
import { apiCall, percentile, table, waitForJobs } from './common.ts';

const int = (v: string | undefined, d: number) => (v && Number.isFinite(Number(v)) ? Number(v) : d);
const FILES = int(process.env.BENCH_REPO_FILES, 10_000);
const FILE_BYTES = int(process.env.BENCH_REPO_FILE_BYTES, 10_000);
const WORKERS = int(process.env.BENCH_REPO_WORKERS, 5);
const CHANGES = int(process.env.BENCH_REPO_CHANGES, 10);
const SANDBOX = process.env.BENCH_REPO_SANDBOX ?? 'auto';
const DIRS = 100;

const path = (i: number) => `src/d${String(i % DIRS).padStart(3, '0')}/file${String(i).padStart(5, '0')}.txt`;

/** Lines of random base64: compresses to about three quarters, like dense source code. */
function fileText(bytes: number): string {
  const raw = randomBytes(Math.ceil((bytes * 3) / 4)).toString('base64');
  return `${raw.match(/.{1,76}/g)?.join('\n') ?? ''}\n`;
}

async function buildRepository(root: string): Promise<void> {
  await git(root, 'init', '--quiet', '-b', 'main');
  for (let d = 0; d < DIRS; d++)
    await mkdir(join(root, `src/d${String(d).padStart(3, '0')}`), { recursive: true });
  const batch = 500;
  for (let i = 0; i < FILES; i += batch) {
    await Promise.all(
      Array.from({ length: Math.min(batch, FILES - i) }, (_, k) =>
        writeFile(join(root, path(i + k)), fileText(FILE_BYTES)),
      ),
    );
  }
  await git(root, 'add', '-A');
  await git(root, '-c', 'gc.auto=0', 'commit', '--quiet', '-m', 'Benchmark base');
  // As in a repository in daily use: history packed, and an index written after the files it
  // describes (files as new as their index entry are "racily clean" and would all be hashed again).
  await git(root, 'gc', '--quiet');
  await new Promise((r) => setTimeout(r, 1100));
  await git(root, 'update-index', '--really-refresh');
  // Uncommitted work, so the snapshot has something to stage.
  await writeFile(join(root, 'NOTES.md'), '# Uncommitted notes\n');
  await writeFile(join(root, path(FILES - 1)), fileText(FILE_BYTES));
}

/** The n-th worker changes the first line of CHANGES files no other worker touches. */
function workerTasks(edit: boolean): { title: string; prompt: string }[] {
  return Array.from({ length: WORKERS }, (_, w) => {
    const files = Array.from({ length: CHANGES }, (_, c) => path(w * CHANGES + c));
    const marks = files.map((f) =>
      edit
        ? `[[edit_line:${f}:1:changed by worker ${w + 1}]]`
        : `[[create:out/${w + 1}/${f.replaceAll('/', '_')}:x]]`,
    );
    return {
      title: `Change ${CHANGES} files (${w + 1})`,
      prompt: `Benchmark edit ${w + 1} ${marks.join(' ')}`,
    };
  });
}

const num = (re: RegExp, text: string, group = 1) => Number(re.exec(text)?.[group] ?? Number.NaN);

async function runJob(
  stack: TestStack,
  body: Record<string, unknown>,
): Promise<{ jobId: string; wallMs: number }> {
  const t = performance.now();
  const submitted = await apiCall(stack, 'POST', '/api/v1/orchestrate', body);
  if (submitted.status !== 202)
    throw new Error(`submit: ${submitted.status} ${JSON.stringify(submitted.json)}`);
  const jobId = submitted.json.job_id as string;
  const done = await waitForJobs(stack.deps.jobs, [jobId], 600_000);
  if (done.get(jobId) !== 'completed') throw new Error(`job ${jobId} ended ${done.get(jobId)}`);
  return { jobId, wallMs: performance.now() - t };
}

export interface RepoBenchResult {
  addedMs: number;
  uploadRatios: number[];
}

export async function repoPhase(): Promise<RepoBenchResult> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-repo-'));
  const root = join(dir, 'repo');
  await mkdir(root);
  const stack = await startTestStack(
    `workers: {max_workers: ${WORKERS}}\nlimits: {max_source_mb: 1000}\norchestrator: {sandbox: ${SANDBOX}}`,
  );
  try {
    console.log(
      `\nRepository phase: ${FILES.toLocaleString('en-US')} files of ${FILE_BYTES.toLocaleString('en-US')} bytes (${Math.round((FILES * FILE_BYTES) / 1e6)} MB), ${WORKERS} workers changing ${CHANGES} files each, sandbox ${SANDBOX}`,
    );
    await buildRepository(root);

    // Baseline: the same job without a repository (the workers create files instead).
    const plain = await runJob(stack, {
      request: 'Benchmark without a repository',
      tasks: workerTasks(false),
    });

    let t = performance.now();
    const snapshot = await snapshotRepository(root);
    const snapshotMs = performance.now() - t;
    const bundleBytes = (await stat(snapshot.bundleFile)).size;
    t = performance.now();
    const body = await readFile(snapshot.bundleFile);
    // Through node:http, as `orchestrator run` uploads it.
    const uploader = new OrchestratorClient(stack.apiUrl, stack.apiKey, { transport: nodeHttpTransport });
    const bundleId = await uploader.uploadSource(body);
    const uploadMs = performance.now() - t;

    const repoJob = await runJob(stack, {
      request: 'Benchmark on a repository',
      tasks: workerTasks(true),
      source: { bundle_id: bundleId },
    });
    t = performance.now();
    const info = await apiCall(stack, 'GET', `/api/v1/jobs/${repoJob.jobId}/bundle`);
    const resultFile = join(dir, 'result.bundle');
    await writeFile(resultFile, Buffer.from(await (await fetch(info.json.url)).arrayBuffer()));
    await addResultBranch(snapshot, resultFile, info.json.branch);
    const fetchBackMs = performance.now() - t;

    const artifacts = stack.deps.artifacts;
    const rows: (string | number)[][] = [];
    const checkout: number[] = [];
    const commit: number[] = [];
    const upload: number[] = [];
    const ratios: number[] = [];
    for (let n = 1; n <= WORKERS; n++) {
      const log = (await artifacts.getText(workerLogKey(repoJob.jobId, 0, n))) ?? '';
      const co = num(/git: checkout of \w+ in (\d+) ms/, log);
      const split =
        /\(download (\d+) ms, fetch (\d+) ms, checkout (\d+) ms/.exec(log)?.slice(1).join(' / ') ?? '-';
      const cm =
        num(/in (\d+) ms; bundle and patch in (\d+) ms/, log) +
        num(/in (\d+) ms; bundle and patch in (\d+) ms/, log, 2);
      const up = num(/git: upload in (\d+) ms/, log);
      const sent =
        ((await artifacts.size(workerBundleKey(repoJob.jobId, 0, n))) ?? 0) +
        ((await artifacts.size(workerPatchKey(repoJob.jobId, 0, n))) ?? 0);
      // The content this worker changed, compressed: the new version of each file it edited.
      let changed = 0;
      for (let c = 0; c < CHANGES; c++) {
        const f = path((n - 1) * CHANGES + c);
        changed += deflateSync(
          await git(root, 'show', `${info.json.branch}:${f}`).then((s) => Buffer.from(`${s}\n`)),
        ).length;
      }
      checkout.push(co);
      commit.push(cm);
      upload.push(up);
      ratios.push(sent / changed);
      rows.push([`worker_${n}`, co, split, cm, up, sent, changed, (sent / changed).toFixed(2)]);
    }
    const mergeLog = (await artifacts.getText(workerLogKey(repoJob.jobId, 0, STEP_TASK_NO.merge))) ?? '';
    const mergeMs = num(/changed \(\+\d+ -\d+\) in (\d+) ms/, mergeLog);
    const resultBytes = (await artifacts.size(mergeBundleKey(repoJob.jobId))) ?? 0;

    console.log(
      table(
        [
          'worker',
          'checkout ms',
          'download / fetch / checkout ms',
          'commit + bundle + patch ms',
          'upload ms',
          'uploaded bytes',
          'compressed change bytes',
          'ratio',
        ],
        rows,
      ),
    );
    const addedMs = snapshotMs + uploadMs + fetchBackMs + (repoJob.wallMs - plain.wallMs);
    console.log(
      table(
        ['git step', 'ms', 'note'],
        [
          [
            'snapshot (temporary index + bundle of HEAD and the changes)',
            snapshotMs.toFixed(0),
            `${(bundleBytes / 1e6).toFixed(1)} MB bundle`,
          ],
          ['upload of the bundle (POST /sources + PUT)', uploadMs.toFixed(0), ''],
          [
            'checkout per worker, p50 / max',
            `${percentile(checkout, 50)} / ${Math.max(...checkout)}`,
            'download + fetch + checkout, workers in parallel',
          ],
          [
            'commit per worker, p50 / max',
            `${percentile(commit, 50)} / ${Math.max(...commit)}`,
            'add -A, commit, bundle base..commit, patch',
          ],
          ['worker upload, p50 / max', `${percentile(upload, 50)} / ${Math.max(...upload)}`, ''],
          [
            `merge step (objects, ${WORKERS} tree merges, result bundle and patch)`,
            String(mergeMs),
            `${resultBytes} bytes result bundle`,
          ],
          ['fetch back into the repository as fleet/<job_id>', fetchBackMs.toFixed(0), ''],
          [
            'job wall time, without / with the repository',
            `${plain.wallMs.toFixed(0)} / ${repoJob.wallMs.toFixed(0)}`,
            '',
          ],
          [
            'git steps added to the job',
            addedMs.toFixed(0),
            addedMs <= 10_000 ? 'target ≤ 10 s: met' : 'target ≤ 10 s: MISSED',
          ],
          [
            'worker upload / compressed change, max',
            Math.max(...ratios).toFixed(2),
            Math.max(...ratios) <= 2 ? 'target ≤ 2: met' : 'target ≤ 2: MISSED',
          ],
        ],
      ),
    );
    console.log(
      "added = snapshot + upload + fetch back + (job wall with the repository - the same job without one); compressed change = deflate of each changed file's new version.",
    );
    await snapshot.cleanup();
    return { addedMs, uploadRatios: ratios };
  } finally {
    await stack.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await repoPhase();
  process.exit(0);
}
