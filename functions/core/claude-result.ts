/**
 * Reading a `claude -p` run: the CLI prints one result object (alone with
 * `--output-format json`, as the last line with `stream-json`); failure is a
 * non-zero exit, `is_error: true` or a non-success subtype, and any one of
 * them is enough (see docs/claude-cli.md, "Judging a run").
 */

export interface ClaudeProcessOutcome {
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  durationMs: number;
  /** Peak resident memory of the process tree, when it could be read (Linux `/proc`). */
  peakMemoryMb?: number | undefined;
}

/** The token counts of one result object, in the CLI's own field names. */
export interface ClaudeUsage {
  input_tokens: number;
  output_tokens: number;
  cache_read_input_tokens: number;
  cache_creation_input_tokens: number;
}

export interface ClaudeRunVerdict {
  status: 'succeeded' | 'failed' | 'timed_out';
  output: string;
  costUsd: number;
  numTurns: number;
  durationMs: number;
  sessionId?: string | undefined;
  structuredOutput?: unknown;
  error?: string | undefined;
  exitCode?: number | undefined;
  retryable: boolean;
  /** Absent when the CLI printed no usage (e.g. it crashed before its result object). */
  usage?: ClaudeUsage | undefined;
  peakMemoryMb?: number | undefined;
}

interface ClaudeResultObject {
  type: 'result';
  subtype?: string;
  is_error?: boolean;
  result?: string;
  total_cost_usd?: number;
  num_turns?: number;
  duration_ms?: number;
  session_id?: string;
  structured_output?: unknown;
  usage?: unknown;
  /** Error results may carry their messages here instead of in `result`. */
  errors?: unknown;
}

const USAGE_FIELDS = [
  'input_tokens',
  'output_tokens',
  'cache_read_input_tokens',
  'cache_creation_input_tokens',
] as const;

/**
 * The token counts of a result object (`findResultObject`); a count the CLI
 * left out is 0, and a result without a `usage` object (or none at all) has no usage.
 */
export function usageOf(result: { usage?: unknown } | undefined): ClaudeUsage | undefined {
  const usage = result?.usage;
  if (usage === null || typeof usage !== 'object') return undefined;
  const raw = usage as Record<string, unknown>;
  const counts = USAGE_FIELDS.map((f) => {
    const n = raw[f];
    return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0 ? n : 0;
  });
  return Object.fromEntries(USAGE_FIELDS.map((f, i) => [f, counts[i]])) as unknown as ClaudeUsage;
}

/** Adds usage `b` to `a`; either may be absent. */
export function addUsage(a: ClaudeUsage | undefined, b: ClaudeUsage | undefined): ClaudeUsage | undefined {
  if (a === undefined || b === undefined) return a ?? b;
  return {
    input_tokens: a.input_tokens + b.input_tokens,
    output_tokens: a.output_tokens + b.output_tokens,
    cache_read_input_tokens: a.cache_read_input_tokens + b.cache_read_input_tokens,
    cache_creation_input_tokens: a.cache_creation_input_tokens + b.cache_creation_input_tokens,
  };
}

const NOT_LOGGED_IN = /not logged in|please run \/login|invalid api key/i;

export const NOT_LOGGED_IN_HINT =
  'the claude CLI is not logged in: run `claude` once and use /login, or set ANTHROPIC_API_KEY ' +
  '(or CLAUDE_CODE_USE_BEDROCK=1 with AWS credentials) in the environment that starts the orchestrator';

export const ROOT_REFUSED_HINT =
  'the claude CLI refuses --permission-mode bypassPermissions when run as root ' +
  '("--dangerously-skip-permissions cannot be used with root/sudo privileges"): run the orchestrator ' +
  'as a non-root user, or inside a sandbox (a container or VM of its own); set IS_SANDBOX=1 only inside such a sandbox, ' +
  "since it turns off the CLI's own check";

/**
 * Failures that the same command meets again on every retry, so the attempt
 * fails at once, with what the user has to change. Read from the real CLI:
 * the first two print on stderr and exit 1 before any result object.
 */
const PERMANENT_FAILURES: readonly { pattern: RegExp; hint: (m: RegExpExecArray) => string }[] = [
  {
    pattern: /--dangerously-skip-permissions cannot be used with root\/sudo privileges/i,
    hint: () => ROOT_REFUSED_HINT,
  },
  {
    pattern: /error: unknown option '([^'\n]{1,100})'/i,
    hint: (m) =>
      `the claude CLI does not accept the option ${m[1]} (error: unknown option), so it is not a version ` +
      'this orchestrator can drive: update it (npm install -g @anthropic-ai/claude-code), or point ' +
      'orchestrator.claude_command at one that accepts the option',
  },
  { pattern: NOT_LOGGED_IN, hint: () => NOT_LOGGED_IN_HINT },
];

/** The fix for a failure no retry can get past, when `text` shows one. */
export function permanentFailure(text: string): string | undefined {
  for (const { pattern, hint } of PERMANENT_FAILURES) {
    const m = pattern.exec(text);
    if (m) return hint(m);
  }
  return undefined;
}

/** Finds the result object: the last stdout line that parses as `{"type":"result"}`. */
export function findResultObject(stdout: string): ClaudeResultObject | undefined {
  const lines = stdout.split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i]?.trim();
    if (!line?.startsWith('{')) continue;
    try {
      const parsed = JSON.parse(line) as unknown;
      if (parsed && typeof parsed === 'object' && (parsed as { type?: unknown }).type === 'result') {
        return parsed as ClaudeResultObject;
      }
    } catch {
      // Not JSON: a partial line from a crash, or stray text. Keep looking upward.
    }
  }
  return undefined;
}

export function judgeClaudeRun(run: ClaudeProcessOutcome): ClaudeRunVerdict {
  const result = findResultObject(run.stdout);
  const usage = usageOf(result);
  const base = {
    output: result?.result ?? '',
    costUsd: numberOr(result?.total_cost_usd, 0),
    numTurns: numberOr(result?.num_turns, 0),
    durationMs: run.durationMs,
    sessionId: result?.session_id,
    exitCode: run.exitCode ?? undefined,
    ...(usage && { usage }),
    ...(run.peakMemoryMb !== undefined && { peakMemoryMb: run.peakMemoryMb }),
  };
  if (run.timedOut) {
    return {
      ...base,
      status: 'timed_out',
      retryable: true,
      error: `timed out after ${Math.round(run.durationMs / 1000)}s; the claude process was stopped`,
    };
  }
  if (!result) {
    const how = run.signal ? `was killed by ${run.signal}` : `exited with code ${run.exitCode}`;
    const fix = run.signal ? undefined : permanentFailure(`${run.stderr}\n${run.stdout}`);
    if (fix) return { ...base, status: 'failed', retryable: false, error: fix };
    return {
      ...base,
      status: 'failed',
      retryable: true,
      error: `claude ${how} without a result object${tail(run.stderr)}`,
    };
  }
  const failed =
    run.exitCode !== 0 || result.is_error === true || (result.subtype ?? 'success') !== 'success';
  if (!failed) {
    return { ...base, status: 'succeeded', retryable: true, structuredOutput: result.structured_output };
  }
  const errors = Array.isArray(result.errors) ? result.errors.map(String).join('; ') : '';
  const fix = permanentFailure(`${result.result ?? ''}\n${errors}\n${run.stderr}`);
  if (fix) return { ...base, status: 'failed', retryable: false, error: fix };
  const reason =
    result.subtype && result.subtype !== 'success'
      ? result.subtype
      : result.is_error === true
        ? 'is_error'
        : 'non-zero exit';
  const detail = (result.result || errors).slice(0, 500);
  return {
    ...base,
    status: 'failed',
    retryable: true,
    error: `claude failed (${reason}, exit code ${run.exitCode})${detail ? `: ${detail}` : ''}`,
  };
}

function numberOr(value: unknown, fallback: number): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : fallback;
}

function tail(stderr: string): string {
  const trimmed = stderr.trim();
  return trimmed ? `: ${trimmed.slice(-500)}` : '';
}
