/**
 * Judging a `claude -p` run (docs/claude-cli.md, "Judging a run"): success needs
 * exit code 0, `is_error: false` and subtype `success`; any one failure signal fails it.
 */
import { describe, expect, it } from 'vitest';
import {
  type ClaudeProcessOutcome,
  findResultObject,
  judgeClaudeRun,
} from '../../functions/core/claude-result.ts';

function resultLine(overrides: Record<string, unknown> = {}): string {
  return JSON.stringify({
    type: 'result',
    subtype: 'success',
    is_error: false,
    duration_ms: 4_200,
    num_turns: 3,
    result: 'Wrote index.html',
    session_id: 'sess-1',
    total_cost_usd: 0.0421,
    ...overrides,
  });
}

function run(overrides: Partial<ClaudeProcessOutcome> = {}): ClaudeProcessOutcome {
  return {
    exitCode: 0,
    signal: null,
    stdout: `${resultLine()}\n`,
    stderr: '',
    timedOut: false,
    durationMs: 5_000,
    ...overrides,
  };
}

/** The real CLI's answer without a login (docs/claude-cli.md, "Judging a run"): subtype success, is_error true, exit 1. */
const NOT_LOGGED_IN_STDOUT = `${JSON.stringify({
  type: 'result',
  subtype: 'success',
  is_error: true,
  api_error_status: null,
  duration_ms: 137,
  duration_api_ms: 0,
  num_turns: 1,
  result: 'Not logged in · Please run /login',
  stop_reason: 'stop_sequence',
  session_id: '78c901c4-0000-4000-8000-000000000000',
  total_cost_usd: 0,
  usage: { input_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 0 },
  modelUsage: {},
  permission_denials: [],
  terminal_reason: 'completed',
  uuid: '4f11afc0-0000-4000-8000-000000000000',
})}\n`;

describe('judgeClaudeRun', () => {
  it('succeeds with exit 0, is_error false and subtype success, copying cost, turns and session', () => {
    const verdict = judgeClaudeRun(run());
    expect(verdict).toMatchObject({
      status: 'succeeded',
      output: 'Wrote index.html',
      costUsd: 0.0421,
      numTurns: 3,
      sessionId: 'sess-1',
      durationMs: 5_000,
      exitCode: 0,
      retryable: true,
    });
    expect(verdict.error).toBeUndefined();
  });

  it('passes structured_output through on success', () => {
    const plan = { subtasks: [{ title: 'A', prompt: 'Do A' }] };
    const verdict = judgeClaudeRun(run({ stdout: resultLine({ structured_output: plan }) }));
    expect(verdict.status).toBe('succeeded');
    expect(verdict.structuredOutput).toEqual(plan);
  });

  it('fails on a non-zero exit code alone', () => {
    const verdict = judgeClaudeRun(run({ exitCode: 2 }));
    expect(verdict.status).toBe('failed');
    expect(verdict.retryable).toBe(true);
    expect(verdict.exitCode).toBe(2);
    expect(verdict.error).toMatch(/exit code 2/);
  });

  it('does not blame is_error when only the exit code signalled the failure', () => {
    const verdict = judgeClaudeRun(run({ exitCode: 2 }));
    expect(verdict.error).not.toMatch(/is_error/);
  });

  it('fails on is_error true alone', () => {
    const verdict = judgeClaudeRun(
      run({ stdout: resultLine({ is_error: true, result: 'API Error: 529 overloaded' }) }),
    );
    expect(verdict.status).toBe('failed');
    expect(verdict.retryable).toBe(true);
    expect(verdict.error).toMatch(/is_error/);
    expect(verdict.error).toContain('API Error: 529 overloaded');
  });

  it('fails on a non-success subtype alone, naming it', () => {
    const verdict = judgeClaudeRun(
      run({ stdout: resultLine({ subtype: 'error_max_turns', result: 'stopped after 10 turns' }) }),
    );
    expect(verdict.status).toBe('failed');
    expect(verdict.error).toMatch(/error_max_turns/);
    expect(verdict.error).toContain('stopped after 10 turns');
  });

  it('turns the real not-logged-in answer into a non-retryable failure that says how to log in', () => {
    const verdict = judgeClaudeRun(run({ exitCode: 1, stdout: NOT_LOGGED_IN_STDOUT }));
    expect(verdict.status).toBe('failed');
    expect(verdict.retryable).toBe(false);
    expect(verdict.exitCode).toBe(1);
    expect(verdict.error).toContain('/login');
    expect(verdict.error).toContain('ANTHROPIC_API_KEY');
    expect(verdict.sessionId).toBe('78c901c4-0000-4000-8000-000000000000');
  });

  it('does not mistake a successful answer that mentions /login for a login failure', () => {
    const verdict = judgeClaudeRun(
      run({ stdout: resultLine({ result: 'Added a page that tells users: Please run /login' }) }),
    );
    expect(verdict.status).toBe('succeeded');
  });

  it('reports a timeout as timed_out and retryable, keeping what the run printed', () => {
    const verdict = judgeClaudeRun(
      run({ timedOut: true, exitCode: null, signal: 'SIGTERM', stdout: '', durationMs: 600_400 }),
    );
    expect(verdict.status).toBe('timed_out');
    expect(verdict.retryable).toBe(true);
    expect(verdict.error).toMatch(/timed out after 600s/);
  });

  it('reports a timeout even when a result object arrived first', () => {
    expect(judgeClaudeRun(run({ timedOut: true })).status).toBe('timed_out');
  });

  it('fails a crash that printed no result object, with the exit code and stderr tail', () => {
    const verdict = judgeClaudeRun(run({ exitCode: 134, stdout: '', stderr: 'FATAL: heap out of memory\n' }));
    expect(verdict.status).toBe('failed');
    expect(verdict.retryable).toBe(true);
    expect(verdict.output).toBe('');
    expect(verdict.costUsd).toBe(0);
    expect(verdict.error).toMatch(/exited with code 134/);
    expect(verdict.error).toContain('heap out of memory');
  });

  it('fails a run killed mid-line (a partial result object), naming the signal', () => {
    const verdict = judgeClaudeRun(run({ exitCode: null, signal: 'SIGKILL', stdout: '{"type":"res' }));
    expect(verdict.status).toBe('failed');
    expect(verdict.error).toMatch(/killed by SIGKILL/);
    expect(verdict.error).toMatch(/without a result object/);
  });

  it('finds the result object among stream-json events and trailing text', () => {
    const stdout = [
      JSON.stringify({ type: 'system', subtype: 'init', session_id: 'sess-9' }),
      JSON.stringify({ type: 'assistant', message: { content: [{ type: 'text', text: 'working' }] } }),
      resultLine({ session_id: 'sess-9', result: 'all done', num_turns: 7 }),
      'some stray text after the result',
      '',
    ].join('\n');
    const verdict = judgeClaudeRun(run({ stdout }));
    expect(verdict).toMatchObject({
      status: 'succeeded',
      output: 'all done',
      numTurns: 7,
      sessionId: 'sess-9',
    });
  });

  it('uses the errors array when an error result has no result text', () => {
    const stdout = resultLine({
      subtype: 'error_during_execution',
      is_error: true,
      result: undefined,
      errors: ['tool Bash failed', 'context window exceeded'],
    });
    const verdict = judgeClaudeRun(run({ exitCode: 1, stdout }));
    expect(verdict.status).toBe('failed');
    expect(verdict.error).toMatch(/error_during_execution/);
    expect(verdict.error).toContain('tool Bash failed; context window exceeded');
  });

  it('copies cost and turns of a failed run, and ignores non-numeric values', () => {
    const failed = judgeClaudeRun(
      run({ exitCode: 1, stdout: resultLine({ is_error: true, total_cost_usd: 1.5, num_turns: 12 }) }),
    );
    expect(failed).toMatchObject({ costUsd: 1.5, numTurns: 12 });
    const odd = judgeClaudeRun(run({ stdout: resultLine({ total_cost_usd: 'free', num_turns: null }) }));
    expect(odd).toMatchObject({ costUsd: 0, numTurns: 0 });
  });
});

describe('failures that no retry can change', () => {
  /** What the real CLI (2.1.197) prints, as root, for `--permission-mode bypassPermissions`: stderr only, exit 1. */
  const ROOT_REFUSAL =
    '--dangerously-skip-permissions cannot be used with root/sudo privileges for security reasons\n';

  it('fails a root refusal at once, naming the fix: a non-root user or a sandbox, IS_SANDBOX=1 only inside one', () => {
    const verdict = judgeClaudeRun(run({ exitCode: 1, stdout: '', stderr: ROOT_REFUSAL }));
    expect(verdict.status).toBe('failed');
    expect(verdict.retryable).toBe(false);
    expect(verdict.error).toMatch(/as root/);
    expect(verdict.error).toMatch(/non-root user/);
    expect(verdict.error).toMatch(/sandbox/);
    expect(verdict.error).toMatch(/IS_SANDBOX=1 only inside/);
  });

  it('fails an unknown option at once, naming the option and how to get a CLI that takes it', () => {
    const verdict = judgeClaudeRun(
      run({ exitCode: 1, stdout: '', stderr: "error: unknown option '--max-turnz'\n" }),
    );
    expect(verdict).toMatchObject({ status: 'failed', retryable: false });
    expect(verdict.error).toContain('--max-turnz');
    expect(verdict.error).toMatch(/orchestrator\.claude_command/);
  });

  it.each([
    ['the result text', { result: 'Invalid API key · Fix external API key' }, ''],
    ['the errors array', { result: '', errors: ['Invalid API key'] }, ''],
    ['stderr', { result: '' }, 'Please run /login\n'],
  ])('fails a rejected key or missing login found in %s at once', (_where, fields, stderr) => {
    const verdict = judgeClaudeRun(
      run({ exitCode: 1, stdout: `${resultLine({ is_error: true, ...fields })}\n`, stderr }),
    );
    expect(verdict).toMatchObject({ status: 'failed', retryable: false });
    expect(verdict.error).toMatch(/not logged in.*ANTHROPIC_API_KEY/);
  });

  it('keeps retrying failures that may pass next time', () => {
    const crash = judgeClaudeRun(
      run({ exitCode: 134, stdout: '{"type":"res', stderr: 'panic: simulated crash' }),
    );
    expect(crash.retryable).toBe(true);
    const killed = judgeClaudeRun(
      run({ exitCode: null, signal: 'SIGKILL', stdout: '', stderr: ROOT_REFUSAL }),
    );
    expect(killed.retryable).toBe(true);
    const failed = judgeClaudeRun(
      run({ exitCode: 1, stdout: `${resultLine({ is_error: true, subtype: 'error_during_execution' })}\n` }),
    );
    expect(failed.retryable).toBe(true);
  });

  it('does not take a successful answer that quotes a refusal for one', () => {
    const verdict = judgeClaudeRun(
      run({
        stdout: `${resultLine({ result: "Documented: error: unknown option '--x' and Invalid API key" })}\n`,
      }),
    );
    expect(verdict).toMatchObject({ status: 'succeeded', retryable: true });
  });
});

describe('findResultObject', () => {
  it('ignores JSON lines that are not result objects', () => {
    expect(findResultObject('{"type":"assistant"}\nnull\n[1,2]\n')).toBeUndefined();
  });

  it('takes the last result object when several were printed', () => {
    const stdout = `${resultLine({ result: 'first' })}\n${resultLine({ result: 'second' })}\n`;
    expect(findResultObject(stdout)?.result).toBe('second');
  });
});
