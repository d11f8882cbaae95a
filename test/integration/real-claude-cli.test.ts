/**
 * The real `claude` CLI runs whole headless sessions against the scripted
 * Messages API stand-in: text answers, structured output, and file changes made
 * with its own Write/Read/Edit/Bash tools, in `json` and `stream-json` output.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePlan, plannerSchema } from '../../functions/core/planner.ts';
import {
  type MessagesApi,
  type MessagesRequest,
  type ScriptedReply,
  startMessagesApi,
  text,
  toolUse,
} from '../support/messages-api.ts';
import { REAL_CLAUDE, realClaudeEnv } from '../support/real-claude.ts';

const execFileAsync = promisify(execFile);

/** One CLI run takes about a second here; the cap only turns a hang into a failure. */
const RUN_TIMEOUT_MS = 40_000;
const TEST_TIMEOUT_MS = 50_000;

const SCHEMA = {
  type: 'object',
  properties: {
    verdict: { type: 'string' },
    score: { type: 'integer' },
    tags: { type: 'array', items: { type: 'string' } },
  },
  required: ['verdict', 'score'],
  additionalProperties: false,
};
const STRUCTURED = { verdict: 'looks good', score: 7, tags: ['a', 'b'] };
const schemaArgs = ['--output-format', 'json', '--json-schema', JSON.stringify(SCHEMA)];
const PLAN = { subtasks: [{ title: 'Intro', prompt: 'Write the intro' }] };
const BLANK_PLAN = { subtasks: [{ title: 'Intro', prompt: '  ' }] };

let root: string;
let api: MessagesApi;
let runCounter = 0;

/** Which scenario a request belongs to: a marker in the prompt, so one stand-in serves every test. */
function scenarioOf(request: MessagesRequest): string | undefined {
  return /\[scenario:([\w-]+)\]/.exec(request.prompt)?.[1];
}

function requestsOf(scenario: string): MessagesRequest[] {
  return api.requests.filter((r) => scenarioOf(r) === scenario);
}

/** The file-changing session: each reply follows from the tools already called, never from the request number. */
function fileSession(request: MessagesRequest, cwd: string): ScriptedReply {
  const failed = request.toolResults.find((r) => r.isError);
  if (failed) return text(`A tool failed: ${failed.content}`);
  const called = request.toolsCalled;
  if (!called.includes('Write')) {
    return toolUse('Write', { file_path: join(cwd, 'new.txt'), content: 'created by the session\n' });
  }
  if (!called.includes('Read')) return toolUse('Read', { file_path: join(cwd, 'existing.txt') });
  if (!called.includes('Edit')) {
    return toolUse('Edit', {
      file_path: join(cwd, 'existing.txt'),
      old_string: 'line two',
      new_string: 'line two, edited',
    });
  }
  if (!called.includes('Bash')) {
    return toolUse('Bash', {
      command: 'git rm -q old.txt',
      description: 'Remove old.txt from the repository',
    });
  }
  return text('Wrote new.txt, edited existing.txt and removed old.txt.');
}

/** Whether the CLI has told the model (in a later user message) that it must call StructuredOutput. */
function insisted(request: MessagesRequest): boolean {
  return request.messages
    .slice(1)
    .some(
      (m) =>
        m.role === 'user' && JSON.stringify(m.content).includes('You MUST call the StructuredOutput tool'),
    );
}

/** Working directories by scenario, so the script can name absolute paths. */
const cwdOf = new Map<string, string>();

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs the real CLI with the prompt on stdin, only PATH/HOME from outside plus the stand-in's environment. */
async function runClaude(cwd: string, prompt: string, args: string[]): Promise<RunResult> {
  const home = join(root, `home-${++runCounter}`);
  await mkdir(home);
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, ...realClaudeEnv(api.url, home) };
  const started = Date.now();
  const child = spawn(REAL_CLAUDE, ['-p', ...args, '--permission-mode', 'bypassPermissions'], {
    cwd,
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  child.stdin.end(prompt);
  const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (c) => resolve(c));
  }).finally(() => clearTimeout(timer));
  return { code, stdout, stderr, ms: Date.now() - started };
}

function parseResult(run: RunResult): Record<string, unknown> {
  const detail = `exit ${run.code}\nstdout: ${run.stdout}\nstderr: ${run.stderr}\nerrors: ${api.errors?.map((e) => e.message).join('; ')}`;
  let result: unknown;
  try {
    result = JSON.parse(run.stdout);
  } catch {
    throw new Error(`stdout is not one JSON object\n${detail}`);
  }
  expect(result, detail).toMatchObject({ type: 'result' });
  return result as Record<string, unknown>;
}

async function newCwd(name: string): Promise<string> {
  const dir = join(root, name);
  await mkdir(dir);
  return dir;
}

const git = (cwd: string, ...args: string[]) =>
  execFileAsync('git', args, {
    cwd,
    env: {
      PATH: process.env.PATH,
      HOME: root,
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_CONFIG_GLOBAL: '/dev/null',
      GIT_AUTHOR_NAME: 'Fleet Test',
      GIT_AUTHOR_EMAIL: 'fleet@example.invalid',
      GIT_COMMITTER_NAME: 'Fleet Test',
      GIT_COMMITTER_EMAIL: 'fleet@example.invalid',
    },
  });

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'real-claude-'));
  api = await startMessagesApi((request) => {
    const scenario = scenarioOf(request);
    switch (scenario) {
      case 'text':
      case 'stream':
        return {
          ...text(`Hello from the stand-in (${scenario})`),
          usage: { input_tokens: 1200, output_tokens: 300 },
        };
      case 'schema':
        return toolUse('StructuredOutput', STRUCTURED);
      case 'schema-nag':
        // Answer in prose first; call the tool once the CLI insists.
        return insisted(request) ? toolUse('StructuredOutput', STRUCTURED) : text('It looks good to me.');
      case 'schema-never':
        return text('It looks good to me.');
      case 'plan':
        // A plan with a blank prompt first (the CLI's check refuses it), then a good one.
        return toolUse('StructuredOutput', request.toolResults.some((r) => r.isError) ? PLAN : BLANK_PLAN);
      case 'files': {
        const cwd = cwdOf.get('files');
        if (!cwd) throw new Error('files scenario without a working directory');
        return fileSession(request, cwd);
      }
      default:
        // Not a session of this file (e.g. a title request, which realClaudeEnv switches off).
        return text('{"title":"Stand-in"}');
    }
  });
});

afterAll(async () => {
  await api?.stop();
  if (root) await rm(root, { recursive: true, force: true });
});

describe('the real claude CLI against the Messages API stand-in', () => {
  it(
    'returns a text answer as a successful result with a cost from the reported usage',
    async () => {
      const cwd = await newCwd('text');
      const run = await runClaude(cwd, '[scenario:text] Say hello.', ['--output-format', 'json']);
      const result = parseResult(run);
      expect(run.code, run.stderr).toBe(0);
      expect(result).toMatchObject({
        subtype: 'success',
        is_error: false,
        result: 'Hello from the stand-in (text)',
      });
      expect(result.total_cost_usd).toBeTypeOf('number');
      expect(result.total_cost_usd as number).toBeGreaterThan(0);
      expect(result.usage).toMatchObject({ input_tokens: 1200, output_tokens: 300 });

      const requests = requestsOf('text');
      expect(requests).toHaveLength(1);
      const [request] = requests;
      expect(request?.stream).toBe(true);
      expect(request?.prompt).toContain('Say hello.');
      expect(request?.tools.map((t) => t.name)).toEqual(
        expect.arrayContaining(['Bash', 'Edit', 'Read', 'Write']),
      );
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'returns the StructuredOutput tool input as structured_output with --json-schema',
    async () => {
      const run = await runClaude(await newCwd('schema'), '[scenario:schema] Judge the change.', schemaArgs);
      const result = parseResult(run);
      expect(run.code, run.stderr).toBe(0);
      expect(result).toMatchObject({ subtype: 'success', is_error: false });
      expect(result.structured_output).toEqual(STRUCTURED);
      // The text result is the tool input as JSON.
      expect(JSON.parse(result.result as string)).toEqual(STRUCTURED);

      const requests = requestsOf('schema');
      const offered = requests[0]?.tools.find((t) => t.name === 'StructuredOutput');
      expect(offered?.input_schema).toMatchObject(SCHEMA);
      // The StructuredOutput call ends the session: its tool_result is never sent back.
      expect(requests).toHaveLength(1);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "checks a plan against the planner's derived schema as parsePlan does",
    async () => {
      const schema = plannerSchema(3);
      const run = await runClaude(await newCwd('plan'), '[scenario:plan] Plan the work.', [
        '--output-format',
        'json',
        '--json-schema',
        JSON.stringify(schema),
      ]);
      const result = parseResult(run);
      expect(run.code, run.stderr).toBe(0);
      expect(result.structured_output).toEqual(PLAN);
      expect(parsePlan(result.structured_output, 3)).toEqual({ ok: true, subtasks: PLAN.subtasks });
      expect(parsePlan(BLANK_PLAN, 3).ok).toBe(false);

      const requests = requestsOf('plan');
      expect(requests[0]?.tools.find((t) => t.name === 'StructuredOutput')?.input_schema).toMatchObject(
        schema,
      );
      // The blank plan came back as a failed tool call, and the session went on to the good one.
      expect(requests).toHaveLength(2);
      expect(requests[1]?.toolResults.at(-1)).toMatchObject({ isError: true });
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'insists on the StructuredOutput tool once after a prose answer with --json-schema',
    async () => {
      const run = await runClaude(
        await newCwd('schema-nag'),
        '[scenario:schema-nag] Judge the change.',
        schemaArgs,
      );
      const result = parseResult(run);
      expect(run.code, run.stderr).toBe(0);
      expect(result).toMatchObject({ subtype: 'success', is_error: false });
      expect(result.structured_output).toEqual(STRUCTURED);
      expect(requestsOf('schema-nag')).toHaveLength(2);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'reports success without structured_output when the model never calls the tool (2.1.197)',
    async () => {
      const run = await runClaude(
        await newCwd('schema-never'),
        '[scenario:schema-never] Judge the change.',
        schemaArgs,
      );
      const result = parseResult(run);
      // Not an error by exit code, subtype or is_error: callers must check structured_output themselves.
      expect(run.code, run.stderr).toBe(0);
      expect(result).toMatchObject({ subtype: 'success', is_error: false, result: 'It looks good to me.' });
      expect(result).not.toHaveProperty('structured_output');
      // One prose answer, one reminder, then the CLI gives up.
      expect(requestsOf('schema-never')).toHaveLength(2);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'changes files with Write, Read+Edit and Bash (git rm) in the working directory',
    async () => {
      const cwd = await newCwd('files');
      cwdOf.set('files', cwd);
      await git(cwd, 'init', '-q');
      await writeFile(join(cwd, 'existing.txt'), 'line one\nline two\nline three\n');
      await writeFile(join(cwd, 'old.txt'), 'to be removed\n');
      await git(cwd, 'add', '.');
      await git(cwd, 'commit', '-q', '-m', 'initial');

      const run = await runClaude(cwd, '[scenario:files] Make the changes.', ['--output-format', 'json']);
      const result = parseResult(run);
      expect(run.code, run.stderr).toBe(0);
      expect(result).toMatchObject({
        subtype: 'success',
        is_error: false,
        result: 'Wrote new.txt, edited existing.txt and removed old.txt.',
      });

      expect(await readFile(join(cwd, 'new.txt'), 'utf8')).toBe('created by the session\n');
      expect(await readFile(join(cwd, 'existing.txt'), 'utf8')).toBe(
        'line one\nline two, edited\nline three\n',
      );
      await expect(stat(join(cwd, 'old.txt'))).rejects.toMatchObject({ code: 'ENOENT' });
      const { stdout: status } = await git(cwd, 'status', '--porcelain');
      expect(status.split('\n').filter(Boolean).sort()).toEqual(
        ['D  old.txt', ' M existing.txt', '?? new.txt'].sort(),
      );

      const requests = requestsOf('files');
      // One request per model turn: four tool calls, then the closing text.
      expect(requests).toHaveLength(5);
      const last = requests.at(-1);
      expect(last?.toolsCalled).toEqual(['Write', 'Read', 'Edit', 'Bash']);
      expect(last?.toolResults).toHaveLength(4);
      expect(last?.toolResults.filter((r) => r.isError)).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'prints one JSON event per line ending with the result with --output-format stream-json --verbose',
    async () => {
      const cwd = await newCwd('stream');
      const run = await runClaude(cwd, '[scenario:stream] Say hello.', [
        '--output-format',
        'stream-json',
        '--verbose',
      ]);
      expect(run.code, run.stderr).toBe(0);
      const lines = run.stdout.split('\n').filter((l) => l.trim() !== '');
      const events = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(events.length).toBeGreaterThanOrEqual(3);
      expect(events[0]).toMatchObject({ type: 'system', subtype: 'init' });
      expect(events.some((e) => e.type === 'assistant')).toBe(true);
      expect(events.at(-1)).toMatchObject({
        type: 'result',
        subtype: 'success',
        is_error: false,
        result: 'Hello from the stand-in (stream)',
      });
      expect(events.filter((e) => e.type === 'result')).toHaveLength(1);
    },
    TEST_TIMEOUT_MS,
  );

  it('answers the stand-in protocol without the CLI: HEAD, 404s, errors and non-streaming JSON', async () => {
    const head = await fetch(`${api.url}/`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    const other = await fetch(`${api.url}/v1/messages/count_tokens?beta=true`, {
      method: 'POST',
      body: '{}',
    });
    expect(other.status).toBe(404);

    const local = await startMessagesApi((request) => {
      if (request.prompt === 'boom') throw new Error('scripted failure');
      return {
        content: [
          { type: 'text', text: 'hi' },
          { type: 'tool_use', name: 'Read', input: { file_path: '/x' } },
        ],
      };
    });
    try {
      const post = (prompt: string, stream: boolean) =>
        fetch(`${local.url}/v1/messages`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'm', stream, messages: [{ role: 'user', content: prompt }] }),
        });
      const plain = await post('hello', false);
      expect(plain.status).toBe(200);
      expect(await plain.json()).toMatchObject({
        type: 'message',
        role: 'assistant',
        stop_reason: 'tool_use',
        content: [
          { type: 'text', text: 'hi' },
          {
            type: 'tool_use',
            name: 'Read',
            input: { file_path: '/x' },
            id: expect.stringMatching(/^toolu_/),
          },
        ],
      });
      const streamed = await post('hello', true);
      expect(streamed.headers.get('content-type')).toContain('text/event-stream');
      const events = [...(await streamed.text()).matchAll(/^event: (\w+)$/gm)].map((m) => m[1]);
      expect(events[0]).toBe('message_start');
      expect(events.slice(-2)).toEqual(['message_delta', 'message_stop']);
      const failed = await post('boom', false);
      expect(failed.status).toBe(500);
      expect(await failed.json()).toEqual({
        type: 'error',
        error: { type: 'api_error', message: 'scripted failure' },
      });
      expect(local.errors?.map((e) => e.message)).toEqual(['scripted failure']);
      expect(local.requests.map((r) => r.prompt)).toEqual(['hello', 'hello', 'boom']);
    } finally {
      await local.stop();
    }
  });
});
