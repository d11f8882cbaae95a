import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const DOUBLE = fileURLToPath(new URL('../support/claude-double.mjs', import.meta.url));

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  elapsed: number;
}

interface RunOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
  input?: string;
  direct?: boolean;
}

let root: string;
let stateDir: string;
let counter = 0;

function freshDir(): string {
  counter += 1;
  const dir = path.join(root, `ws-${counter}`);
  fs.mkdirSync(dir);
  return dir;
}

function start(args: string[], opts: RunOptions = {}): ChildProcess {
  const env: NodeJS.ProcessEnv = { ...process.env, CLAUDE_DOUBLE_STATE_DIR: stateDir };
  delete env.CLAUDE_DOUBLE_DIRECTIVES;
  delete env.CLAUDE_DOUBLE_LOG;
  delete env.ANTHROPIC_API_KEY;
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  const [cmd, argv] = opts.direct ? [DOUBLE, args] : [process.execPath, [DOUBLE, ...args]];
  return spawn(cmd, argv, { cwd: opts.cwd ?? freshDir(), env, stdio: ['pipe', 'pipe', 'pipe'] });
}

function collect(child: ChildProcess, input?: string): Promise<RunResult> {
  const t0 = Date.now();
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
  });
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  if (input !== undefined) child.stdin?.end(input);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr, elapsed: Date.now() - t0 }));
  });
}

function run(args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const child = start(args, opts);
  // The real CLI reads stdin only when no prompt argument is given; close it unless input is given.
  return collect(child, opts.input ?? '');
}

function json(r: RunResult): Record<string, unknown> {
  const lines = r.stdout.trim().split('\n');
  expect(lines).toHaveLength(1);
  return JSON.parse(lines[0] ?? '') as Record<string, unknown>;
}

function listFiles(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...listFiles(path.join(dir, e.name), rel));
    else out.push(rel);
  }
  return out.sort();
}

function waitFor(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const tick = () => {
      if (check()) resolve();
      else if (Date.now() - t0 > timeoutMs) reject(new Error('timed out waiting'));
      else setTimeout(tick, 20);
    };
    tick();
  });
}

function readLog(file: string): Array<Record<string, unknown>> {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

// Minimal JSON Schema check for the keywords the double supports.
type Schema = Record<string, unknown>;
function conforms(value: unknown, schema: Schema): string[] {
  const errs: string[] = [];
  if ('const' in schema && value !== schema.const) errs.push(`const ${String(schema.const)}`);
  if (Array.isArray(schema.enum) && !schema.enum.includes(value)) errs.push(`enum ${String(value)}`);
  const t = schema.type;
  if (t === 'object') {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return [`not object`];
    const obj = value as Record<string, unknown>;
    for (const k of (schema.required as string[] | undefined) ?? [])
      if (!(k in obj)) errs.push(`missing ${k}`);
    for (const [k, sub] of Object.entries((schema.properties as Record<string, Schema> | undefined) ?? {})) {
      if (k in obj) errs.push(...conforms(obj[k], sub).map((e) => `${k}: ${e}`));
    }
  } else if (t === 'array') {
    if (!Array.isArray(value)) return ['not array'];
    if (typeof schema.minItems === 'number' && value.length < schema.minItems) errs.push('minItems');
    if (typeof schema.maxItems === 'number' && value.length > schema.maxItems) errs.push('maxItems');
    value.forEach((v, i) => {
      errs.push(...conforms(v, (schema.items as Schema | undefined) ?? {}).map((e) => `[${i}]: ${e}`));
    });
  } else if (t === 'string') {
    if (typeof value !== 'string') return ['not string'];
    if (typeof schema.minLength === 'number' && value.length < schema.minLength) errs.push('minLength');
    if (typeof schema.maxLength === 'number' && value.length > schema.maxLength) errs.push('maxLength');
  } else if (t === 'number' || t === 'integer') {
    if (typeof value !== 'number') return ['not number'];
    if (t === 'integer' && !Number.isInteger(value)) errs.push('not integer');
    if (typeof schema.minimum === 'number' && value < schema.minimum) errs.push('minimum');
    if (typeof schema.maximum === 'number' && value > schema.maximum) errs.push('maximum');
  } else if (t === 'boolean' && typeof value !== 'boolean') {
    errs.push('not boolean');
  }
  return errs;
}

beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'claude-double-test-'));
  stateDir = path.join(root, 'state');
});

afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

describe('claude double: command line', () => {
  it('is executable and prints its version', async () => {
    const r = await run(['--version'], { direct: true });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('2.1.197 (Claude Code)\n');
  });

  it('prints help', async () => {
    const r = await run(['-h']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('--output-format');
    expect(r.stdout).toContain('--json-schema');
  });

  it('rejects unknown options like the real CLI', async () => {
    const r = await run(['-p', 'hi', '--max-turnz', '3', '--output-format', 'json']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("error: unknown option '--max-turnz'");
    expect(r.stdout).toBe('');
    const r2 = await run(['-p', '--xyz=1', 'hi']);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toContain("error: unknown option '--xyz'");
  });

  it('validates --permission-mode and --output-format choices', async () => {
    const bad = await run(['-p', 'hi', '--permission-mode', 'yolo']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('yolo');
    const badFormat = await run(['-p', 'hi', '--output-format', 'xml']);
    expect(badFormat.code).toBe(1);
    for (const mode of ['acceptEdits', 'auto', 'bypassPermissions', 'default', 'dontAsk', 'plan']) {
      const ok = await run(['-p', 'hi', `--permission-mode=${mode}`, '--output-format=json']);
      expect(ok.code, mode).toBe(0);
    }
  });

  it('accepts every flag the worker may pass, in both --flag value and --flag=value forms', async () => {
    const cwd = freshDir();
    const mcp = path.join(cwd, '..', `mcp-${counter}.json`);
    fs.writeFileSync(mcp, '{"mcpServers":{}}');
    const sid = '123e4567-e89b-42d3-a456-426614174000';
    const r = await run(
      [
        '--print',
        'do the work',
        '--output-format',
        'json',
        '--model=sonnet',
        '--fallback-model',
        'haiku',
        '--max-turns=10',
        '--max-budget-usd',
        '1.5',
        '--permission-mode',
        'acceptEdits',
        '--dangerously-skip-permissions',
        '--append-system-prompt',
        '-- be terse',
        '--system-prompt=You are a worker',
        '--verbose',
        '--strict-mcp-config',
        '--no-session-persistence',
        '--session-id',
        sid,
        '--bare',
        '--allowedTools',
        'Bash(git *)',
        'Edit',
        '--disallowed-tools=WebFetch',
        '--tools',
        'default',
        '--add-dir',
        cwd,
        '--mcp-config',
        mcp,
      ],
      { cwd },
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const res = json(r);
    expect(res.session_id).toBe(sid);
    expect(res.result).toBe('Completed: do the work');
    expect(Object.keys(res.modelUsage as object)).toEqual(['sonnet']);
  });

  it('variadic tool options swallow following arguments, as in the real CLI; -- ends them', async () => {
    const swallowed = await run(['-p', '--allowedTools', 'Edit', 'the prompt', '--output-format', 'json']);
    expect(swallowed.code).toBe(1);
    expect(swallowed.stderr).toContain('Input must be provided');
    const ok = await run(['-p', '--allowedTools', 'Edit', '--output-format', 'json', '--', 'the prompt']);
    expect(ok.code).toBe(0);
    expect(json(ok).result).toBe('Completed: the prompt');
  });

  it('rejects a missing option value, a bad session id and a non-JSON schema', async () => {
    const missing = await run(['-p', 'hi', '--model']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('argument missing');
    const sid = await run(['-p', 'hi', '--session-id', 'nope']);
    expect(sid.code).toBe(1);
    const schema = await run(['-p', 'hi', '--output-format', 'json', '--json-schema', '{not json']);
    expect(schema.code).toBe(1);
    expect(schema.stderr).toContain('--json-schema');
    expect(schema.stdout).toBe('');
  });

  it('needs a prompt in print mode, and reads it from stdin when there is no argument', async () => {
    const none = await run(['-p', '--output-format', 'json'], { input: '' });
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('Input must be provided');
    const cwd = freshDir();
    const piped = await run(['-p', '--output-format', 'json'], { input: 'Write a poem\nabout tests\n', cwd });
    expect(piped.code).toBe(0);
    expect(json(piped).result).toBe('Completed: Write a poem');
    expect(listFiles(cwd)).toHaveLength(1);
  });

  it('requires --verbose for stream-json and then prints init, assistant and result lines', async () => {
    const bad = await run(['-p', 'hi', '--output-format', 'stream-json']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('requires --verbose');
    const r = await run(['-p', 'hi', '--output-format', 'stream-json', '--verbose']);
    expect(r.code).toBe(0);
    const events = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(events.map((e) => e.type)).toEqual(['system', 'assistant', 'result']);
    expect(events[0]?.subtype).toBe('init');
    expect(events[2]?.result).toBe('Completed: hi');
    expect(events[0]?.session_id).toBe(events[2]?.session_id);
  });

  it('prints only the result text with --output-format text', async () => {
    const r = await run(['-p', 'Say hello', '--output-format', 'text']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('Completed: Say hello\n');
  });
});

describe('claude double: successful runs', () => {
  it('writes one output file and prints a result object shaped like the real one', async () => {
    const cwd = freshDir();
    const long = `${'x'.repeat(250)}\nsecond line`;
    const r = await run(['-p', long, '--output-format', 'json'], { cwd });
    expect(r.code).toBe(0);
    const res = json(r);
    expect(res).toMatchObject({
      type: 'result',
      subtype: 'success',
      is_error: false,
      api_error_status: null,
      num_turns: 3,
      total_cost_usd: 0.0125,
      permission_denials: [],
      terminal_reason: 'completed',
    });
    expect(res.result).toBe(`Completed: ${'x'.repeat(200)}`);
    expect(res.session_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.uuid).toMatch(/^[0-9a-f-]{36}$/);
    expect(typeof res.duration_ms).toBe('number');
    expect(typeof res.duration_api_ms).toBe('number');
    expect(typeof res.stop_reason).toBe('string');
    expect(res.usage).toMatchObject({
      input_tokens: expect.any(Number),
      cache_creation_input_tokens: expect.any(Number),
      cache_read_input_tokens: expect.any(Number),
      output_tokens: expect.any(Number),
    });
    expect(res).not.toHaveProperty('structured_output');
    const files = listFiles(cwd);
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(/^output_[0-9a-z]+\.md$/);
    expect(fs.readFileSync(path.join(cwd, files[0] ?? ''), 'utf8')).toContain('second line');
  });

  it('generates a conforming structured_output for --json-schema', async () => {
    const schema = {
      type: 'object',
      properties: {
        summary: { type: 'string', minLength: 5, maxLength: 40 },
        status: { type: 'string', enum: ['done', 'partial', 'blocked'] },
        version: { const: 2 },
        confidence: { type: 'number', minimum: 0, maximum: 1 },
        priority: { type: 'integer', minimum: 5, maximum: 9 },
        ok: { type: 'boolean' },
        tags: { type: 'array', items: { type: 'string', maxLength: 3 }, minItems: 4 },
        subtasks: {
          type: 'array',
          maxItems: 2,
          items: {
            type: 'object',
            properties: { title: { type: 'string' }, prompt: { type: 'string' } },
            required: ['title', 'prompt'],
          },
        },
      },
      required: ['summary', 'status', 'subtasks'],
    };
    const r = await run([
      '-p',
      'Refactor the parser [[sleep:1]]',
      '--output-format',
      'json',
      '--json-schema',
      JSON.stringify(schema),
    ]);
    expect(r.code).toBe(0);
    const out = json(r).structured_output as Record<string, unknown>;
    expect(conforms(out, schema)).toEqual([]);
    expect(out.status).toBe('done');
    expect(out.tags).toHaveLength(4);
    expect(out.subtasks).toEqual([
      { title: 'Part 1', prompt: 'Part 1 of: Refactor the parser' },
      { title: 'Part 2', prompt: 'Part 2 of: Refactor the parser' },
    ]);
  });

  it('[[plan:N]] sets the array length and [[choose:V]] picks an enum value', async () => {
    const schema = {
      type: 'object',
      properties: {
        action: { type: 'string', enum: ['execute', 'decompose'] },
        subtasks: {
          type: 'array',
          minItems: 2,
          items: { type: 'object', properties: { title: { type: 'string' }, prompt: { type: 'string' } } },
        },
      },
      required: ['action', 'subtasks'],
    };
    const args = ['--output-format', 'json', '--json-schema', JSON.stringify(schema)];
    const five = await run(['-p', 'Split [[plan:5]] this [[choose:decompose]] job', ...args]);
    const out = json(five).structured_output as { action: string; subtasks: Array<{ prompt: string }> };
    expect(out.action).toBe('decompose');
    expect(out.subtasks).toHaveLength(5);
    expect(out.subtasks[4]?.prompt).toBe('Part 5 of: Split this job');
    const zero = await run(['-p', 'Split [[plan:0]] [[choose:nope]]', ...args]);
    const out0 = json(zero).structured_output as { action: string; subtasks: unknown[] };
    expect(out0.action).toBe('execute');
    expect(out0.subtasks).toHaveLength(2);
  });

  it('[[files:N]] writes N files plus notes/summary.md', async () => {
    const cwd = freshDir();
    const r = await run(['-p', 'Make files [[files:3]]', '--output-format', 'json'], { cwd });
    expect(r.code).toBe(0);
    expect(listFiles(cwd)).toEqual(['file_1.txt', 'file_2.txt', 'file_3.txt', 'notes/summary.md']);
    const cwd1 = freshDir();
    await run(['-p', 'One file [[files:1]]'], { cwd: cwd1 });
    expect(listFiles(cwd1)).toEqual(['file_1.txt']);
  });

  it('[[sleep:MS]] delays the run and duration_ms reflects it', async () => {
    const r = await run(['-p', 'Slow [[sleep:400]]', '--output-format', 'json']);
    expect(r.code).toBe(0);
    expect(r.elapsed).toBeGreaterThanOrEqual(400);
    expect(json(r).duration_ms).toBeGreaterThanOrEqual(400);
    expect(json(r).result).toBe('Completed: Slow');
  });

  it('applies CLAUDE_DOUBLE_DIRECTIVES to every run', async () => {
    const cwd = freshDir();
    const r = await run(['-p', 'Plain prompt', '--output-format', 'json'], {
      cwd,
      env: { CLAUDE_DOUBLE_DIRECTIVES: '[[cost:0.2]] [[files:2]]' },
    });
    expect(r.code).toBe(0);
    expect(json(r).total_cost_usd).toBe(0.2);
    expect(listFiles(cwd)).toEqual(['file_1.txt', 'file_2.txt', 'notes/summary.md']);
  });

  it('does not need any login or API key', async () => {
    const r = await run(['-p', 'hi', '--output-format', 'json', '--bare'], {
      env: { ANTHROPIC_API_KEY: undefined, CLAUDE_CODE_USE_BEDROCK: undefined },
    });
    expect(r.code).toBe(0);
  });
});

describe('claude double: failures', () => {
  it('[[fail]] reports error_during_execution and exits 1 without writing files', async () => {
    const cwd = freshDir();
    const r = await run(
      ['-p', 'Break [[fail]]', '--output-format', 'json', '--json-schema', '{"type":"object"}'],
      {
        cwd,
      },
    );
    expect(r.code).toBe(1);
    const res = json(r);
    expect(res).toMatchObject({
      subtype: 'error_during_execution',
      is_error: true,
      result: 'Simulated failure',
    });
    expect(res).not.toHaveProperty('structured_output');
    expect(listFiles(cwd)).toEqual([]);
  });

  it('[[fail_times:K]] fails the first K invocations of a prompt, then succeeds', async () => {
    const prompt = `Flaky ${Date.now()} [[fail_times:2]]`;
    const codes: Array<number | null> = [];
    for (let i = 0; i < 3; i++) codes.push((await run(['-p', prompt, '--output-format', 'json'])).code);
    expect(codes).toEqual([1, 1, 0]);
    const other = await run(['-p', `Other ${Date.now()} [[fail_times:1]]`, '--output-format', 'json']);
    expect(json(other).subtype).toBe('error_during_execution');
  });

  it('[[crash]] prints a partial line, panics on stderr and exits 134', async () => {
    const r = await run(['-p', 'Boom [[crash]]', '--output-format', 'json']);
    expect(r.code).toBe(134);
    expect(r.stdout).toBe('{"type":"res');
    expect(r.stderr).toContain('panic: simulated crash');
  });

  it('[[logged_out]] behaves like the real CLI without a login', async () => {
    const cwd = freshDir();
    const r = await run(['-p', 'Anything [[logged_out]]', '--output-format', 'json'], { cwd });
    expect(r.code).toBe(1);
    expect(json(r)).toMatchObject({
      type: 'result',
      subtype: 'success',
      is_error: true,
      result: 'Not logged in · Please run /login',
      total_cost_usd: 0,
      modelUsage: {},
    });
    expect(listFiles(cwd)).toEqual([]);
  });

  it('[[as_root]] refuses bypassPermissions like the real CLI as root, unless told it is in a sandbox', async () => {
    const refusal =
      '--dangerously-skip-permissions cannot be used with root/sudo privileges for security reasons\n';
    const sandbox = { IS_SANDBOX: undefined, CLAUDE_CODE_BUBBLEWRAP: undefined };
    const args = (mode: string[]) => ['-p', 'Anything [[as_root]]', '--output-format', 'json', ...mode];
    const cwd = freshDir();
    for (const mode of [['--permission-mode', 'bypassPermissions'], ['--dangerously-skip-permissions']]) {
      const r = await run(args(mode), { cwd, env: sandbox });
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe(refusal);
    }
    expect(listFiles(cwd)).toEqual([]);
    const bypass = ['--permission-mode', 'bypassPermissions'];
    expect((await run(args(bypass), { env: { ...sandbox, IS_SANDBOX: '1' } })).code).toBe(0);
    expect((await run(args(bypass), { env: { ...sandbox, CLAUDE_CODE_BUBBLEWRAP: '1' } })).code).toBe(0);
    expect((await run(args(['--permission-mode', 'acceptEdits']), { env: sandbox })).code).toBe(0);
  });

  it('[[cost:X]] with --max-budget-usd fails with error_max_budget_usd when X exceeds it', async () => {
    const over = await run(['-p', 'Pricey [[cost:2.5]]', '--output-format', 'json', '--max-budget-usd', '1']);
    expect(over.code).toBe(1);
    expect(json(over)).toMatchObject({
      subtype: 'error_max_budget_usd',
      is_error: true,
      total_cost_usd: 2.5,
    });
    const under = await run(['-p', 'Cheap [[cost:0.5]]', '--output-format', 'json', '--max-budget-usd=1']);
    expect(under.code).toBe(0);
    expect(json(under)).toMatchObject({ subtype: 'success', total_cost_usd: 0.5 });
  });

  it('[[turns:N]] with --max-turns fails with error_max_turns when N exceeds it', async () => {
    const over = await run(['-p', 'Long [[turns:12]]', '--output-format', 'json', '--max-turns', '5']);
    expect(over.code).toBe(1);
    expect(json(over)).toMatchObject({ subtype: 'error_max_turns', is_error: true });
    const under = await run(['-p', 'Short [[turns:4]]', '--output-format', 'json', '--max-turns', '5']);
    expect(under.code).toBe(0);
    expect(json(under).num_turns).toBe(4);
  });

  it('[[garbage]] prints non-JSON text and exits 0', async () => {
    const r = await run(['-p', 'Junk [[garbage]]', '--output-format', 'json']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).not.toBe('');
    expect(() => JSON.parse(r.stdout)).toThrow();
  });
});

describe('claude double: hangs and the invocation log', () => {
  it('logs one line per finished invocation', async () => {
    const log = path.join(root, 'log-basic.jsonl');
    const cwd = freshDir();
    const before = Date.now();
    await run(['-p', 'Logged [[cost:0.1]]', '--output-format', 'json'], {
      cwd,
      env: { CLAUDE_DOUBLE_LOG: log },
    });
    await run(['-p', 'Logged [[fail]]', '--output-format', 'json'], { cwd, env: { CLAUDE_DOUBLE_LOG: log } });
    const lines = readLog(log);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({
      cwd: fs.realpathSync(cwd),
      prompt: 'Logged [[cost:0.1]]',
      argv: ['-p', 'Logged [[cost:0.1]]', '--output-format', 'json'],
      exitCode: 0,
    });
    expect(lines[1]?.exitCode).toBe(1);
    for (const l of lines) {
      expect(typeof l.pid).toBe('number');
      expect(l.start as number).toBeGreaterThanOrEqual(before - 1000);
      expect(l.end as number).toBeGreaterThanOrEqual(l.start as number);
    }
  });

  it('[[hang]] never finishes, logs its start and exits 143 on SIGTERM', async () => {
    const log = path.join(root, 'log-hang.jsonl');
    const child = start(['-p', 'Stuck [[hang]]', '--output-format', 'json'], {
      env: { CLAUDE_DOUBLE_LOG: log },
    });
    const done = collect(child, '');
    await waitFor(() => readLog(log).length === 1);
    expect(readLog(log)[0]).toMatchObject({ pid: child.pid, end: null, prompt: 'Stuck [[hang]]' });
    await new Promise((r) => setTimeout(r, 200));
    expect(child.exitCode).toBeNull();
    child.kill('SIGTERM');
    const r = await done;
    expect(r.code).toBe(143);
    expect(r.stdout).toBe('');
    // a run ended by SIGTERM also logs its end
    expect(readLog(log)[1]).toMatchObject({ pid: child.pid, exitCode: 143, end: expect.any(Number) });
  });

  it('[[hang_hard]] ignores SIGTERM and only dies on SIGKILL', async () => {
    const log = path.join(root, 'log-hang-hard.jsonl');
    const child = start(['-p', 'Really stuck [[hang_hard]]'], { env: { CLAUDE_DOUBLE_LOG: log } });
    const done = collect(child, '');
    await waitFor(() => readLog(log).length === 1);
    child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    expect(child.exitCode).toBeNull();
    expect(child.signalCode).toBeNull();
    child.kill('SIGKILL');
    const r = await done;
    expect(r.signal).toBe('SIGKILL');
  });

  it('streams the init event at once and exits 143 on SIGTERM while sleeping', async () => {
    const log = path.join(root, 'log-sleep.jsonl');
    const child = start(['-p', 'Nap [[sleep:10000]]', '--output-format', 'stream-json', '--verbose'], {
      env: { CLAUDE_DOUBLE_LOG: log },
    });
    const done = collect(child, '');
    let firstLine = '';
    child.stdout?.on('data', (d: string) => {
      firstLine ||= d.split('\n')[0] ?? '';
    });
    await waitFor(() => firstLine !== '');
    expect(JSON.parse(firstLine)).toMatchObject({ type: 'system', subtype: 'init' });
    child.kill('SIGTERM');
    const r = await done;
    expect(r.code).toBe(143);
    expect(r.elapsed).toBeLessThan(5000);
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
    expect(readLog(log)).toMatchObject([{ pid: child.pid, exitCode: 143, end: expect.any(Number) }]);
  });
});
