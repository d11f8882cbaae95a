import { describe, expect, it } from 'vitest';
import { newStreamState, readStreamLine, toolDetail } from '../../functions/core/claude-stream.ts';
import { inSubtree, parseWorkerId } from '../../functions/core/progress.ts';
import { redact } from '../../functions/core/redact.ts';
import { actionOf, duration, renderTree } from '../../functions/local/watch.ts';

const assistant = (id: string, content: unknown[], usage = { input_tokens: 10, output_tokens: 2 }) =>
  JSON.stringify({ type: 'assistant', message: { id, content, usage }, parent_tool_use_id: null });

describe('reading a stream-json session as it runs', () => {
  it('counts a turn per assistant message (not per content line) and sums its tokens once', () => {
    const state = newStreamState();
    const a = readStreamLine(
      assistant('m1', [{ type: 'text', text: 'Looking around.\nFirst I list files.' }]),
      state,
    );
    const b = readStreamLine(
      assistant('m1', [{ type: 'tool_use', name: 'Bash', input: { command: 'ls -la\necho more' } }]),
      state,
    );
    const c = readStreamLine(
      assistant(
        'm2',
        [{ type: 'tool_use', name: 'Edit', input: { file_path: 'src/a.ts', old_string: 'x' } }],
        {
          input_tokens: 30,
          output_tokens: 5,
          // @ts-expect-error extra usage fields the CLI sends
          cache_read_input_tokens: 7,
        },
      ),
      state,
    );
    expect(a?.event).toMatchObject({ kind: 'progress', turn: 1, text: 'First I list files.' });
    expect(b?.event).toMatchObject({ turn: 1, tool: 'Bash', detail: 'ls -la' });
    expect(c?.event).toMatchObject({ turn: 2, tool: 'Edit', detail: 'src/a.ts' });
    expect(c?.event?.tokens).toEqual({ input: 40, output: 7, cache_read: 7, cache_creation: 0 });
    expect(c?.log).toBe('[turn 2] Edit src/a.ts');
  });

  it('logs tool results briefly, keeps the result line whole, and passes non-JSON lines through', () => {
    const state = newStreamState();
    const user = JSON.stringify({
      type: 'user',
      message: { content: [{ type: 'tool_result', content: 'a\nb\nc', is_error: false }] },
    });
    expect(readStreamLine(user, state)?.log).toBe('  → a b c');
    const result = JSON.stringify({
      type: 'result',
      result: 'Done.\nAll good.',
      num_turns: 3,
      total_cost_usd: 0.02,
    });
    const item = readStreamLine(result, state);
    expect(item?.log).toBe(result);
    expect(item?.event).toMatchObject({ turn: 3, cost_usd: 0.02, text: 'All good.' });
    expect(readStreamLine('panic: oops', state)).toEqual({ log: 'panic: oops' });
    expect(readStreamLine('   ', state)).toBeUndefined();
  });

  it('says what a tool call does in a few words', () => {
    expect(toolDetail({ pattern: '**/*.ts' })).toBe('**/*.ts');
    expect(toolDetail({ url: 'https://example.com' })).toBe('https://example.com');
    expect(toolDetail({ other: 1 })).toBeUndefined();
    expect(toolDetail('x')).toBeUndefined();
  });
});

describe('redaction of live output', () => {
  it('masks credential shapes, keeping the names around them', () => {
    const text = [
      'key sk-ant-api03-AbCdEfGhIjKlMnOp',
      'token tt1.0123456789abcdef0123.2.1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
      'AKIAABCDEFGHIJKLMNOP and AWS_SECRET_ACCESS_KEY=abc/def+ghi',
      'Authorization: Bearer abc.def.ghi',
      'git clone https://user:hunter2@example.com/r.git',
      'ghp_abcdefghijklmnopqrstuvwxyz0123',
    ].join('\n');
    const out = redact(text);
    for (const leaked of [
      'sk-ant-api03',
      'tt1.0123',
      'AKIAABCD',
      'abc/def',
      'abc.def.ghi',
      'hunter2',
      'ghp_abc',
    ])
      expect(out).not.toContain(leaked);
    expect(out).toContain('AWS_SECRET_ACCESS_KEY=[redacted]');
    expect(out).toContain('Authorization: [redacted]');
    expect(out).toContain('https://user:[redacted]@example.com/r.git');
  });

  it('masks the values it is given, but not short ones', () => {
    expect(redact('my secret is s3cr3t-value-123', ['s3cr3t-value-123'])).toBe('my secret is [redacted]');
    expect(redact('port 1', ['1'])).toBe('port 1');
  });
});

describe('worker ids and subtrees', () => {
  it('reads the lineage of a worker id', () => {
    expect(parseWorkerId('worker_2')).toEqual([2]);
    expect(parseWorkerId('worker_2_1_3')).toEqual([2, 1, 3]);
    expect(parseWorkerId('worker_')).toBeUndefined();
    expect(parseWorkerId('planner')).toBeUndefined();
  });

  it('places a job path inside or outside a subtree', () => {
    expect(inSubtree('2_1', '')).toBe(true);
    expect(inSubtree('2_1', '2')).toBe(true);
    expect(inSubtree('21', '2')).toBe(false);
    expect(inSubtree('3', '2')).toBe(false);
  });
});

describe('the watch view', () => {
  const base = {
    job_id: 'j1',
    status: 'running' as const,
    created_at: '2026-12-02T10:00:00.000Z',
    cost: { total_usd: 0.5, workers_usd: 0.5, planning_usd: 0, steps_usd: 0 },
  };
  const task = (over: Record<string, unknown>) => ({
    worker_id: 'worker_1',
    status: 'running',
    depth: 0,
    attempts: 1,
    num_turns: 0,
    cost_usd: 0,
    attempt_history: [],
    started_at: '2026-12-02T10:00:05.000Z',
    ...over,
  });

  it('draws a line per worker with its state, time, turns, cost, last action and retries', () => {
    const result = {
      ...base,
      results: {
        tasks: [
          task({}),
          task({
            worker_id: 'worker_2',
            status: 'succeeded',
            attempts: 2,
            num_turns: 7,
            cost_usd: 0.25,
            finished_at: '2026-12-02T10:01:05.000Z',
          }),
          task({ worker_id: 'worker_2_1', depth: 1, status: 'queued', started_at: undefined }),
        ],
      },
    } as never;
    const live = new Map([
      ['worker_1', { attempt: 1, turn: 4, action: 'Edit src/a.ts', costUsd: 0.12, at: '' }],
    ]);
    const rows = renderTree(result, live, Date.parse('2026-12-02T10:02:05.000Z'));
    expect(rows[0]?.line).toBe('job j1 running: 1/3 finished, 1 running, $0.5000, 2m05s');
    expect(rows[1]?.line).toMatch(/^ {2}worker_1\s+running\s+2m00s\s+turn 4\s+\$0\.1200\s+Edit src\/a\.ts$/);
    expect(rows[2]?.line).toMatch(/^ {2}worker_2\s+succeeded\s+1m00s\s+turn 7\s+\$0\.2500\s+\(attempt 2\)$/);
    expect(rows[3]?.line).toMatch(/^ {4}worker_2_1\s+queued/);
    // What plain output compares: the same without the clock.
    expect(rows[1]?.news).not.toMatch(/2m00s/);
  });

  it('adds what a retry has reported so far to what the attempts before it cost', () => {
    const retrying = task({
      attempts: 2,
      cost_usd: 0.3,
      attempt_history: [{ attempt: 1, status: 'failed', cost_usd: 0.3, finished_at: '' }],
    });
    const result = { ...base, results: { tasks: [retrying] } } as never;
    const now = Date.parse('2026-12-02T10:02:05.000Z');
    const cost = (live: Map<string, unknown>) =>
      /\$(\d+\.\d+)/.exec(renderTree(result, live as never, now)[1]?.line ?? '')?.[1];
    expect(cost(new Map([['worker_1', { attempt: 2, costUsd: 0.12, at: '' }]]))).toBe('0.4200');
    // An event of the attempt that has ended is already in cost_usd.
    expect(cost(new Map([['worker_1', { attempt: 1, costUsd: 0.3, at: '' }]]))).toBe('0.3000');
  });

  it('names an action from an event', () => {
    const e = { id: '', at: '', job_id: '', worker_id: '', task_no: 1, attempt: 1 };
    expect(actionOf({ ...e, kind: 'progress', tool: 'Bash', detail: 'npm test' })).toBe('Bash npm test');
    expect(actionOf({ ...e, kind: 'progress', text: 'Thinking' })).toBe('Thinking');
    expect(actionOf({ ...e, kind: 'finished', status: 'failed' })).toBe('finished: failed');
    expect(duration(59_400)).toBe('59s');
    expect(duration(3_725_000)).toBe('1h02m');
  });
});
