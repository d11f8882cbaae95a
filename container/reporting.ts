/**
 * What every kind of worker does at the end of its attempt: upload its files,
 * git artifacts and log through presigned links, then post its result.
 */
import { lstat, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { OrchestratorClient } from '../functions/client/orchestrator-client.ts';
import type { GitArtifact } from '../functions/core/api-schemas.ts';
import { redact } from '../functions/core/redact.ts';
import type { UploadLinks } from '../functions/services/worker-access.ts';
import { currentProgress } from './progress-reporter.ts';
import { currentTally } from './run-claude.ts';

const MAX_FILE_BYTES = 100 * 1024 * 1024;
const UPLOAD_CONCURRENCY = 4;

/** A running note of the attempt, uploaded as its log. */
export class AttemptLog {
  readonly lines: string[] = [];

  note(line: string): void {
    this.lines.push(`[${new Date().toISOString()}] ${line}`);
  }

  raw(...lines: string[]): void {
    this.lines.push(...lines);
  }

  text(): string {
    return this.lines.join('\n');
  }
}

export interface Uploads {
  /** Paths relative to `dir`, uploaded under the worker's own prefix. */
  files?: string[] | undefined;
  dir?: string | undefined;
  /** Git artifacts by name, as local files. */
  git?: Partial<Record<GitArtifact, string>> | undefined;
  /** The attempt's log; a function is read after everything else is uploaded (so it can note how long that took). */
  log: string | (() => string);
}

/**
 * Asks for presigned URLs, each for a file's exact size, then uploads
 * (bounded concurrency), and the log with a note of anything refused or
 * skipped. A log known up front (a string) is asked for in the same request
 * as the files, so a clean attempt makes one request; a note after the fact,
 * or a log read last (a function), takes a second request for the log. A file
 * the API refuses, or that cannot be read as it was sized, is left out on its
 * own; a git artifact that cannot go up, or a request the API refuses as a
 * whole (over a limit), fails the call after the log is up. Returns the file
 * paths uploaded.
 */
export async function uploadAll(
  api: OrchestratorClient,
  base: string,
  attempt: number,
  uploads: Uploads,
): Promise<string[]> {
  const notes: string[] = [];
  const dir = uploads.dir ?? '.';
  const files: { path: string; size_bytes: number }[] = [];
  for (const path of uploads.files ?? []) {
    const info = await lstat(join(dir, path)).catch(() => undefined);
    if (!info?.isFile()) notes.push(`not uploaded: ${path}: not a regular file`);
    else if (info.size > MAX_FILE_BYTES)
      notes.push(`not uploaded: ${path}: larger than ${MAX_FILE_BYTES} bytes`);
    else files.push({ path, size_bytes: info.size });
  }
  const artifacts = await Promise.all(
    (Object.entries(uploads.git ?? {}) as [GitArtifact, string][]).map(async ([name, file]) => ({
      name,
      file,
      size_bytes: (await stat(file)).size,
    })),
  );
  const logText = () => redact(typeof uploads.log === 'function' ? uploads.log() : uploads.log);
  // The log as it stands, sent with the files unless something has to be noted in it already.
  const early =
    typeof uploads.log === 'string' && notes.length === 0 ? Buffer.from(logText(), 'utf8') : undefined;

  const uploaded: string[] = [];
  let failure: unknown;
  let bytesLeft: number | undefined;
  let logSent = false;
  if (files.length > 0 || artifacts.length > 0) {
    try {
      const ask = (withLog: boolean) =>
        api.request<UploadLinks>('POST', `${base}/uploads`, {
          body: {
            attempt,
            files,
            git: artifacts.map(({ name, size_bytes }) => ({ name, size_bytes })),
            ...(withLog && early ? { log_bytes: early.byteLength } : {}),
          },
        });
      // Over a limit with the log counted in: ask without it, and cut the log to what is left after.
      const links = early ? await ask(true).catch(() => ask(false)) : await ask(false);
      bytesLeft = links.bytes_left;
      for (const r of links.refused ?? []) notes.push(`refused by the API: ${r.path}: ${r.reason}`);
      const sizes = new Map(files.map((f) => [f.path, f.size_bytes]));
      const jobs: (() => Promise<void>)[] = [];
      for (const link of links.files) {
        jobs.push(async () => {
          try {
            const body = await readFile(join(dir, link.path));
            // The link signs the size asked for: a file that changed since is left out, not sent.
            if (body.byteLength !== sizes.get(link.path))
              throw new Error(`changed size while uploading (${body.byteLength} bytes)`);
            await api.putPresigned(link.url, body);
            uploaded.push(link.path);
          } catch (err) {
            notes.push(`not uploaded: ${link.path}: ${(err as Error).message}`);
          }
        });
      }
      for (const { name, file } of artifacts) {
        const url = links.git?.[name]?.url;
        if (!url) throw new Error(`the API gave no upload link for the ${name}`);
        jobs.push(async () => api.putPresigned(url, await readFile(file), { timeoutMs: 15 * 60_000 }));
      }
      const logUrl = links.log?.url;
      if (early && logUrl)
        jobs.push(async () => {
          await api.putPresigned(logUrl, early);
          logSent = true;
        });
      await runBounded(jobs, UPLOAD_CONCURRENCY);
    } catch (err) {
      failure = err;
      notes.push(`uploads failed: ${(err as Error).message}`);
    }
  }
  if (logSent && notes.length === 0) {
    if (failure !== undefined) throw failure;
    return uploaded.sort();
  }

  try {
    let text = logText();
    if (notes.length > 0) text += `\n--- uploads ---\n${notes.join('\n')}\n`;
    let body = Buffer.from(text, 'utf8');
    if (bytesLeft !== undefined && body.byteLength > bytesLeft) {
      const marker = Buffer.from('\n[log cut to what limits.max_upload_mb_per_worker leaves]\n');
      body = Buffer.concat([body.subarray(0, Math.max(0, bytesLeft - marker.byteLength)), marker]).subarray(
        0,
        Math.max(0, bytesLeft),
      );
    }
    const link = await api.request<UploadLinks>('POST', `${base}/uploads`, {
      body: { attempt, files: [], log_bytes: body.byteLength },
    });
    if (link.log) await api.putPresigned(link.log.url, body);
  } catch (err) {
    failure ??= err;
  }
  if (failure !== undefined) throw failure;
  return uploaded.sort();
}

async function runBounded(jobs: readonly (() => Promise<void>)[], concurrency: number): Promise<void> {
  const queue = [...jobs];
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let next = queue.shift(); next; next = queue.shift()) await next();
    }),
  );
}

/** The result a worker posts, in the API's snake_case. */
export interface ResultBody {
  attempt: number;
  status: 'succeeded' | 'failed' | 'timed_out';
  output: string;
  files_created?: string[];
  cost_usd: number;
  num_turns: number;
  duration_ms: number;
  session_id?: string;
  structured_output?: unknown;
  error?: string;
  exit_code?: number;
  retryable: boolean;
  git?: Record<string, unknown>;
}

/**
 * Posts the attempt's result, with what its Claude sessions used (tokens,
 * peak memory) added from the attempt's tally, whichever step posts it.
 */
export async function postResult(api: OrchestratorClient, base: string, body: ResultBody): Promise<void> {
  // The last progress rides on the result: stored before it, while the attempt is still live.
  const events = (await currentProgress()?.finish(body.status)) ?? [];
  const tally = currentTally();
  const sent = {
    ...(events.length > 0 && { events }),
    ...(tally?.usage && { usage: tally.usage }),
    ...(tally?.peakMemoryMb !== undefined && { peak_memory_mb: tally.peakMemoryMb }),
    ...body,
  };
  await api.request('POST', `${base}/result`, { body: sent });
}
