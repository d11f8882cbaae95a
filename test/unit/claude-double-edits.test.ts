import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DoubleRun, listFiles, resultOf, runDouble } from '../support/run-double.ts';

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

function read(cwd: string, rel: string): string {
  return fs.readFileSync(path.join(cwd, rel), 'utf8');
}

function write(cwd: string, rel: string, text: string): void {
  fs.mkdirSync(path.dirname(path.join(cwd, rel)), { recursive: true });
  fs.writeFileSync(path.join(cwd, rel), text);
}

async function work(cwd: string, prompt: string, env?: Record<string, string | undefined>) {
  const r = await run(['-p', prompt, '--output-format', 'json'], { cwd, env });
  return { code: r.code, res: resultOf(r), stderr: r.stderr };
}

beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'claude-double-edits-'));
});

afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

describe('claude double: edit directives in work runs', () => {
  it('[[create:PATH:TEXT]] makes parent dirs, writes TEXT plus a newline and skips the default note', async () => {
    const cwd = freshDir();
    const { code, res } = await work(cwd, 'Add a module [[create:src/lib/deep/mod.ts:export const a = 1;]]');
    expect(code).toBe(0);
    expect(res).toMatchObject({ subtype: 'success', is_error: false, result: 'Completed: Add a module' });
    expect(listFiles(cwd)).toEqual(['src/lib/deep/mod.ts']);
    expect(read(cwd, 'src/lib/deep/mod.ts')).toBe('export const a = 1;\n');
  });

  it('[[create]] overwrites an existing file; TEXT may contain `:` and `\\n` stands for a newline', async () => {
    const cwd = freshDir();
    write(cwd, 'config.yml', 'old: content\nmore\n');
    const { code } = await work(cwd, 'Rewrite [[create:config.yml:key: value\\nother: 2\\n\\nend]]');
    expect(code).toBe(0);
    expect(read(cwd, 'config.yml')).toBe('key: value\nother: 2\n\nend\n');
    expect(listFiles(cwd)).toEqual(['config.yml']);
  });

  it('[[append:PATH:TEXT]] appends to an existing file and creates a missing one', async () => {
    const cwd = freshDir();
    write(cwd, 'log.txt', 'first\n');
    const { code } = await work(
      cwd,
      'Log it [[append:log.txt:second]] [[append:log.txt:third\\nfourth]] [[append:new/fresh.txt:hello]]',
    );
    expect(code).toBe(0);
    expect(read(cwd, 'log.txt')).toBe('first\nsecond\nthird\nfourth\n');
    expect(read(cwd, 'new/fresh.txt')).toBe('hello\n');
    expect(listFiles(cwd)).toEqual(['log.txt', 'new/fresh.txt']);
  });

  it('[[edit_line:PATH:N:TEXT]] replaces one line and keeps the others and the trailing newline', async () => {
    const cwd = freshDir();
    write(cwd, 'a.txt', 'one\ntwo\nthree\n');
    write(cwd, 'b.txt', 'alpha\nbeta');
    write(cwd, 'c.txt', 'x\ny\nz\n');
    const { code } = await work(
      cwd,
      'Edit [[edit_line:a.txt:2:TWO: 2]] [[edit_line:b.txt:2:BETA]] [[edit_line:c.txt:1:x1\\nx2]]',
    );
    expect(code).toBe(0);
    expect(read(cwd, 'a.txt')).toBe('one\nTWO: 2\nthree\n');
    // a file without a trailing newline stays without one
    expect(read(cwd, 'b.txt')).toBe('alpha\nBETA');
    expect(read(cwd, 'c.txt')).toBe('x1\nx2\ny\nz\n');
    expect(listFiles(cwd)).toEqual(['a.txt', 'b.txt', 'c.txt']);
  });

  it('[[delete:PATH]] deletes a file', async () => {
    const cwd = freshDir();
    write(cwd, 'keep.txt', 'k\n');
    write(cwd, 'old/stale.txt', 's\n');
    const { code } = await work(cwd, 'Clean up [[delete:old/stale.txt]]');
    expect(code).toBe(0);
    expect(listFiles(cwd)).toEqual(['keep.txt']);
  });

  it('applies several edits in prompt order', async () => {
    const cwd = freshDir();
    const { code } = await work(
      cwd,
      'Steps [[create:f.txt:a\\nb\\nc]] [[edit_line:f.txt:3:C]] [[append:f.txt:d]] [[create:tmp.txt:t]] [[delete:tmp.txt]]',
    );
    expect(code).toBe(0);
    expect(read(cwd, 'f.txt')).toBe('a\nb\nC\nd\n');
    expect(listFiles(cwd)).toEqual(['f.txt']);
  });

  it('[[no_files]] writes nothing at all, not even [[files:N]] files', async () => {
    const cwd = freshDir();
    const { code, res } = await work(cwd, 'Look only [[no_files]]');
    expect(code).toBe(0);
    expect(res.result).toBe('Completed: Look only');
    expect(listFiles(cwd)).toEqual([]);
    const cwd2 = freshDir();
    expect((await work(cwd2, 'Still nothing [[no_files]] [[files:3]]')).code).toBe(0);
    expect(listFiles(cwd2)).toEqual([]);
  });

  it('[[files:N]] keeps working next to edits, and edits from CLAUDE_DOUBLE_DIRECTIVES apply first', async () => {
    const cwd = freshDir();
    const { code } = await work(cwd, 'Both [[files:2]] [[append:x.txt:prompt]]', {
      CLAUDE_DOUBLE_DIRECTIVES: '[[create:x.txt:env]]',
    });
    expect(code).toBe(0);
    expect(listFiles(cwd)).toEqual(['file_1.txt', 'file_2.txt', 'notes/summary.md', 'x.txt']);
    expect(read(cwd, 'x.txt')).toBe('env\nprompt\n');
  });

  it('without edit directives the default note is still written', async () => {
    const cwd = freshDir();
    expect((await work(cwd, 'Plain work')).code).toBe(0);
    expect(listFiles(cwd)).toEqual([expect.stringMatching(/^output_[0-9a-z]+\.md$/)]);
  });

  it.each([
    ['a `..` path', '[[create:../x:y]]', /'\.\.' segments/],
    ['a nested `..` path', '[[append:sub/../../x:y]]', /'\.\.' segments/],
    ['an absolute path', `[[create:${path.join(os.tmpdir(), 'claude-double-abs.txt')}:y]]`, /absolute/],
    ['a missing line', '[[edit_line:have.txt:3:y]]', /no line 3 in have\.txt, which has 2 lines/],
    ['line 0', '[[edit_line:have.txt:0:y]]', /positive integer/],
    ['an edit of a missing file', '[[edit_line:nope.txt:1:y]]', /no such file nope\.txt/],
    ['a delete of a missing file', '[[delete:nope.txt]]', /no such file nope\.txt/],
  ])('refuses %s, failing the run without writing anything', async (_name, directive, reason) => {
    const cwd = freshDir();
    write(cwd, 'have.txt', 'l1\nl2\n');
    const { code, res } = await work(cwd, `Try [[create:before.txt:b]] ${directive} [[append:have.txt:z]]`);
    expect(code).toBe(1);
    expect(res).toMatchObject({ subtype: 'error_during_execution', is_error: true });
    expect(res.result).toMatch(/^Refused \[\[/);
    expect(res.result).toMatch(reason);
    expect(res.errors).toEqual([res.result]);
    // all or none: the edits before and after the refused one are not applied either
    expect(listFiles(cwd)).toEqual(['have.txt']);
    expect(read(cwd, 'have.txt')).toBe('l1\nl2\n');
    expect(fs.existsSync(path.join(cwd, '..', 'x'))).toBe(false);
    expect(fs.existsSync(path.join(os.tmpdir(), 'claude-double-abs.txt'))).toBe(false);
  });

  it('edit directives do nothing in a decide run', async () => {
    const cwd = freshDir();
    const prompt = [
      'Decide.',
      'ORCHESTRATOR-DECIDE',
      'Subtask:',
      'Write it [[create:x.txt:y]] [[no_files]]',
    ].join('\n');
    const r = await run(['-p', prompt, '--output-format', 'json'], { cwd });
    expect(r.code).toBe(0);
    expect(JSON.parse(String(resultOf(r).result))).toMatchObject({ decision: 'do' });
    expect(listFiles(cwd)).toEqual([]);
  });
});

const CONFLICT = [
  'header',
  '<<<<<<< HEAD',
  'ours 1',
  'ours 2',
  '=======',
  'theirs 1',
  '>>>>>>> worker-2',
  'middle',
  '<<<<<<< HEAD',
  'ours 3',
  '=======',
  'theirs 3',
  'theirs 4',
  '>>>>>>> worker-2',
  'footer',
  '',
].join('\n');

function mergePrompt(files: string[], subtasks = 'Part 1 of: write the guide'): string {
  return [
    'You are merging the work of several workers.',
    'ORCHESTRATOR-MERGE',
    'Conflicting files:',
    ...files.map((f) => `- ${f}`),
    '',
    'The subtasks were:',
    subtasks,
  ].join('\n');
}

async function merge(cwd: string, prompt: string, extra: string[] = []) {
  const r = await run(['-p', prompt, '--output-format', 'json', ...extra], { cwd });
  return { code: r.code, res: resultOf(r) };
}

describe('claude double: merge runs', () => {
  it('resolves every conflict block with both sides by default', async () => {
    const cwd = freshDir();
    write(cwd, 'guide.md', CONFLICT);
    write(cwd, 'src/b.ts', '<<<<<<< ours\nconst a = 1;\n=======\nconst b = 2;\n>>>>>>> theirs\n');
    const { code, res } = await merge(cwd, mergePrompt(['guide.md', 'src/b.ts']));
    expect(code).toBe(0);
    expect(res).toMatchObject({
      subtype: 'success',
      is_error: false,
      num_turns: 1,
      total_cost_usd: 0.0125,
      result: 'Merge (resolve both): resolved guide.md, src/b.ts',
    });
    expect(read(cwd, 'guide.md')).toBe(
      'header\nours 1\nours 2\ntheirs 1\nmiddle\nours 3\ntheirs 3\ntheirs 4\nfooter\n',
    );
    expect(read(cwd, 'src/b.ts')).toBe('const a = 1;\nconst b = 2;\n');
    expect(listFiles(cwd)).toEqual(['guide.md', 'src/b.ts']);
  });

  it('[[resolve:both]], [[resolve:ours]] and [[resolve:theirs]] pick the sides', async () => {
    const expected = {
      both: 'header\nours 1\nours 2\ntheirs 1\nmiddle\nours 3\ntheirs 3\ntheirs 4\nfooter\n',
      ours: 'header\nours 1\nours 2\nmiddle\nours 3\nfooter\n',
      theirs: 'header\ntheirs 1\nmiddle\ntheirs 3\ntheirs 4\nfooter\n',
    };
    for (const [mode, text] of Object.entries(expected)) {
      const cwd = freshDir();
      write(cwd, 'guide.md', CONFLICT);
      const { code, res } = await merge(cwd, `${mergePrompt(['guide.md'])}\n[[resolve:${mode}]]`);
      expect(code, mode).toBe(0);
      expect(res.result).toBe(`Merge (resolve ${mode}): resolved guide.md`);
      expect(read(cwd, 'guide.md'), mode).toBe(text);
      expect(listFiles(cwd)).toEqual(['guide.md']);
    }
  });

  it('[[resolve:none]] leaves the files unchanged and still succeeds', async () => {
    const cwd = freshDir();
    write(cwd, 'guide.md', CONFLICT);
    const { code, res } = await merge(cwd, `[[resolve:none]]\n${mergePrompt(['guide.md'])}`);
    expect(code).toBe(0);
    expect(res.result).toBe('Merge (resolve none): resolved no files; unchanged: guide.md');
    expect(read(cwd, 'guide.md')).toBe(CONFLICT);
  });

  it('drops the diff3 base section', async () => {
    const cwd = freshDir();
    write(
      cwd,
      'f.txt',
      'a\n<<<<<<< HEAD\nmine\n||||||| merged common ancestors\nbase 1\nbase 2\n=======\nyours\n>>>>>>> w\nz\n',
    );
    const { code } = await merge(cwd, mergePrompt(['f.txt']));
    expect(code).toBe(0);
    expect(read(cwd, 'f.txt')).toBe('a\nmine\nyours\nz\n');
    write(cwd, 'g.txt', '<<<<<<< HEAD\nmine\n||||||| base\nold\n=======\nyours\n>>>>>>> w\n');
    await merge(cwd, `${mergePrompt(['g.txt'])}\n[[resolve:theirs]]`);
    expect(read(cwd, 'g.txt')).toBe('yours\n');
  });

  it('ignores the directives quoted from the subtasks', async () => {
    const cwd = freshDir();
    write(cwd, 'guide.md', CONFLICT);
    const subtasks = [
      '1. Write the intro [[fail]] [[create:x:y]] [[files:3]]',
      '2. Write the end [[turns:9]] [[crash]] [[garbage]] [[logged_out]] [[decide_fail]] [[append:guide.md:z]]',
    ].join('\n');
    const { code, res } = await merge(cwd, mergePrompt(['guide.md'], subtasks), ['--max-turns', '2']);
    expect(code).toBe(0);
    expect(res).toMatchObject({ subtype: 'success', is_error: false, num_turns: 1 });
    expect(res.result).toBe('Merge (resolve both): resolved guide.md');
    expect(listFiles(cwd)).toEqual(['guide.md']);
    expect(read(cwd, 'guide.md')).not.toContain('<<<<<<<');
    expect(read(cwd, 'guide.md').endsWith('footer\n')).toBe(true);
  });

  it('honours [[cost:X]] and [[sleep:MS]] in a merge run', async () => {
    const cwd = freshDir();
    write(cwd, 'guide.md', CONFLICT);
    const t0 = Date.now();
    const { code, res } = await merge(cwd, `${mergePrompt(['guide.md'])}\n[[cost:0.42]] [[sleep:300]]`);
    expect(code).toBe(0);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(300);
    expect(res.total_cost_usd).toBe(0.42);
    const over = await merge(cwd, `${mergePrompt(['guide.md'])}\n[[cost:2]]`, ['--max-budget-usd', '1']);
    expect(over.code).toBe(1);
    expect(over.res.subtype).toBe('error_max_budget_usd');
  });

  it('[[merge_fail]] fails the merge run like [[fail]] and leaves the files as they were', async () => {
    const cwd = freshDir();
    write(cwd, 'guide.md', CONFLICT);
    const { code, res } = await merge(cwd, `${mergePrompt(['guide.md'])}\n[[merge_fail]]`);
    expect(code).toBe(1);
    expect(res).toMatchObject({
      subtype: 'error_during_execution',
      is_error: true,
      result: 'Simulated failure',
    });
    expect(read(cwd, 'guide.md')).toBe(CONFLICT);
    expect(listFiles(cwd)).toEqual(['guide.md']);
    // in a work run [[merge_fail]] does nothing
    const other = freshDir();
    expect((await work(other, 'Work [[merge_fail]] [[no_files]]')).code).toBe(0);
  });

  it('only touches the listed files that exist, up to the first blank line', async () => {
    const cwd = freshDir();
    const unterminated = 'a\n<<<<<<< HEAD\nmine\n=======\nyours\n';
    write(cwd, 'listed.txt', CONFLICT);
    write(cwd, 'clean.txt', 'no conflicts here\n');
    write(cwd, 'broken.txt', unterminated);
    write(cwd, 'later.txt', CONFLICT);
    const prompt = [
      'ORCHESTRATOR-MERGE',
      'Conflicting files:',
      '- listed.txt',
      '- clean.txt',
      '- broken.txt',
      '- missing.txt',
      '- ../outside.txt',
      '',
      '- later.txt',
    ].join('\n');
    const { code, res } = await merge(cwd, prompt);
    expect(code).toBe(0);
    expect(res.result).toBe(
      'Merge (resolve both): resolved listed.txt; unchanged: clean.txt, broken.txt; not found: missing.txt, ../outside.txt',
    );
    expect(read(cwd, 'listed.txt')).not.toContain('=======');
    expect(read(cwd, 'clean.txt')).toBe('no conflicts here\n');
    expect(read(cwd, 'broken.txt')).toBe(unterminated);
    expect(read(cwd, 'later.txt')).toBe(CONFLICT);
    expect(listFiles(cwd)).toEqual(['broken.txt', 'clean.txt', 'later.txt', 'listed.txt']);
  });
});
