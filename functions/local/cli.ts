/**
 * `orchestrator`: local mode's command line. `run` takes one request through
 * the whole stack and exits with the job's outcome; `serve` keeps the stack up
 * for other clients.
 */
import { existsSync, readFileSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { spawnChild } from '../../container/spawn.ts';
import { EMULATOR_SECRET_ENV } from '../adapters/aws-client-config.ts';
import { nodeHttpTransport } from '../client/node-transport.ts';
import { OrchestratorApiError, OrchestratorClient } from '../client/orchestrator-client.ts';
import { type SubmitBody, submitBodySchema } from '../core/api-schemas.ts';
import { ConfigError, type OrchestratorConfig, parseConfig } from '../core/config.ts';
import { zodIssues } from '../core/errors.ts';
import type { JobResult } from '../core/result-format.ts';
import { VERSION } from '../core/version.ts';
import { loadSubtree } from '../services/job-tree.ts';
import { settingsFromConfig } from '../services/settings.ts';
import { EXIT, exitCodeOf, UsageError } from './exit-codes.ts';
import { keysCommand } from './keys-command.ts';
import { createLocalLog } from './local-log.ts';
import { type MirrorResult, mirrorJob } from './mirror.ts';
import { checkClaudeCommand, checkWorkerContainment } from './preflight.ts';
import { addRemoteCommands, positiveInt } from './remote-commands.ts';
import {
  addResultBranch,
  diffstat,
  findWorkTree,
  type RepoSnapshot,
  snapshotRepository,
} from './repo-snapshot.ts';
import { resolveSandbox } from './sandbox.ts';
import type { LocalStack } from './stack.ts';
import { watchJob } from './watch.ts';

interface CommonOptions {
  config?: string;
  workspace?: string;
  claudeCommand?: string;
  verbose?: boolean;
}

interface RunOptions extends CommonOptions {
  workers?: number;
  timeout?: number;
  retries?: number;
  json?: boolean;
  /** A directory in the repository to work on; false (`--no-repo`) to start in empty directories. */
  repo?: string | false;
  /** Subtasks given instead of planned. */
  task?: string[];
}

/** The config file (or defaults), environment overrides, then flags: later wins. */
function loadConfig(options: CommonOptions, overrides: (c: OrchestratorConfig) => void): OrchestratorConfig {
  const file = options.config ?? (existsSync('config.yaml') ? 'config.yaml' : undefined);
  if (options.config && !existsSync(options.config))
    throw new ConfigError(options.config, [{ path: '(file)', message: 'file not found' }]);
  const config = parseConfig(file ? readFileSync(file, 'utf8') : undefined, process.env, file ?? 'defaults');
  if (options.workspace) config.orchestrator.workspace_root = options.workspace;
  if (options.claudeCommand) config.orchestrator.claude_command = options.claudeCommand;
  overrides(config);
  // Re-validate so flags obey the same bounds as the file; an error names the flag that set the value.
  try {
    return parseConfig(JSON.stringify(config), {}, file ?? 'command line');
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const flagged = err.issues.filter((i) => FLAG_OF_CONFIG[i.path]);
    if (flagged.length === 0) throw err;
    throw new UsageError(flagged.map((i) => `${FLAG_OF_CONFIG[i.path]}: ${i.message}`).join('; '));
  }
}

/** Config paths `run` flags set, and submission fields they fill: errors name the flag. */
const FLAG_OF_CONFIG: Readonly<Record<string, string>> = {
  'workers.max_workers': '--workers',
  'workers.default_timeout': '--timeout',
  'workers.max_retries': '--retries',
};
const FLAG_OF_FIELD: Readonly<Record<string, string>> = {
  'config.max_workers': '--workers',
  'config.default_timeout': '--timeout',
  'config.max_retries': '--retries',
  request: 'the request',
};
/** The deployment limit behind a submission field's bound. */
const LIMIT_OF_FIELD: Readonly<Record<string, string>> = {
  'config.max_workers': 'limits.max_workers_per_job',
  request: 'limits.max_request_chars',
};

/**
 * The submission `run` is about to make, checked against the same schema and
 * limits the API applies, before anything starts: one line naming the flag
 * (or the config option, when a flag did not set it) and why.
 */
function checkSubmission(body: SubmitBody, config: OrchestratorConfig, options: RunOptions): void {
  const parsed = submitBodySchema(settingsFromConfig(config, '').limits).safeParse(body);
  if (parsed.success) return;
  const given: Record<string, boolean> = {
    'config.max_workers': options.workers !== undefined,
    'config.default_timeout': options.timeout !== undefined,
    'config.max_retries': options.retries !== undefined,
    request: true,
  };
  const lines = zodIssues(parsed.error).map((i) => {
    const task = /^tasks\.(\d+)\.(\w+)$/.exec(i.path);
    const where = task
      ? `--task ${Number(task[1]) + 1}`
      : given[i.path]
        ? (FLAG_OF_FIELD[i.path] ?? i.path)
        : (Object.entries(FLAG_OF_CONFIG).find(([, flag]) => flag === FLAG_OF_FIELD[i.path])?.[0] ?? i.path);
    const limit = LIMIT_OF_FIELD[i.path];
    return `${where}: ${i.message}${limit && /too big|at most|<=/i.test(i.message) ? ` (${limit})` : ''}`;
  });
  throw new UsageError(lines.join('; '));
}

async function startStack(
  config: OrchestratorConfig,
  verbose: boolean,
  port?: number,
  stateDir?: string,
): Promise<LocalStack> {
  const claude = await checkClaudeCommand(config.orchestrator.claude_command);
  config.orchestrator.claude_command = claude.path;
  const sandbox = await resolveSandbox(config.orchestrator.sandbox);
  await checkWorkerContainment({
    sandbox,
    permissionMode: config.orchestrator.permission_mode,
    claudePath: claude.path,
  });
  const workspace = resolve(config.orchestrator.workspace_root);
  const logFile = verbose
    ? undefined
    : join(config.logging.log_dir ? resolve(config.logging.log_dir) : workspace, 'orchestrator.log');
  const log = createLocalLog({
    level: config.logging.level,
    structured: config.logging.enable_structured,
    file: logFile,
  });
  // The emulators, the handlers and the SDK load only for `run` and `serve`: the other commands
  // (a remote server's client, keys, --version) start without them.
  const { startLocalStack } = await import('./stack.ts');
  // Without the model gateway (no API key here), workers sign in with the user's own `claude /login`.
  return startLocalStack({
    config,
    log,
    sandbox,
    shareClaudeLogin: true,
    ...(port !== undefined ? { port } : {}),
    ...(stateDir ? { dataDir: stateDir } : {}),
  });
}

async function runCommand(request: string, options: RunOptions): Promise<number> {
  const config = loadConfig(options, (c) => {
    if (options.workers !== undefined) c.workers.max_workers = options.workers;
    if (options.timeout !== undefined) c.workers.default_timeout = options.timeout;
    if (options.retries !== undefined) c.workers.max_retries = options.retries;
  });
  const say = (line: string) => process.stderr.write(`${line}\n`);
  const body: SubmitBody = {
    request,
    config: {
      max_workers: config.workers.max_workers,
      default_timeout: config.workers.default_timeout,
      max_retries: config.workers.max_retries,
    },
    ...(options.task ? { tasks: options.task.map((prompt) => ({ prompt })) } : {}),
  };
  checkSubmission(body, config, options);
  const snapshot = await repositorySnapshot(options, config.limits.max_source_mb, say);
  const workspace = resolve(config.orchestrator.workspace_root);
  if (snapshot && !options.workspace && isInside(workspace, snapshot.root)) {
    // Reports mirrored into the work tree would change it; the repository gets only the branch.
    config.orchestrator.workspace_root = join(userCacheDir(), 'claude-fleet', 'workspace');
    say(`results go to ${config.orchestrator.workspace_root} (${workspace} is inside the repository)`);
  }
  const stack = await startStack(config, Boolean(options.verbose), 0).catch(async (err) => {
    await snapshot?.cleanup();
    throw err;
  });
  // A first Ctrl-C cancels the job on the server and still mirrors what finished; a second stops at once.
  const interrupt = new AbortController();
  const onSignal = () => {
    if (interrupt.signal.aborted) {
      say('stopping now');
      void Promise.all([stack.stop(), snapshot?.cleanup()]).then(() => process.exit(EXIT.interrupted));
      return;
    }
    say('interrupted: cancelling the job and keeping what finished (Ctrl-C again to stop at once)');
    interrupt.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const key = await stack.createApiKey('local', 'run');
    // node:http, as the workers: `fetch` copies a buffer body twice before sending it, and the
    // repository bundle can be large (77 MB: 1.2 s to upload through fetch, 0.65 s this way).
    const api = new OrchestratorClient(stack.apiUrl, key, { transport: nodeHttpTransport });
    const source = snapshot
      ? { bundle_id: await api.uploadSource(await readFile(snapshot.bundleFile)) }
      : undefined;
    const submitted = await api.orchestrate({ ...body, ...(source ? { source } : {}) });
    const jobId = submitted.job_id;
    say(
      `job ${jobId} submitted (${stack.backend === 'embedded' ? 'embedded emulators' : 'external endpoints'}, API ${stack.apiUrl})`,
    );
    say(modelAccessLine(stack));
    say(
      stack.sandbox.kind === 'bwrap'
        ? 'workers run in a bubblewrap sandbox: each sees its own checkout, not your home or repository'
        : `workers run without a sandbox (${stack.sandbox.reason}): they can read and write whatever you can`,
    );

    // Bounded by what the job itself may take: every attempt of planning, the workers and the merge, plus slack.
    const attempts = config.workers.max_retries + 1;
    const timeoutMs = (3 * attempts * config.workers.default_timeout + 300) * 1000;
    let result: JobResult;
    try {
      interrupt.signal.throwIfAborted();
      result = await watchJob(api, jobId, { signal: interrupt.signal, timeoutMs, refreshMs: 1000 });
    } catch (err) {
      if (!interrupt.signal.aborted) throw err;
      await api.cancel(jobId).catch(() => undefined);
      result = await api.wait(jobId, { timeoutMs: 60_000, pollMs: 300 });
    }
    const rootJob = await stack.deps.jobs.getJob(jobId);
    const mirror = await mirrorJob(
      stack.deps.artifacts,
      jobId,
      resolve(config.orchestrator.workspace_root),
      rootJob ? await loadSubtree(stack.deps, rootJob) : undefined,
    );
    const finalReport = join(mirror.dir, 'FINAL_RESULT.md');
    const branch = snapshot ? await bringBackBranch(snapshot, result, mirror.dir) : undefined;
    if (options.json) {
      process.stdout.write(
        `${JSON.stringify({ ...result, local_workspace: mirror.dir, local_final_report: finalReport, local_skipped: mirror.skipped, local_removed_links: mirror.removedLinks, ...(branch ? { local_branch: branch.name } : {}) }, null, 2)}\n`,
      );
    } else {
      printSummary(result, mirror, finalReport);
      if (snapshot) printBranch(snapshot, result, branch);
    }
    return interrupt.signal.aborted ? EXIT.interrupted : exitCodeOf(result.status);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await stack.stop();
    await snapshot?.cleanup();
  }
}

/** One line on how workers reach the model: through the metered gateway, or with the user's own login. */
export function modelAccessLine(
  stack: Pick<LocalStack, 'deps'>,
  env: NodeJS.ProcessEnv = process.env,
): string {
  const credential = env.ANTHROPIC_API_KEY
    ? 'ANTHROPIC_API_KEY'
    : env.ANTHROPIC_AUTH_TOKEN
      ? 'ANTHROPIC_AUTH_TOKEN'
      : undefined;
  if (stack.deps.settings.gateway?.enabled)
    return `model: through the orchestrator's gateway with your ${credential ?? 'key'}; workers never hold it, and every request is metered against the job's max_budget_usd`;
  const login =
    "workers use your own Claude login (claude /login) directly, each capped by the CLI's --max-budget-usd";
  return credential
    ? `model: the gateway is off (gateway.enabled: false), so ${login}`
    : `model: no ANTHROPIC_API_KEY here, so ${login}; set one to have the orchestrator meter every request instead`;
}

/** The repository `run` works on (the current directory's, or --repo's), snapshotted; none with --no-repo. */
async function repositorySnapshot(
  options: RunOptions,
  maxSourceMb: number,
  say: (line: string) => void,
): Promise<RepoSnapshot | undefined> {
  if (options.repo === false) return undefined;
  const dir = resolve(options.repo ?? '.');
  const root = await findWorkTree(dir);
  if (!root) {
    if (options.repo !== undefined) throw new Error(`--repo ${options.repo}: not inside a git work tree`);
    return undefined;
  }
  const snapshot = await snapshotRepository(root);
  const size = (await stat(snapshot.bundleFile)).size;
  if (size > maxSourceMb * 1024 * 1024) {
    await snapshot.cleanup();
    throw new Error(
      `the repository at ${root} is ${Math.round(size / 1024 / 1024)} MB as a bundle, over limits.max_source_mb (${maxSourceMb}); use --no-repo or raise the limit`,
    );
  }
  const where = snapshot.head ? `HEAD ${snapshot.head.slice(0, 12)}` : 'an empty history';
  say(
    snapshot.uncommitted.length > 0
      ? `using the repository ${root}: ${where} plus uncommitted changes in ${snapshot.uncommitted.length} file${snapshot.uncommitted.length === 1 ? '' : 's'}, as snapshot ${snapshot.base.slice(0, 12)} (use --no-repo to start in empty directories)`
      : `using the repository ${root} at ${where} (use --no-repo to start in empty directories)`,
  );
  return snapshot;
}

function isInside(path: string, dir: string): boolean {
  const rel = relative(dir, path);
  return rel === '' || (!rel.startsWith('..') && !rel.startsWith('/'));
}

function userCacheDir(): string {
  return process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
}

/**
 * Fetches the job's branch into the user's repository from the mirrored
 * `git/result.bundle`; undefined when the job changed nothing.
 */
async function bringBackBranch(
  snapshot: RepoSnapshot,
  result: JobResult,
  dir: string,
): Promise<{ name: string; stat: string } | undefined> {
  const name = result.git?.branch;
  if (!name) return undefined;
  await addResultBranch(snapshot, join(dir, 'git', 'result.bundle'), name);
  return { name, stat: await diffstat(snapshot, name) };
}

function printBranch(
  snapshot: RepoSnapshot,
  result: JobResult,
  branch: { name: string; stat: string } | undefined,
): void {
  const out: string[] = [];
  if (!branch) {
    out.push(`  branch: none (${result.git?.note ?? 'nothing was merged'}); your repository was not changed`);
  } else {
    const base = snapshot.base.slice(0, 12);
    out.push(
      `  branch: ${branch.name} in ${snapshot.root} (your HEAD, index and working tree are unchanged)`,
      '',
    );
    out.push(...branch.stat.split('\n').map((l) => `    ${l}`), '');
    out.push(`  review: git diff ${snapshot.base === snapshot.head ? 'HEAD' : base}...${branch.name}`);
    if (snapshot.base !== snapshot.head) {
      out.push(
        `          (the branch starts from ${base}, a snapshot of your uncommitted changes on top of HEAD)`,
      );
    }
    out.push(
      `  log:    git log --format='%an %s' ${base}..${branch.name}`,
      `  merge:  git merge ${branch.name}`,
    );
  }
  process.stdout.write(`${out.join('\n')}\n`);
}

/** Files a summary lists by name when some were not mirrored; the rest are counted. */
const SKIPPED_SHOWN = 10;

function printSummary(result: JobResult, mirror: MirrorResult, finalReport: string): void {
  const s = result.results.summary;
  const out = [
    '',
    `Job ${result.job_id}: ${result.status.toUpperCase()}`,
    `  workers: ${s.total} (${s.succeeded} succeeded, ${s.failed} failed, ${s.timed_out} timed out)`,
    `  cost: ${costLine(result)}   wall time: ${((result.wall_time_ms ?? 0) / 1000).toFixed(1)}s`,
  ];
  for (const t of result.results.tasks) {
    const f = t.files_changed;
    const n = f ? f.added.length + f.modified.length + f.deleted.length : t.files_created.length;
    const files = `${n} file${n === 1 ? '' : 's'}${f ? ' changed' : ''}`;
    out.push(`  - ${t.worker_id} ${t.status}${t.error ? `: ${t.error.slice(0, 160)}` : ''} (${files})`);
  }
  if (result.error) out.push(`  error: ${result.error}`);
  out.push(`  files: ${mirror.dir}`);
  if (mirror.removedLinks.length > 0) {
    const shown = mirror.removedLinks.slice(0, SKIPPED_SHOWN).map((l) => JSON.stringify(l));
    out.push(
      `  removed symbolic links found in it (not followed; something wrote them there): ${shown.join(', ')}${mirror.removedLinks.length > SKIPPED_SHOWN ? ', …' : ''}`,
    );
  }
  if (mirror.skipped.length > 0) {
    out.push(`  not copied to ${mirror.dir}: ${mirror.skipped.length}`);
    for (const s of mirror.skipped.slice(0, SKIPPED_SHOWN))
      out.push(`    - ${JSON.stringify(s.path)}: ${s.reason}`);
    if (mirror.skipped.length > SKIPPED_SHOWN)
      out.push(`    - and ${mirror.skipped.length - SKIPPED_SHOWN} more`);
  }
  out.push(`  report: ${finalReport}`, '');
  process.stdout.write(out.join('\n'));
}

/** `$0.0500 (workers $0.0375, planning $0.0125)`: every session of the tree, as the report totals it. */
function costLine(result: JobResult): string {
  const c = result.cost;
  const usd = (n: number) => `$${n.toFixed(4)}`;
  const parts = [`workers ${usd(c.workers_usd)}`, `planning ${usd(c.planning_usd)}`];
  if (c.steps_usd > 0 || result.steps !== undefined) parts.push(`merging ${usd(c.steps_usd)}`);
  return `${usd(c.total_usd)} (${parts.join(', ')})`;
}

async function serveCommand(options: CommonOptions & { port?: number; stateDir?: string }): Promise<void> {
  const config = loadConfig(options, () => {});
  // Jobs, their files and reports outlive the server: a restart on the same workspace finds them all.
  const stateDir = resolve(options.stateDir ?? join(config.orchestrator.workspace_root, '.state'));
  const stack = await startStack(config, Boolean(options.verbose), options.port ?? config.api.port, stateDir);
  const key = await stack.createApiKey('local', 'serve', process.env.ORCHESTRATOR_API_KEY || undefined);
  process.stdout.write(`API_URL=${stack.apiUrl}\nAPI_KEY=${key}\n`);
  // What `orchestrator keys … --table` needs to manage this stack's keys from another terminal.
  for (const [name, value] of Object.entries(stack.dataPlane.env)) {
    // The emulators serve only holders of this secret (workers never get it), so `keys` needs it too.
    if (name === 'AWS_ENDPOINT_URL_DYNAMODB' || name === EMULATOR_SECRET_ENV)
      process.stdout.write(`${name}=${value}\n`);
  }
  process.stdout.write(`TABLE_NAME=${stack.dataPlane.tableName}\n`);
  await new Promise<void>((resolveStop) => {
    const stop = () => resolveStop();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await stack.stop();
}

export function buildProgram(): Command {
  const program = new Command('orchestrator')
    .description('Run many Claude Code workers in parallel: locally on embedded AWS emulators, or on AWS')
    .version(VERSION, '-V, --version', 'print the version')
    .showHelpAfterError()
    // Usage errors throw (main gives them exit code 64) instead of exiting with 1, the code of a failed job.
    .exitOverride();
  const common = (cmd: Command) =>
    cmd
      .option('--config <file>', 'config file (default: ./config.yaml when present)')
      .option('--workspace <dir>', 'where job folders and the log go (orchestrator.workspace_root)')
      .option('--claude-command <path>', 'claude executable (orchestrator.claude_command)')
      .option('--verbose', 'log to stderr instead of <workspace>/orchestrator.log');
  common(
    program
      .command('run')
      .description('run one request to the end and mirror its results to <workspace>/job_<id>/')
      .argument('<request>', 'what you want done, in natural language')
      .option('--workers <n>', 'max parallel workers', positiveInt('--workers'))
      .option('--timeout <seconds>', 'per-worker timeout', positiveInt('--timeout'))
      .option('--retries <n>', 'retries per failed worker', (v) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 0)
          throw new InvalidArgumentError('--retries must be a whole number of at least 0');
        return n;
      })
      .option(
        '--task <prompt>',
        'a subtask, given instead of letting the planner split the request (repeat for more)',
        (value: string, list: string[] = []) => [...list, value],
      )
      .option('--json', 'print the result as JSON on stdout')
      .option(
        '--repo <dir>',
        "work on the git repository <dir> is in (default: the current directory's, if any)",
      )
      .option('--no-repo', 'start the workers in empty directories even inside a repository'),
  ).action(async (request: string, options: RunOptions) => {
    process.exitCode = await runCommand(request, options);
  });
  common(
    program
      .command('serve')
      .description('serve the API until SIGINT/SIGTERM; prints API_URL= and API_KEY= when ready')
      .option('--port <port>', 'port (0 picks a free one)', (v) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 0 || n > 65535)
          throw new InvalidArgumentError('--port must be 0-65535');
        return n;
      })
      .option(
        '--state-dir <dir>',
        'where jobs, their files and reports are kept across restarts (default: <workspace>/.state)',
      ),
  ).action(async (options: CommonOptions & { port?: number; stateDir?: string }) => {
    await serveCommand(options);
  });
  program.addCommand(keysCommand());
  addRemoteCommands(program);
  program
    .command('spawn')
    .description(
      'inside a worker: start a child job under this task (API_URL and TASK_TOKEN from the environment)',
    )
    .argument('<request...>', 'what the child job should do')
    .option('--wait', 'wait for the child and print its results as JSON')
    .option('--timeout <seconds>', 'how long to wait', positiveInt('--timeout'), 3600)
    .action(async (words: string[], options: { wait?: boolean; timeout: number }) => {
      process.exitCode = await spawnChild(
        process.env,
        { request: words.join(' '), wait: Boolean(options.wait), timeoutSec: options.timeout },
        (line) => process.stdout.write(`${line}\n`),
      );
    });
  for (const command of allCommands(program)) command.exitOverride();
  return program;
}

function allCommands(command: Command): Command[] {
  return [command, ...command.commands.flatMap(allCommands)];
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    process.exitCode = failure(err);
  }
}

/** One line on stderr (never a stack trace) and the exit code that says what kind of failure it was. */
function failure(err: unknown): number {
  // Commander has printed its message (and the help) already; --help and --version end here too.
  if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
  if (err instanceof UsageError) {
    process.stderr.write(`orchestrator: ${err.message}\n`);
    return EXIT.usage;
  }
  if (err instanceof OrchestratorApiError) {
    const issues = (err.issues ?? []).map((i) => `${i.path}: ${i.message}`).join('; ');
    process.stderr.write(
      `orchestrator: ${err.method} ${err.path} -> ${err.status}: ${err.reason}${issues ? ` (${issues})` : ''}\n`,
    );
    return EXIT.failed;
  }
  process.stderr.write(`orchestrator: ${(err as Error).message ?? String(err)}\n`);
  return EXIT.failed;
}
