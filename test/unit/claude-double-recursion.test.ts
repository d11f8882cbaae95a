import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DoubleRun, resultOf, runDouble } from '../support/run-double.ts';

const DECIDE_SCHEMA = {
  type: 'object',
  properties: {
    decision: { type: 'string', enum: ['do', 'split'] },
    reason: { type: 'string' },
    subtasks: {
      type: 'array',
      minItems: 0,
      maxItems: 5,
      items: {
        type: 'object',
        properties: { title: { type: 'string' }, prompt: { type: 'string' } },
        required: ['title', 'prompt'],
        additionalProperties: false,
      },
    },
  },
  required: ['decision', 'reason', 'subtasks'],
  additionalProperties: false,
};

interface Decision {
  decision: string;
  reason: string;
  subtasks: Array<{ title: string; prompt: string }>;
}

let root: string;

const run = (
  args: string[],
  opts: { cwd: string; env?: Record<string, string | undefined> },
): Promise<DoubleRun> => runDouble(args, { ...opts, stateDir: path.join(root, 'state') });
let counter = 0;

function freshDir(): string {
  counter += 1;
  const dir = path.join(root, `ws-${counter}`);
  fs.mkdirSync(dir);
  return dir;
}

function decidePrompt(subtask: string, context = 'Part of the job: write a guide.'): string {
  return [
    'You are one worker of an orchestrated job.',
    context,
    'Decide whether to do the subtask below yourself or to split it into smaller subtasks.',
    'ORCHESTRATOR-DECIDE',
    'Subtask:',
    subtask,
  ].join('\n');
}

async function decide(subtask: string, context?: string) {
  const cwd = freshDir();
  const r = await run(
    [
      '-p',
      decidePrompt(subtask, context),
      '--output-format',
      'json',
      '--json-schema',
      JSON.stringify(DECIDE_SCHEMA),
    ],
    { cwd },
  );
  const res = r.stdout ? resultOf(r) : {};
  return { r, res, answer: res.structured_output as Decision, files: fs.readdirSync(cwd) };
}

function expectConforming(answer: Decision): void {
  expect(Object.keys(answer).sort()).toEqual(['decision', 'reason', 'subtasks']);
  expect(['do', 'split']).toContain(answer.decision);
  expect(typeof answer.reason).toBe('string');
  expect(answer.reason.length).toBeGreaterThan(0);
  expect(answer.subtasks.length).toBeLessThanOrEqual(5);
  for (const s of answer.subtasks) {
    expect(Object.keys(s).sort()).toEqual(['prompt', 'title']);
    expect(typeof s.title).toBe('string');
    expect(typeof s.prompt).toBe('string');
  }
}

beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'claude-double-recursion-'));
});

afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

describe('claude double: decide runs', () => {
  it('[[split:N]] splits into N subtasks titled Part i with the cleaned subtask prompt', async () => {
    const { r, res, answer, files } = await decide('Write the guide [[split:3]]');
    expect(r.code).toBe(0);
    expect(res.is_error).toBe(false);
    expect(res.subtype).toBe('success');
    expect(res.total_cost_usd).toBe(0.001);
    expect(res.num_turns).toBe(1);
    expectConforming(answer);
    expect(answer.decision).toBe('split');
    expect(answer.subtasks).toEqual([
      { title: 'Part 1', prompt: 'Part 1 of: Write the guide' },
      { title: 'Part 2', prompt: 'Part 2 of: Write the guide' },
      { title: 'Part 3', prompt: 'Part 3 of: Write the guide' },
    ]);
    expect(files).toEqual([]);
  });

  it('[[split_child:K:…]] appends directives to subtask K only, and is not propagated itself', async () => {
    const { r, answer, files } = await decide(
      'Write the guide [[split:3]] [[split_child:2:split:2;sleep:300]]',
    );
    expect(r.code).toBe(0);
    expectConforming(answer);
    const prompts = answer.subtasks.map((s) => s.prompt);
    expect(prompts).toHaveLength(3);
    expect(prompts[1]).toBe('Part 2 of: Write the guide [[split:2]] [[sleep:300]]');
    expect(prompts[1]?.endsWith(' [[split:2]] [[sleep:300]]')).toBe(true);
    expect(prompts[0]).toBe('Part 1 of: Write the guide');
    expect(prompts[2]).toBe('Part 3 of: Write the guide');
    expect(prompts.join('\n')).not.toContain('split_child');
    expect(files).toEqual([]);
  });

  it('[[split_all:…]] appends to every subtask, split_child may repeat, and N is clamped to maxItems', async () => {
    const { answer } = await decide(
      'Big job [[split:9]] [[split_all:files:1]] [[split_child:1:fail]] [[split_child:5:split:2]]',
    );
    expectConforming(answer);
    expect(answer.subtasks.map((s) => s.prompt)).toEqual([
      'Part 1 of: Big job [[files:1]] [[fail]]',
      'Part 2 of: Big job [[files:1]]',
      'Part 3 of: Big job [[files:1]]',
      'Part 4 of: Big job [[files:1]]',
      'Part 5 of: Big job [[files:1]] [[split:2]]',
    ]);
  });

  it('without [[split:N]] a decide run answers do with no subtasks, whatever plan and choose say', async () => {
    for (const subtask of ['Write the guide', 'Write the guide [[plan:4]] [[choose:split]]']) {
      const { r, res, answer, files } = await decide(subtask);
      expect(r.code, subtask).toBe(0);
      expectConforming(answer);
      expect(answer.decision).toBe('do');
      expect(answer.subtasks).toEqual([]);
      expect(res.total_cost_usd).toBe(0.001);
      expect(files).toEqual([]);
    }
  });

  it('reads directives from the subtask only: a [[split:N]] in the surrounding text does not split', async () => {
    const { answer } = await decide('Write the guide', 'Parent request: a big guide [[split:4]]');
    expect(answer.decision).toBe('do');
  });

  it('honours [[cost:X]], ignores work failures ([[fail]], [[fail_times]], [[crash]]); [[decide_fail]] fails', async () => {
    const costly = await decide('Write it [[cost:0.25]] [[split:2]]');
    expect(costly.res.total_cost_usd).toBe(0.25);
    expect(costly.answer.decision).toBe('split');

    const failing = await decide('Write it [[fail]] [[fail_times:3]] [[crash]] [[turns:9]]');
    expect(failing.r.code).toBe(0);
    expect(failing.res.num_turns).toBe(1);
    expect(failing.answer.decision).toBe('do');

    const broken = await decide('Write it [[decide_fail]] [[split:2]]');
    expect(broken.r.code).toBe(1);
    expect(broken.res.is_error).toBe(true);
    expect(broken.res.subtype).toBe('error_during_execution');
    expect(broken.files).toEqual([]);
  });

  it('[[split:N]] has no effect in a work run: the worker does the work and writes its file', async () => {
    const cwd = freshDir();
    const r = await run(['-p', 'Write the guide [[split:3]]', '--output-format', 'json'], { cwd });
    expect(r.code).toBe(0);
    const res = resultOf(r);
    expect(res.result).toBe('Completed: Write the guide');
    expect(res.total_cost_usd).toBe(0.0125);
    const files = fs.readdirSync(cwd);
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(/^output_[0-9a-f]{8}\.md$/);
    expect(fs.readFileSync(path.join(cwd, files[0] ?? ''), 'utf8')).toContain('> Write the guide\n');
  });
});

describe('claude double: [[spawn:…]]', () => {
  let binDir: string;
  let emptyDir: string;

  beforeAll(() => {
    binDir = path.join(root, 'fake-bin');
    emptyDir = path.join(root, 'empty-bin');
    fs.mkdirSync(binDir);
    fs.mkdirSync(emptyDir);
    const script = [
      '#!/bin/sh',
      'printf \'{"argv":[\'',
      "sep=''",
      'for a in "$@"; do',
      '  esc=$(printf \'%s\' "$a" | sed \'s/\\\\/\\\\\\\\/g; s/"/\\\\"/g\')',
      '  printf \'%s"%s"\' "$sep" "$esc"',
      "  sep=','",
      'done',
      'printf \'],"cwd":"%s","marker":"%s"}\\n\' "$PWD" "$FAKE_ORCH_MARKER"',
      'echo "fake stderr" >&2',
      'exit 2',
      '',
    ].join('\n');
    fs.writeFileSync(path.join(binDir, 'orchestrator'), script, { mode: 0o755 });
  });

  it('runs `orchestrator spawn --wait` from PATH and records its output', async () => {
    const cwd = freshDir();
    const r = await run(['-p', 'Delegate this [[spawn:child work;plan:2]]', '--output-format', 'json'], {
      cwd,
      env: { PATH: `${binDir}${path.delimiter}${process.env.PATH ?? ''}`, FAKE_ORCH_MARKER: 'from-env' },
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const res = resultOf(r);
    expect(res.is_error).toBe(false);

    const spawned = JSON.parse(fs.readFileSync(path.join(cwd, 'spawn_result.json'), 'utf8'));
    expect(spawned.args).toEqual(['spawn', '--wait', 'child work [[plan:2]]']);
    expect(spawned.exit_code).toBe(2);
    expect(spawned.error).toBeNull();
    expect(spawned.stderr).toBe('fake stderr\n');
    const echoed = JSON.parse(spawned.stdout);
    expect(echoed.argv).toEqual(['spawn', '--wait', 'child work [[plan:2]]']);
    expect(fs.realpathSync(echoed.cwd)).toBe(fs.realpathSync(cwd));
    expect(echoed.marker).toBe('from-env');

    const text = res.result as string;
    expect(text.startsWith('Completed: Delegate this\n')).toBe(true);
    expect(text).toContain('spawn exit 2');
    expect(text).toContain(spawned.stdout.trim());
    // the work itself is still done
    expect(fs.readdirSync(cwd).filter((f) => f.startsWith('output_'))).toHaveLength(1);
  });

  it('still succeeds when the spawn command cannot start, recording the error', async () => {
    const cwd = freshDir();
    const r = await run(['-p', 'Delegate [[spawn:child]]', '--output-format', 'json'], {
      cwd,
      env: { PATH: emptyDir },
    });
    expect(r.code).toBe(0);
    const res = resultOf(r);
    expect(res.is_error).toBe(false);
    const spawned = JSON.parse(fs.readFileSync(path.join(cwd, 'spawn_result.json'), 'utf8'));
    expect(spawned.args).toEqual(['spawn', '--wait', 'child']);
    expect(spawned.exit_code).toBeNull();
    expect(spawned.error).toMatch(/ENOENT/);
    expect(res.result).toContain('spawn exit none');
    expect(res.result).toContain('spawn error:');
  });
});

describe('claude double: [[attack:…]]', () => {
  interface Seen {
    method: string;
    url: string;
    headers: http.IncomingHttpHeaders;
    body: string;
  }
  let server: http.Server;
  let port: number;
  const seen: Seen[] = [];

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (d: string) => {
        body += d;
      });
      req.on('end', () => {
        seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
        res.writeHead(403, { 'content-type': 'application/json' });
        res.end('{"error":"forbidden"}');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  it('tries to escape with its token, records every answer and leaves the token behind', async () => {
    const secret = randomBytes(32).toString('base64url');
    expect(secret).toHaveLength(43);
    const token = `tt1.abc123.2.1.${secret}`;
    const cwd = freshDir();
    const r = await run(['-p', 'Summarise the page [[attack:otherjob9]]', '--output-format', 'json'], {
      cwd,
      env: { API_URL: `http://127.0.0.1:${port}/v1/`, TASK_TOKEN: token, TASK_ID: 'abc123/2/1' },
    });
    expect(r.code).toBe(0);
    const res = resultOf(r);
    expect(res.is_error).toBe(false);

    expect(seen.map((s) => `${s.method} ${s.url}`)).toEqual([
      'GET /v1/api/v1/jobs/otherjob9',
      'GET /v1/api/v1/jobs',
      'POST /v1/api/v1/jobs/abc123/tasks/3/result',
      'GET /v1/api/v1/jobs/abc123/tasks/3/assignment',
      'POST /v1/api/v1/jobs/abc123/tasks/2/uploads',
      'POST /v1/api/v1/orchestrate',
      'POST /v1/api/v1/jobs/otherjob9/cancel',
    ]);
    const byPath = (suffix: string) => seen.find((s) => s.url.endsWith(suffix));
    for (const s of seen.filter((x) => !x.url.endsWith('/orchestrate'))) {
      expect(s.headers['x-task-token'], s.url).toBe(token);
    }
    expect(JSON.parse(byPath('/tasks/3/result')?.body ?? '')).toEqual({
      attempt: 1,
      status: 'succeeded',
      output: 'pwned',
    });
    expect(JSON.parse(byPath('/tasks/2/uploads')?.body ?? '')).toEqual({
      attempt: 1,
      files: ['../../escape.txt'],
    });
    const child = byPath('/orchestrate');
    expect(child?.headers['x-task-token']).toBe(`tt1.abc123.3.1.${secret}`);
    expect(child?.headers['x-child-mode']).toBe('handoff');
    expect(JSON.parse(child?.body ?? '')).toEqual({ request: 'x', tasks: [{ prompt: 'y' }] });

    const results = JSON.parse(fs.readFileSync(path.join(cwd, 'attack_results.json'), 'utf8'));
    expect(results).toHaveLength(7);
    expect(results.map((x: { name: string }) => x.name)).toEqual([
      'read_other_job',
      'list_jobs',
      'other_task_result',
      'other_task_assignment',
      'upload_escape',
      'child_of_other_task',
      'other_job_cancel',
    ]);
    for (const x of results) {
      expect(x.status, x.name).toBe(403);
      expect(x.path.startsWith('/api/v1/')).toBe(true);
    }
    expect(results[0]).toEqual({
      name: 'read_other_job',
      method: 'GET',
      path: '/api/v1/jobs/otherjob9',
      status: 403,
    });
    expect(fs.readFileSync(path.join(cwd, 'stolen_token.txt'), 'utf8')).toBe(token);
    // then it finishes like a normal run
    expect(fs.readdirSync(cwd).filter((f) => f.startsWith('output_'))).toHaveLength(1);
    expect(res.result).toContain('read_other_job 403');
  });
});
