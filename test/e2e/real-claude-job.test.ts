/**
 * Whole repository jobs with the REAL `claude` CLI (2.1.197) in every session:
 * the planner, the workers and the merge step's conflict session, end to end
 * through local mode, against the scripted Messages API stand-in. Every model
 * turn is decided by the script below from the session's prompt and the tools
 * already called; the CLI runs its own Write/Read/Edit/Bash tools in the
 * worker's checkout, and the orchestrator turns what they did into commits.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack, type TestStack } from '../support/harness.ts';
import {
  type MessagesApi,
  type MessagesRequest,
  type ScriptedReply,
  startMessagesApi,
  text,
  toolUse,
} from '../support/messages-api.ts';
import { REAL_CLAUDE, realClaudeEnv } from '../support/real-claude.ts';
import { bundleOf, fetchJobBranch, git, sampleRepo, uploadSource } from '../support/repos.ts';

const FILES = {
  'README.md': '# Sample\n\nA small project.\n',
  'src/old.ts': 'export const old = 1;\n',
  'notes.txt': 'line one\nline two\nline three\n',
};

/** Markers in the subtask prompts: each tells the script which session it is answering. */
const CREATE_DOCS = 'Create docs/usage.md with a usage guide (real-cli-create-docs).';
const TIDY_UP = 'Mark line two of notes.txt as edited and delete src/old.ts (real-cli-tidy-up).';
const SAY_HELLO = 'Change line two of notes.txt to greet (real-cli-say-hello).';
const SAY_GOODBYE = 'Change line two of notes.txt to say goodbye (real-cli-say-goodbye).';

const USAGE_DOC = '# Usage\n\nRun it.\n';
/** A job here takes 3-10 s; the caps only turn a hang into a failure. */
const JOB_TIMEOUT_MS = 75_000;
const TEST_TIMEOUT_MS = 90_000;

/** Usage every scripted turn reports; the CLI prices it with its own table. */
const USAGE = { input_tokens: 1_000, output_tokens: 200 };

/** Something the script did not expect (a failed tool, an unknown session): asserted empty by every test. */
const surprises: string[] = [];

/** The session's working directory, as the CLI states it in its system prompt. */
function cwdOf(request: MessagesRequest): string {
  const system = Array.isArray(request.system)
    ? request.system.map((b) => (b as { text?: unknown }).text ?? '').join('\n')
    : String(request.system ?? '');
  const cwd = /Primary working directory: (.+)/.exec(system)?.[1]?.trim();
  if (!cwd) throw new Error('the system prompt names no working directory');
  return cwd;
}

/** A tool call as the model would make it: absolute paths in the session's checkout. */
function call(name: string, input: Record<string, unknown>): ScriptedReply {
  return { ...toolUse(name, input), usage: USAGE };
}

function answer(t: string): ScriptedReply {
  return { ...text(t), usage: USAGE };
}

/** The `Read` tool's output (`<n>\t<line>` per line) back to the file's text. */
function fileTextOfRead(output: string): string {
  return output
    .split('\n')
    .map((l) => /^\s*\d+\t(.*)$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => m[1])
    .join('\n');
}

/** Keeps both sides of every conflict block (and drops a diff3 base section). */
function keepBothSides(conflicted: string): string {
  const out: string[] = [];
  let inBase = false;
  for (const line of conflicted.split('\n')) {
    if (line.startsWith('<<<<<<<') || line.startsWith('>>>>>>>')) continue;
    if (line.startsWith('|||||||')) {
      inBase = true;
      continue;
    }
    if (line === '=======') {
      inBase = false;
      continue;
    }
    if (!inBase) out.push(line);
  }
  return out.join('\n');
}

/** One session's turns; the next reply follows from the tools already called, never from the request number. */
function session(request: MessagesRequest): ScriptedReply {
  const failed = request.toolResults.find((r) => r.isError);
  if (failed) {
    surprises.push(`a tool failed: ${failed.content}`);
    return answer(`A tool failed: ${failed.content}`);
  }
  const called = request.toolsCalled;
  const prompt = request.prompt;

  if (prompt.includes('ORCHESTRATOR-MERGE')) {
    const file = /Conflicting files:\n- (.+)/.exec(prompt)?.[1]?.trim();
    if (!file) throw new Error('a merge session without conflicting files');
    const path = join(cwdOf(request), file);
    if (!called.includes('Read')) return call('Read', { file_path: path });
    if (!called.includes('Write')) {
      const read = request.toolResults[called.indexOf('Read')]?.content ?? '';
      return call('Write', { file_path: path, content: keepBothSides(fileTextOfRead(read)) });
    }
    return answer(`Resolved ${file}: kept both changes.`);
  }

  if (prompt.includes('You are the planner')) {
    return call('StructuredOutput', {
      subtasks: [
        { title: 'Write the usage guide', prompt: CREATE_DOCS },
        { title: 'Tidy up', prompt: TIDY_UP },
      ],
    });
  }

  if (prompt.includes(CREATE_DOCS)) {
    if (!called.includes('Write')) {
      return call('Write', { file_path: join(cwdOf(request), 'docs/usage.md'), content: USAGE_DOC });
    }
    return answer('Added docs/usage.md with a short usage guide.');
  }

  if (prompt.includes(TIDY_UP)) {
    const notes = join(cwdOf(request), 'notes.txt');
    if (!called.includes('Read')) return call('Read', { file_path: notes });
    if (!called.includes('Edit')) {
      return call('Edit', { file_path: notes, old_string: 'line two', new_string: 'line two, edited' });
    }
    if (!called.includes('Bash')) {
      return call('Bash', { command: 'git rm -q src/old.ts', description: 'Delete src/old.ts' });
    }
    return answer('Edited line two of notes.txt and deleted src/old.ts.');
  }

  for (const [marker, words] of [
    [SAY_HELLO, 'hello'],
    [SAY_GOODBYE, 'goodbye'],
  ] as const) {
    if (!prompt.includes(marker)) continue;
    const notes = join(cwdOf(request), 'notes.txt');
    if (!called.includes('Read')) return call('Read', { file_path: notes });
    if (!called.includes('Edit')) {
      return call('Edit', { file_path: notes, old_string: 'line two', new_string: `line two, ${words}` });
    }
    return answer(`Line two of notes.txt now says ${words}.`);
  }

  surprises.push(`an unexpected session: ${prompt.slice(-300)}`);
  return answer('Nothing to do.');
}

function sessionsWith(api: MessagesApi, marker: string): MessagesRequest[] {
  return api.requests.filter((r) => r.prompt.includes(marker));
}

describe('repository jobs with the real claude CLI against the Messages API stand-in', () => {
  let api: MessagesApi;
  let stack: TestStack;
  let dir: string;
  let home: string;
  let origin: string;
  let base: string;
  let bundle: Buffer;

  async function submit(body: Record<string, unknown>) {
    const bundleId = await uploadSource(stack, bundle);
    const submitted = await stack.api('POST', '/api/v1/orchestrate', {
      body: { ...body, source: { bundle_id: bundleId } },
    });
    expect(submitted.status, submitted.text).toBe(202);
    const jobId = submitted.json.job_id as string;
    const status = await stack.waitForJob(jobId, JOB_TIMEOUT_MS);
    const result = (await stack.api('GET', `/api/v1/jobs/${jobId}`)).json;
    return { jobId, status, result };
  }

  /** A fresh clone of the sample repository with the job's branch fetched and checked out. */
  async function checkoutOf(jobId: string): Promise<{ clone: string; branch: string }> {
    const clone = await mkdtemp(join(dir, 'clone-'));
    await git(dir, 'clone', '--quiet', origin, clone);
    const branch = await fetchJobBranch(stack, jobId, clone, dir);
    await git(clone, 'checkout', '--quiet', branch);
    return { clone, branch };
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'real-claude-job-'));
    home = await mkdtemp(join(tmpdir(), 'real-claude-home-'));
    origin = join(dir, 'origin');
    base = await sampleRepo(origin, FILES);
    bundle = await readFile(await bundleOf(origin, join(dir, 'sample.bundle')));
    api = await startMessagesApi(session);
    // Workers inherit this process's environment: blank what would send the CLI anywhere but the stand-in.
    const workerEnv = {
      ...realClaudeEnv(api.url, home),
      ANTHROPIC_AUTH_TOKEN: '',
      CLAUDE_CODE_USE_BEDROCK: '',
      CLAUDE_CODE_USE_VERTEX: '',
    };
    stack = await startTestStack('workers: {max_workers: 3}', workerEnv, { claudeCommand: REAL_CLAUDE });
  });

  afterAll(async () => {
    await stack?.stop();
    await api?.stop();
    for (const d of [dir, home]) if (d) await rm(d, { recursive: true, force: true });
  });

  it(
    'plans a job into two workers whose Write, Read+Edit and Bash (git rm) changes land on one merged branch',
    async () => {
      const { jobId, status, result } = await submit({
        request: 'Document the sample project and tidy it up (real-cli-planned-job).',
      });
      expect(surprises).toEqual([]);
      expect(api.errors).toEqual([]);
      expect(status, JSON.stringify(result.error ?? result.planning)).toBe('completed');
      expect(result.git).toMatchObject({ base_commit: base, state: 'merged', conflicts: [] });

      const byWorker = Object.fromEntries(
        result.results.tasks.map((t: { worker_id: string; files_changed: unknown }) => [
          t.worker_id,
          t.files_changed,
        ]),
      );
      expect(byWorker).toEqual({
        worker_1: { added: ['docs/usage.md'], modified: [], deleted: [] },
        worker_2: { added: [], modified: ['notes.txt'], deleted: ['src/old.ts'] },
      });

      const { clone, branch } = await checkoutOf(jobId);
      expect(await git(clone, 'rev-parse', 'HEAD')).toBe(result.git.head_commit);
      expect(await readFile(join(clone, 'docs/usage.md'), 'utf8')).toBe(USAGE_DOC);
      expect(await readFile(join(clone, 'notes.txt'), 'utf8')).toBe(
        'line one\nline two, edited\nline three\n',
      );
      await expect(readFile(join(clone, 'src/old.ts'))).rejects.toMatchObject({ code: 'ENOENT' });
      expect(await readFile(join(clone, 'README.md'), 'utf8')).toBe(FILES['README.md']);
      const authors = (await git(clone, 'log', '--no-merges', '--format=%an', `${base}..${branch}`)).split(
        '\n',
      );
      expect(authors.sort()).toEqual(['worker_1 (claude-fleet)', 'worker_2 (claude-fleet)']);
      // Claude's closing text is the commit body.
      const w2 = result.results.tasks[1].commit as string;
      expect(await git(clone, 'log', '-1', '--format=%b', w2)).toContain(
        'Edited line two of notes.txt and deleted src/old.ts.',
      );

      // The planner was offered StructuredOutput with the plan's schema and answered in one turn.
      const planner = api.requests.filter(
        (r) => r.prompt.includes('You are the planner') && r.prompt.includes('real-cli-planned-job'),
      );
      expect(planner).toHaveLength(1);
      const offered = planner[0]?.tools.find((t) => t.name === 'StructuredOutput');
      expect(offered?.input_schema).toMatchObject({ required: ['subtasks'] });
      // One request per model turn: a tool call each, then the closing text.
      expect(sessionsWith(api, CREATE_DOCS).map((r) => r.toolsCalled.length)).toEqual([0, 1]);
      expect(sessionsWith(api, TIDY_UP).at(-1)?.toolsCalled).toEqual(['Read', 'Edit', 'Bash']);
      expect(sessionsWith(api, TIDY_UP)).toHaveLength(4);

      // The CLI priced the usage the stand-in reported.
      expect(result.results.summary.total_cost_usd).toBeGreaterThan(0);
      expect(result.planning.cost_usd).toBeGreaterThan(0);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'resolves two workers editing the same line with a real merge session that keeps both changes',
    async () => {
      const { jobId, status, result } = await submit({
        request: 'Change the greeting line (real-cli-conflict-job).',
        tasks: [
          { title: 'Say hello', prompt: SAY_HELLO },
          { title: 'Say goodbye', prompt: SAY_GOODBYE },
        ],
      });
      expect(surprises).toEqual([]);
      expect(api.errors).toEqual([]);
      expect(status, JSON.stringify(result.error ?? result.git)).toBe('completed');
      expect(result.git.conflicts).toEqual([
        expect.objectContaining({ workers: ['worker_1', 'worker_2'], files: ['notes.txt'] }),
      ]);
      expect(result.git.conflicts[0].resolution).toBe('resolved');
      expect(result.git.merged.map((m: { outcome: string }) => m.outcome)).toEqual(['merged', 'resolved']);

      const { clone, branch } = await checkoutOf(jobId);
      const notes = await readFile(join(clone, 'notes.txt'), 'utf8');
      expect(notes).toBe('line one\nline two, hello\nline two, goodbye\nline three\n');
      expect(notes).not.toMatch(/^(<{7}|={7}|>{7})/m);
      expect(await git(clone, 'log', '-1', '--format=%B', branch)).toContain(
        'Fleet-Merge: worker_1, worker_2',
      );

      // The merge session: the orchestrator's prompt, then Read, Write and the closing text.
      const merge = api.requests.filter(
        (r) => r.prompt.includes('ORCHESTRATOR-MERGE') && r.prompt.includes(SAY_GOODBYE),
      );
      expect(merge[0]?.prompt).toContain('Conflicting files:\n- notes.txt');
      expect(merge.map((r) => r.toolsCalled)).toEqual([[], ['Read'], ['Read', 'Write']]);
      expect(result.steps).toEqual([expect.objectContaining({ kind: 'merge', status: 'succeeded' })]);
      expect(result.steps[0].cost_usd).toBeGreaterThan(0);
    },
    TEST_TIMEOUT_MS,
  );
});
