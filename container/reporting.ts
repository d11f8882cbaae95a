/**
 * What every kind of worker does at the end of its attempt: upload its files,
 * git artifacts and log through presigned links, then post its result.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { GitArtifact } from '../functions/core/api-schemas.ts';
import type { UploadLinks } from '../functions/services/worker-access.ts';
import { putPresigned, type WorkerApiClient } from './api-client.ts';

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

/** Asks for presigned URLs, then uploads (bounded concurrency). Returns the file paths uploaded. */
export async function uploadAll(
  api: WorkerApiClient,
  base: string,
  attempt: number,
  uploads: Uploads,
): Promise<string[]> {
  const files = uploads.files ?? [];
  const artifacts = Object.entries(uploads.git ?? {}) as [GitArtifact, string][];
  const links = await api.call<UploadLinks>('POST', `${base}/uploads`, {
    attempt,
    files,
    include_log: true,
    git: artifacts.map(([name]) => name),
  });
  const jobs: (() => Promise<void>)[] = [];
  const uploaded: string[] = [];
  for (const link of links.files) {
    jobs.push(async () => {
      const body = await readFile(join(uploads.dir ?? '.', link.path));
      if (body.byteLength > MAX_FILE_BYTES) return;
      await putPresigned(link.url, body);
      uploaded.push(link.path);
    });
  }
  for (const [name, file] of artifacts) {
    const url = links.git?.[name]?.url;
    if (!url) throw new Error(`the API gave no upload link for the ${name}`);
    jobs.push(async () => putPresigned(url, await readFile(file), 4, 15 * 60_000));
  }
  const queue = [...jobs];
  await Promise.all(
    Array.from({ length: UPLOAD_CONCURRENCY }, async () => {
      for (let next = queue.shift(); next; next = queue.shift()) await next();
    }),
  );
  if (links.log)
    await putPresigned(links.log.url, typeof uploads.log === 'function' ? uploads.log() : uploads.log);
  return uploaded.sort();
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

export async function postResult(api: WorkerApiClient, base: string, body: ResultBody): Promise<void> {
  await api.call('POST', `${base}/result`, body);
}
