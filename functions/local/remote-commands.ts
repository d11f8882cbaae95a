/**
 * The commands that drive any orchestrator API through the client: a
 * deployment's, `orchestrator serve`'s, or LocalStack's. They start nothing
 * locally; the API and key come from --api-url/--api-key or
 * ORCHESTRATOR_API_URL/ORCHESTRATOR_API_KEY.
 */
import { type Command, InvalidArgumentError } from 'commander';
import { OrchestratorClient } from '../client/orchestrator-client.ts';
import type { JobResult } from '../core/result-format.ts';
import { isTerminalJobStatus } from '../core/task-states.ts';
import { EXIT, exitCodeOf, UsageError } from './exit-codes.ts';
import { followLog } from './log-follower.ts';
import { watchJob } from './watch.ts';

interface ApiOptions {
  apiUrl?: string;
  apiKey?: string;
  json?: boolean;
}

export function clientFrom(options: ApiOptions, env: NodeJS.ProcessEnv = process.env): OrchestratorClient {
  const url = options.apiUrl ?? env.ORCHESTRATOR_API_URL;
  const key = options.apiKey ?? env.ORCHESTRATOR_API_KEY;
  if (!url) throw new UsageError('--api-url <url> (or ORCHESTRATOR_API_URL) is required');
  if (!/^https?:\/\/[^\s]+$/.test(url))
    throw new UsageError(`--api-url must be an http(s) URL, got "${url}"`);
  if (!key) throw new UsageError('--api-key <key> (or ORCHESTRATOR_API_KEY) is required');
  return new OrchestratorClient(url, key);
}

/** A commander parser for a whole number of at least 1, naming the flag in its error. */
export const positiveInt = (name: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new InvalidArgumentError(`${name} must be a whole number of at least 1`);
  return n;
};

const out = (text: string): void => {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
};
const say = (line: string) => process.stderr.write(`${line}\n`);

function withApi(cmd: Command): Command {
  return cmd
    .option('--api-url <url>', 'the API (default: $ORCHESTRATOR_API_URL)')
    .option('--api-key <key>', 'an API key (default: $ORCHESTRATOR_API_KEY)');
}

/** Adds submit, status, watch, logs, result, report, cancel and jobs to the program. */
export function addRemoteCommands(program: Command): void {
  withApi(program.command('submit'))
    .description(
      'submit a request to the API and print the job id (with --wait: wait and exit with its outcome)',
    )
    .argument('<request...>', 'what you want done, in natural language')
    .option('--workers <n>', 'max parallel workers', positiveInt('--workers'))
    .option('--no-recursion', 'workers may not split their subtask into child jobs')
    .option('--budget <usd>', 'spend limit of the whole job, in dollars', (v) => {
      const n = Number(v);
      if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('--budget must be a positive number');
      return n;
    })
    .option(
      '--task <prompt>',
      'a subtask, given instead of letting the planner split the request (repeat for more)',
      (value: string, list: string[] = []) => [...list, value],
    )
    .option('--idempotency-key <key>', 'a repeat with the same key returns the same job')
    .option('--wait', 'follow the job as watch does and exit with its outcome')
    .option('--json', 'print the API answer as JSON')
    .action(
      async (
        words: string[],
        options: ApiOptions & {
          workers?: number;
          recursion: boolean;
          budget?: number;
          idempotencyKey?: string;
          wait?: boolean;
          task?: string[];
        },
      ) => {
        const client = clientFrom(options);
        const submitted = await client.orchestrate(
          {
            request: words.join(' '),
            config: {
              ...(options.workers !== undefined ? { max_workers: options.workers } : {}),
              ...(options.recursion === false ? { enable_recursion: false } : {}),
              ...(options.budget !== undefined ? { max_budget_usd: options.budget } : {}),
            },
            ...(options.task ? { tasks: options.task.map((prompt) => ({ prompt })) } : {}),
          },
          options.idempotencyKey ? { idempotencyKey: options.idempotencyKey } : {},
        );
        if (options.json && !options.wait) return out(JSON.stringify(submitted, null, 2));
        out(submitted.job_id);
        if (!options.wait) {
          say(`follow it: orchestrator watch ${submitted.job_id}`);
          return;
        }
        const result = await watchJob(client, submitted.job_id, { json: Boolean(options.json) });
        process.exitCode = exitCodeOf(result.status);
      },
    );

  withApi(program.command('status'))
    .description("print a job's status: tasks by state")
    .argument('<job>', 'job id')
    .option('--json', 'print the API answer as JSON')
    .action(async (jobId: string, options: ApiOptions) => {
      const s = await clientFrom(options).status(jobId);
      if (options.json) return out(JSON.stringify(s, null, 2));
      const states = Object.entries(s.tasks)
        .filter(([, n]) => n > 0)
        .map(([state, n]) => `${n} ${state}`)
        .join(', ');
      out(
        `${s.job_id} ${s.status}: ${s.finished_tasks}/${s.total_tasks} finished${states ? ` (${states})` : ''}`,
      );
      if (isTerminalJobStatus(s.status)) process.exitCode = exitCodeOf(s.status);
    });

  withApi(program.command('watch'))
    .description('follow a job live (a tree of workers; plain lines when not a terminal) until it ends')
    .argument('<job>', 'job id')
    .option('--json', 'print the result as JSON when the job ends')
    .action(async (jobId: string, options: ApiOptions) => {
      const result = await watchJob(clientFrom(options), jobId, { json: Boolean(options.json) });
      process.exitCode = exitCodeOf(result.status);
    });

  withApi(program.command('logs'))
    .description("print a worker's log (redacted); -f follows it while the worker runs")
    .argument('<job>', 'job id')
    .argument('<worker>', 'worker id, e.g. worker_2 or worker_2_1')
    .option('-f, --follow', 'keep printing new lines until the worker ends')
    .option('--attempt <n>', 'which attempt (default: the latest)', positiveInt('--attempt'))
    .action(
      async (jobId: string, worker: string, options: ApiOptions & { follow?: boolean; attempt?: number }) => {
        await followLog(clientFrom(options), jobId, worker, {
          follow: Boolean(options.follow),
          ...(options.attempt !== undefined ? { attempt: options.attempt } : {}),
          write: (text) => process.stdout.write(text),
        });
      },
    );

  withApi(program.command('result'))
    .description("print a job's result as JSON (what result.json holds)")
    .argument('<job>', 'job id')
    .action(async (jobId: string, options: ApiOptions) => {
      const result: JobResult = await clientFrom(options).result(jobId);
      out(JSON.stringify(result, null, 2));
      if (isTerminalJobStatus(result.status)) process.exitCode = exitCodeOf(result.status);
    });

  withApi(program.command('report'))
    .description("print a job's FINAL_RESULT.md, with short-lived links to its files")
    .argument('<job>', 'job id')
    .action(async (jobId: string, options: ApiOptions) => {
      out(await clientFrom(options).report(jobId));
    });

  withApi(program.command('cancel'))
    .description('cancel a job and everything below it')
    .argument('<job>', 'job id')
    .option('--json', 'print the API answer as JSON')
    .action(async (jobId: string, options: ApiOptions) => {
      const c = await clientFrom(options).cancel(jobId);
      out(options.json ? JSON.stringify(c, null, 2) : `${c.job_id} ${c.status}`);
    });

  withApi(program.command('jobs'))
    .description('list your jobs, newest first')
    .option('--limit <n>', 'how many (1-100)', positiveInt('--limit'), 20)
    .option('--cursor <cursor>', 'the next page, as printed by the previous one')
    .option('--json', 'print the API answer as JSON')
    .action(async (options: ApiOptions & { limit: number; cursor?: string }) => {
      if (options.limit > 100) throw new UsageError('--limit must be at most 100');
      const page = await clientFrom(options).jobs({
        limit: options.limit,
        ...(options.cursor ? { cursor: options.cursor } : {}),
      });
      if (options.json) return out(JSON.stringify(page, null, 2));
      const rows = page.jobs.map((j) => [
        j.job_id,
        j.status,
        String(j.total_tasks),
        j.created_at,
        oneLine(j.request),
      ]);
      out(table([['JOB', 'STATUS', 'TASKS', 'CREATED', 'REQUEST'], ...rows]));
      if (page.next_cursor) say(`more: orchestrator jobs --cursor ${page.next_cursor}`);
    });
}

function oneLine(text: string, max = 60): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows
    .map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  '))
    .join('\n');
}

export { EXIT };
