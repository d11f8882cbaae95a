/**
 * The repository rules the API applies without git: reading real bundle
 * headers (made here with real git), choosing a bundle's base commit, which
 * refs and URLs a job may name, and how worker and merge commits are written.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BUNDLE_HEADER_BYTES,
  type BundleHeader,
  bundleBase,
  COMMIT_SUMMARY_CHARS,
  gitUrlProblem,
  MERGE_MARKER,
  mergeCommitMessage,
  mergeConflictPrompt,
  parseBundleHeader,
  refNameProblem,
  workerCommitMessage,
} from '../../functions/core/git-source.ts';
import { GIT_ENV, git, sampleRepo } from '../support/repos.ts';

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);
const C = 'c'.repeat(40);
const D = 'd'.repeat(40);

const bytes = (text: string) => new Uint8Array(Buffer.from(text, 'latin1'));

/** What `git bundle list-heads` says a bundle holds, as parseBundleHeader reports refs. */
function listHeads(dir: string, file: string): { oid: string; name: string }[] {
  const out = execFileSync('git', ['bundle', 'list-heads', file], {
    cwd: dir,
    env: GIT_ENV,
    encoding: 'utf8',
  });
  return out
    .trim()
    .split('\n')
    .map((line) => {
      const [oid, name] = line.split(' ');
      return { oid: oid as string, name: name as string };
    });
}

describe('parseBundleHeader on bundles made by git', () => {
  let dir: string;
  let repo: string;
  let base: string;
  let tip: string;
  let feature: string;
  /** `git bundle create [options] <file> <revs>` in the sample repository. */
  const bundle = async (name: string, revs: string[], options: string[] = []) => {
    const file = join(dir, name);
    await git(repo, 'bundle', 'create', '--quiet', ...options, file, ...revs);
    return file;
  };
  const header = async (file: string) => parseBundleHeader(await readFile(file));

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'git-source-'));
    repo = join(dir, 'repo');
    base = await sampleRepo(repo, { 'README.md': '# Sample\n' });
    await git(repo, 'branch', 'feature');
    await writeFile(join(repo, 'README.md'), '# Sample\n\nMore.\n');
    await git(repo, 'commit', '--quiet', '-am', 'Second commit');
    tip = await git(repo, 'rev-parse', 'HEAD');
    await git(repo, 'checkout', '--quiet', 'feature');
    await writeFile(join(repo, 'feature.txt'), 'feature\n');
    await git(repo, 'add', 'feature.txt');
    await git(repo, 'commit', '--quiet', '-m', 'Feature commit');
    feature = await git(repo, 'rev-parse', 'HEAD');
    await git(repo, 'checkout', '--quiet', 'main');
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('reads a v2 bundle of main: one ref, no prerequisites', async () => {
    const file = await bundle('main.bundle', ['main']);
    const parsed = await header(file);
    expect(parsed).toEqual({ version: 2, prerequisites: [], refs: [{ oid: tip, name: 'refs/heads/main' }] });
    expect(parsed.refs).toEqual(listHeads(dir, file));
    expect(bundleBase(parsed)).toEqual({ oid: tip, ref: 'refs/heads/main' });
  });

  it('reads only the start of a bundle (BUNDLE_HEADER_BYTES is enough)', async () => {
    const whole = await readFile(await bundle('start.bundle', ['main']));
    expect(parseBundleHeader(whole.subarray(0, BUNDLE_HEADER_BYTES))).toEqual(parseBundleHeader(whole));
  });

  it('reads a bundle with two refs, in the order git wrote them', async () => {
    const file = await bundle('two.bundle', ['main', 'feature']);
    const parsed = await header(file);
    expect(parsed.prerequisites).toEqual([]);
    expect(parsed.refs).toEqual(listHeads(dir, file));
    expect(parsed.refs).toHaveLength(2);
    expect(parsed.refs).toEqual(
      expect.arrayContaining([
        { oid: tip, name: 'refs/heads/main' },
        { oid: feature, name: 'refs/heads/feature' },
      ]),
    );
    // Without a choice, main wins over feature.
    expect(bundleBase(parsed)).toEqual({ oid: tip, ref: 'refs/heads/main' });
    expect(bundleBase(parsed, 'feature')).toEqual({ oid: feature, ref: 'refs/heads/feature' });
  });

  it('reads an incremental bundle (base..tip) as having a prerequisite, which bundleBase refuses', async () => {
    const file = await bundle('incremental.bundle', [`${base}..main`]);
    const parsed = await header(file);
    expect(parsed).toEqual({
      version: 2,
      prerequisites: [base],
      refs: [{ oid: tip, name: 'refs/heads/main' }],
    });
    expect(() => bundleBase(parsed)).toThrow(/bundle the whole history/);
  });

  it('reads a bundle of HEAD only', async () => {
    const parsed = await header(await bundle('head.bundle', ['HEAD']));
    expect(parsed).toEqual({ version: 2, prerequisites: [], refs: [{ oid: tip, name: 'HEAD' }] });
    expect(bundleBase(parsed)).toEqual({ oid: tip, ref: 'HEAD' });
  });

  it('reads a v3 bundle, skipping its @object-format capability', async () => {
    const file = await bundle('v3.bundle', ['main'], ['--version=3']);
    expect((await readFile(file)).toString('latin1')).toContain('\n@object-format=sha1\n');
    expect(await header(file)).toEqual({
      version: 3,
      prerequisites: [],
      refs: [{ oid: tip, name: 'refs/heads/main' }],
    });
  });

  it('reads a bundle of a SHA-256 repository (64-hex object ids)', async () => {
    const sha256 = join(dir, 'sha256');
    execFileSync('git', ['init', '--quiet', '--object-format=sha256', '-b', 'main', sha256], {
      env: GIT_ENV,
    });
    await writeFile(join(sha256, 'a.txt'), 'a\n');
    await git(sha256, 'add', 'a.txt');
    await git(sha256, 'commit', '--quiet', '-m', 'one');
    const head = await git(sha256, 'rev-parse', 'HEAD');
    expect(head).toMatch(/^[0-9a-f]{64}$/);
    const file = join(dir, 'sha256.bundle');
    await git(sha256, 'bundle', 'create', '--quiet', file, 'main');
    expect(await header(file)).toEqual({
      version: 3,
      prerequisites: [],
      refs: [{ oid: head, name: 'refs/heads/main' }],
    });
  });

  it('a bundle cut inside its header is not a bundle', async () => {
    const whole = await readFile(await bundle('cut.bundle', ['main']));
    const headerEnd = whole.indexOf('\n\n');
    expect(headerEnd).toBeGreaterThan(0);
    for (const length of [0, 5, 20, headerEnd - 10, headerEnd + 1]) {
      expect(() => parseBundleHeader(whole.subarray(0, length)), `first ${length} bytes`).toThrow(
        'not a git bundle (no header)',
      );
    }
  });
});

describe('parseBundleHeader on garbage', () => {
  it.each([
    ['empty input', new Uint8Array()],
    ['a zip file', bytes('PK\x03\x04\x14\x00\x00\x00\x08\x00')],
    ['plain text without a blank line', bytes('hello world\nthis is not a bundle\n')],
  ])('%s has no header', (_what, input) => {
    expect(() => parseBundleHeader(input)).toThrow('not a git bundle (no header)');
  });

  it.each([
    ['text with a blank line', 'hello\n\nworld'],
    ['a future bundle version', `# v4 git bundle\n${A} refs/heads/main\n\nPACK`],
    ['a signature with trailing space', `# v2 git bundle \n${A} refs/heads/main\n\nPACK`],
    ['a pack without a header', 'PACK\x00\x00\x00\x02\n\n'],
  ])('%s is not a git bundle', (_what, text) => {
    expect(() => parseBundleHeader(bytes(text))).toThrow(
      /^not a git bundle \(create it with `git bundle create`\)$/,
    );
  });

  it('a header longer than BUNDLE_HEADER_BYTES says so', () => {
    let text = '# v2 git bundle\n';
    while (text.length < BUNDLE_HEADER_BYTES) text += `${A} refs/heads/branch-${text.length}\n`;
    expect(() => parseBundleHeader(bytes(text.slice(0, BUNDLE_HEADER_BYTES)))).toThrow(
      `the bundle header is longer than ${BUNDLE_HEADER_BYTES} bytes (too many refs)`,
    );
  });

  it('a header with no refs is refused', () => {
    expect(() => parseBundleHeader(bytes('# v2 git bundle\n\nPACK'))).toThrow('the bundle names no refs');
    expect(() => parseBundleHeader(bytes(`# v2 git bundle\n-${A} only a prerequisite\n\nPACK`))).toThrow(
      'the bundle names no refs',
    );
  });

  it.each([
    ['a short object id', 'abc123 refs/heads/main'],
    ['an object id of 50 hex digits', `${'a'.repeat(50)} refs/heads/main`],
    ['upper-case hex', `${'A'.repeat(40)} refs/heads/main`],
    ['a ref name with a space', `${A} refs/heads/my branch`],
    ['an object id without a ref', A],
    ['a capability line in a v2 bundle', '@object-format=sha1'],
  ])('%s is an unreadable header line, quoted', (_what, line) => {
    expect(() => parseBundleHeader(bytes(`# v2 git bundle\n${line}\n${A} refs/heads/x\n\nPACK`))).toThrow(
      `unreadable bundle header line: ${line}`,
    );
  });

  it('quotes at most 80 characters of an unreadable line', () => {
    const line = `x${'y'.repeat(500)}`;
    try {
      parseBundleHeader(bytes(`# v2 git bundle\n${line}\n\n`));
      expect.unreachable();
    } catch (err) {
      expect((err as Error).message).toBe(`unreadable bundle header line: ${line.slice(0, 80)}`);
    }
  });

  it('refuses a filtered (partial) v3 bundle', () => {
    const text = `# v3 git bundle\n@object-format=sha1\n@filter=blob:none\n${A} refs/heads/main\n\nPACK`;
    expect(() => parseBundleHeader(bytes(text))).toThrow('partial (filtered) bundles are not supported');
  });

  it('keeps prerequisites with or without their comment', () => {
    const text = `# v2 git bundle\n-${A} Sample base\n-${B}\n${C} refs/heads/main\n\nPACK`;
    expect(parseBundleHeader(bytes(text))).toEqual({
      version: 2,
      prerequisites: [A, B],
      refs: [{ oid: C, name: 'refs/heads/main' }],
    });
  });
});

describe('bundleBase', () => {
  const header = (...refs: [string, string][]): BundleHeader => ({
    version: 2,
    prerequisites: [],
    refs: refs.map(([oid, name]) => ({ oid, name })),
  });

  it('takes the only ref, whatever its name', () => {
    expect(bundleBase(header([A, 'refs/heads/topic']))).toEqual({ oid: A, ref: 'refs/heads/topic' });
    expect(bundleBase(header([A, 'refs/tags/v1']))).toEqual({ oid: A, ref: 'refs/tags/v1' });
  });

  it('prefers HEAD, then main, then master', () => {
    const all = header([A, 'refs/heads/master'], [B, 'refs/heads/main'], [C, 'HEAD'], [D, 'refs/heads/x']);
    expect(bundleBase(all)).toEqual({ oid: C, ref: 'HEAD' });
    expect(bundleBase(header([A, 'refs/heads/master'], [B, 'refs/heads/main']))).toEqual({
      oid: B,
      ref: 'refs/heads/main',
    });
    expect(bundleBase(header([D, 'refs/heads/x'], [A, 'refs/heads/master']))).toEqual({
      oid: A,
      ref: 'refs/heads/master',
    });
  });

  it('takes the ref asked for, by short or full name, branch or tag', () => {
    const h = header([A, 'refs/heads/main'], [B, 'refs/heads/feature/x'], [C, 'refs/tags/v1.2']);
    expect(bundleBase(h, 'main')).toEqual({ oid: A, ref: 'refs/heads/main' });
    expect(bundleBase(h, 'refs/heads/main')).toEqual({ oid: A, ref: 'refs/heads/main' });
    expect(bundleBase(h, 'feature/x')).toEqual({ oid: B, ref: 'refs/heads/feature/x' });
    expect(bundleBase(h, 'v1.2')).toEqual({ oid: C, ref: 'refs/tags/v1.2' });
    expect(bundleBase(h, 'refs/tags/v1.2')).toEqual({ oid: C, ref: 'refs/tags/v1.2' });
  });

  it('a ref asked for wins over HEAD and main', () => {
    const h = header([A, 'HEAD'], [B, 'refs/heads/main'], [C, 'refs/heads/dev']);
    expect(bundleBase(h, 'dev')).toEqual({ oid: C, ref: 'refs/heads/dev' });
  });

  it('refuses a ref the bundle does not have, naming the refs it has', () => {
    const h = header([A, 'refs/heads/main'], [B, 'refs/heads/feature']);
    expect(() => bundleBase(h, 'develop')).toThrow(
      'the bundle has no ref develop (it has refs/heads/main, refs/heads/feature)',
    );
    // Even a single-ref bundle: asking for another ref is an error, not a fallback.
    expect(() => bundleBase(header([A, 'refs/heads/main']), 'master')).toThrow(/no ref master/);
  });

  it('refuses several refs without HEAD, main or master, naming them and source.ref', () => {
    expect(() => bundleBase(header([A, 'refs/heads/one'], [B, 'refs/heads/two']))).toThrow(
      'the bundle has several refs (refs/heads/one, refs/heads/two); name one with source.ref',
    );
  });

  it('refuses a bundle with prerequisites, with or without a ref asked for', () => {
    const h: BundleHeader = { ...header([A, 'refs/heads/main']), prerequisites: [B] };
    for (const wanted of [undefined, 'main']) {
      expect(() => bundleBase(h, wanted)).toThrow(
        'the bundle needs commits it does not contain; bundle the whole history (`git bundle create repo.bundle HEAD`)',
      );
    }
  });
});

/** `git check-ref-format --allow-onelevel`: what git itself accepts. */
function gitAcceptsRef(ref: string): boolean {
  try {
    execFileSync('git', ['check-ref-format', '--allow-onelevel', ref], { env: GIT_ENV, stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('refNameProblem', () => {
  const GOOD = ['main', 'feature/x', 'v1.2', 'refs/heads/main', 'HEAD', 'a@b', 'release-2025.03', 'a./b'];
  const BAD: [string, string][] = [
    ['empty', ''],
    ['a leading dash', '-x'],
    ['two dots', 'a..b'],
    ['a space', 'a b'],
    ['a .lock suffix', 'x.lock'],
    ['a leading slash', '/x'],
    ['a trailing slash', 'x/'],
    ['a lone @', '@'],
    ['a tilde', 'a~1'],
    ['a lone tilde', '~'],
    ['a caret', '^'],
    ['a colon', ':'],
    ['a question mark', 'a?'],
    ['a star', 'a*'],
    ['an open bracket', 'a['],
    ['a backslash', 'a\\b'],
    ['@{', 'a@{1}'],
    ['a double slash', 'a//b'],
    ['a trailing dot', 'a.'],
    ['a component starting with a dot', 'a/.b'],
    ['a leading dot', '.a'],
    ['a tab', 'a\tb'],
    ['a newline', 'a\nb'],
    ['a NUL', 'a\x00b'],
    ['a control character', 'a\x01b'],
    ['DEL', 'a\x7fb'],
  ];

  it.each(GOOD)('accepts %j', (ref) => {
    expect(refNameProblem(ref)).toBeUndefined();
  });

  it.each(BAD)('refuses %s (%j)', (_what, ref) => {
    expect(refNameProblem(ref)).toEqual(expect.any(String));
  });

  it('gives the reason that fits', () => {
    expect(refNameProblem('')).toBe('must be 1-200 characters');
    expect(refNameProblem('x'.repeat(201))).toBe('must be 1-200 characters');
    expect(refNameProblem('x'.repeat(200))).toBeUndefined();
    expect(refNameProblem('-x')).toBe('must not start with -');
    expect(refNameProblem('a b')).toBe('contains a character git does not allow in a ref');
    expect(refNameProblem('a:b')).toBe('contains a character git does not allow in a ref');
    expect(refNameProblem('a..b')).toBe('is not a valid git ref');
    expect(refNameProblem('x.lock')).toBe('is not a valid git ref');
  });

  it('agrees with git check-ref-format on every case above', () => {
    for (const ref of GOOD) expect(gitAcceptsRef(ref), ref).toBe(true);
    // '-x' aside: git reads it as an option; the refusal there is ours.
    for (const [, ref] of BAD)
      if (!ref.includes('\x00')) expect(gitAcceptsRef(ref), JSON.stringify(ref)).toBe(false);
  });

  // Known bug: git forbids `.lock` at the end of every slash-separated component, not only the last one.
  // refNameProblem checks only `ref.endsWith('.lock')`. Flip to `it` once fixed.
  it('refuses a component ending in .lock anywhere in the ref (a.lock/b), as git does', () => {
    expect(gitAcceptsRef('a.lock/b')).toBe(false);
    expect(refNameProblem('a.lock/b')).toEqual(expect.any(String));
  });
});

describe('gitUrlProblem', () => {
  it.each([
    'https://github.com/org/repo.git',
    'https://git.example.com:8443/a/b',
    'HTTPS://HOST/x',
    'https://[::1]/r',
  ])('accepts %s', (url) => {
    expect(gitUrlProblem(url, false)).toBeUndefined();
    expect(gitUrlProblem(url, true)).toBeUndefined();
  });

  it('refuses http:// unless the deployment allows it', () => {
    expect(gitUrlProblem('http://127.0.0.1:8080/repo.git', false)).toBe('must be an https:// URL');
    expect(gitUrlProblem('http://127.0.0.1:8080/repo.git', true)).toBeUndefined();
  });

  it.each([
    ['file://', 'file:///tmp/x'],
    ['ssh://', 'ssh://git@host/repo.git'],
    ['git://', 'git://host/repo.git'],
    ['ext:: (a command)', 'ext::sh -c id'],
    ['fd::', 'fd::17'],
  ])('refuses %s even where http is allowed', (_what, url) => {
    expect(gitUrlProblem(url, false)).toBe('must be an https:// URL');
    expect(gitUrlProblem(url, true)).toBe('must be an http:// or https:// URL');
  });

  it.each([
    ['scp-like ssh', 'git@github.com:org/repo.git'],
    ['a relative path', 'repo.git'],
    ['an absolute path', '/tmp/repo'],
    ['a scheme only', 'https://'],
  ])('refuses %s as not an absolute URL', (_what, url) => {
    expect(gitUrlProblem(url, true)).toBe('must be an absolute https:// URL');
  });

  it.each([
    'https://user:pw@host/x',
    'https://user@host/x',
    'https://:token@host/x',
    'http://user:pw@127.0.0.1/x',
  ])('refuses credentials in %s', (url) => {
    expect(gitUrlProblem(url, true)).toMatch(/^must not carry credentials/);
  });

  it.each([
    ['a space', 'https://host/a b'],
    ['a space in the query', 'https://host/x?q=a b'],
    ['a double quote', 'https://host/a"b'],
    ['a single quote', "https://host/a'b"],
    ['a backslash', 'https://host/a\\b'],
    ['a tab', 'https://host/x\t'],
    ['a newline', 'https://host/x\n'],
  ])('refuses %s', (_what, url) => {
    expect(gitUrlProblem(url, true)).toBe('must not contain spaces, quotes or backslashes');
  });

  it.each([
    ['no slashes', 'https:host/repo.git'],
    ['an empty host', 'https:///repo.git'],
  ])('refuses a URL that only parses after repair (%s): git would get the text as written', (_what, url) => {
    expect(gitUrlProblem(url, false)).toBe('must be an absolute https:// URL');
  });

  it('refuses URLs over 2000 characters', () => {
    expect(gitUrlProblem(`https://host/${'x'.repeat(2000)}`, false)).toBe('must be at most 2000 characters');
  });
});

/** The trailers git itself reads from a message (`git interpret-trailers --parse`). */
function gitTrailers(message: string): string[] {
  return execFileSync('git', ['interpret-trailers', '--parse'], {
    input: message,
    env: GIT_ENV,
    encoding: 'utf8',
  })
    .trim()
    .split('\n')
    .filter(Boolean);
}

describe('workerCommitMessage', () => {
  const trailers = { jobId: 'job-1', workerId: 'worker_2', depth: 1, attempt: 3 };

  it('is the title, a blank line, the summary, a blank line and the trailers in order', () => {
    const message = workerCommitMessage(
      'Fix the parser',
      '  Trimmed every field.\n\nAdded tests.  \n',
      trailers,
    );
    expect(message).toBe(
      [
        'Fix the parser',
        '',
        'Trimmed every field.\n\nAdded tests.',
        '',
        'Fleet-Job: job-1',
        'Fleet-Worker: worker_2',
        'Fleet-Depth: 1',
        'Fleet-Attempt: 3',
        '',
      ].join('\n'),
    );
    expect(gitTrailers(message)).toEqual([
      'Fleet-Job: job-1',
      'Fleet-Worker: worker_2',
      'Fleet-Depth: 1',
      'Fleet-Attempt: 3',
    ]);
  });

  it('leaves the body out when the summary is blank', () => {
    expect(workerCommitMessage('Title', ' \n ', trailers)).toBe(
      'Title\n\nFleet-Job: job-1\nFleet-Worker: worker_2\nFleet-Depth: 1\nFleet-Attempt: 3\n',
    );
  });

  it('cuts the summary to COMMIT_SUMMARY_CHARS', () => {
    const message = workerCommitMessage('T', 'x'.repeat(COMMIT_SUMMARY_CHARS * 3), trailers);
    const body = message.split('\n')[2] as string;
    expect(body).toBe('x'.repeat(COMMIT_SUMMARY_CHARS));
    expect(message.endsWith('Fleet-Attempt: 3\n')).toBe(true);
    expect(gitTrailers(message)).toHaveLength(4);
  });

  it('collapses newlines in the title into one subject line, bounded to 200 characters', () => {
    const message = workerCommitMessage('  Fix\n  the parser\r\n\r\nnow  ', 'Done.', trailers);
    expect(message.split('\n')[0]).toBe('Fix the parser now');
    expect(message.split('\n')[1]).toBe('');
    expect(workerCommitMessage('y'.repeat(500), '', trailers).split('\n')[0]).toBe('y'.repeat(200));
  });

  it('uses the worker id when the title is blank', () => {
    expect(workerCommitMessage(' \n ', 'Done.', trailers).split('\n')[0]).toBe('worker_2');
  });

  it('a summary that imitates trailers does not change the trailers git reads', () => {
    const message = workerCommitMessage('T', 'Fleet-Worker: worker_9\nFleet-Job: other', trailers);
    expect(gitTrailers(message)).toEqual([
      'Fleet-Job: job-1',
      'Fleet-Worker: worker_2',
      'Fleet-Depth: 1',
      'Fleet-Attempt: 3',
    ]);
  });
});

describe('mergeCommitMessage', () => {
  const input = { branch: 'fleet/job-1', jobId: 'job-1', workerId: 'worker_2', title: 'Add\ndocs' };

  it('a clean merge names the worker alone', () => {
    const message = mergeCommitMessage(input);
    expect(message).toBe(
      'Merge worker_2 into fleet/job-1: Add docs\n\nFleet-Job: job-1\nFleet-Merge: worker_2\n',
    );
    expect(gitTrailers(message)).toEqual(['Fleet-Job: job-1', 'Fleet-Merge: worker_2']);
    expect(mergeCommitMessage({ ...input, conflictWith: [] })).toBe(message);
  });

  it('a resolved conflict names every worker involved, the merged one last, and the files', () => {
    const message = mergeCommitMessage({
      ...input,
      conflictWith: ['worker_1'],
      files: ['a.txt', 'src/b.ts'],
    });
    expect(message).toBe(
      [
        'Merge worker_2 into fleet/job-1: Add docs',
        '',
        'Conflicts with worker_1 in a.txt, src/b.ts were resolved by a Claude session.',
        '',
        'Fleet-Job: job-1',
        'Fleet-Merge: worker_1, worker_2',
        '',
      ].join('\n'),
    );
    expect(gitTrailers(message)).toContain('Fleet-Merge: worker_1, worker_2');
  });

  it('bounds the subject to 200 characters', () => {
    expect(mergeCommitMessage({ ...input, title: 'z'.repeat(500) }).split('\n')[0]).toHaveLength(200);
  });
});

describe('mergeConflictPrompt', () => {
  const prompt = mergeConflictPrompt({
    branch: 'fleet/job-1',
    ours: [
      { workerId: 'worker_1', title: 'Fix\nparser', prompt: 'Trim the fields' },
      { workerId: 'worker_3', title: 'Docs', prompt: 'Write docs' },
    ],
    theirs: { workerId: 'worker_2', title: 'Rename', prompt: `Rename parse ${'p'.repeat(5000)}` },
    files: ['src/parser.ts', 'README.md'],
  });
  const lines = prompt.split('\n');

  it('starts with MERGE_MARKER on its own line', () => {
    expect(lines[0]).toBe(MERGE_MARKER);
    expect(prompt.startsWith(`${MERGE_MARKER}\n`)).toBe(true);
  });

  it('lists the conflicting files as `- path` lines after `Conflicting files:`', () => {
    const at = lines.indexOf('Conflicting files:');
    expect(at).toBeGreaterThan(0);
    expect(lines.slice(at + 1, at + 4)).toEqual(['- src/parser.ts', '- README.md', '']);
  });

  it('names the branch and both sides, titles on one line, prompts bounded', () => {
    expect(prompt).toContain('on branch fleet/job-1');
    expect(prompt).toContain('The change of worker_2 is being merged on top of work by worker_1, worker_3.');
    expect(lines).toContain('### worker_1: Fix parser');
    expect(lines).toContain('### worker_3: Docs');
    expect(lines).toContain('### worker_2: Rename');
    expect(prompt.indexOf('## The work already on the branch')).toBeLessThan(
      prompt.indexOf('## The work being merged'),
    );
    expect(prompt.indexOf('### worker_2')).toBeGreaterThan(prompt.indexOf('## The work being merged'));
    expect(prompt).toContain('p'.repeat(4000 - 'Rename parse '.length));
    expect(prompt).not.toContain('p'.repeat(4000));
  });
});
