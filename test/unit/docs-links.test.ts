/**
 * The repository carries its own design documents: no file may point at
 * documents outside it, every relative link in the README and docs/ must
 * reach a file (and a heading, when it names one), a citation of a docs page
 * section in code must name a heading that exists, and the `claude` CLI
 * version docs/claude-cli.md describes is the one every pin uses.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Names of documents that live outside the repository, spelled so this file does not contain them. */
const OUTSIDE_NAMES = [
  ...['ARCHITECTURE', 'CLAUDE_CLI', 'STYLE'].map((name) => `${name}.md`),
  ['', 'work', 'shared'].join('/'),
];

/** Tracked files plus new ones git does not ignore, relative to the repository root. */
function repositoryFiles(): string[] {
  const list = (args: string[]) =>
    execFileSync('git', ['ls-files', '-z', ...args], { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 << 20 })
      .split('\0')
      .filter(Boolean);
  return [...new Set([...list([]), ...list(['--others', '--exclude-standard'])])]
    .filter((f) => existsSync(join(ROOT, f)) && statSync(join(ROOT, f)).isFile())
    .sort();
}

function read(file: string): string {
  return readFileSync(join(ROOT, file), 'utf8');
}

function isText(file: string): boolean {
  return !readFileSync(join(ROOT, file)).subarray(0, 8000).includes(0);
}

/** Markdown without fenced code blocks (their lines blanked, so line numbers stay). */
function withoutFences(markdown: string): string {
  let fence: string | undefined;
  return markdown
    .split('\n')
    .map((line) => {
      const open = /^\s*(`{3,}|~{3,})/.exec(line)?.[1];
      if (fence === undefined && open) {
        fence = open[0] as string;
        return '';
      }
      if (fence !== undefined) {
        if (line.trim().startsWith(fence.repeat(3))) fence = undefined;
        return '';
      }
      return line;
    })
    .join('\n');
}

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
function anchorsOf(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const anchors = new Set<string>();
  for (const m of withoutFences(markdown).matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const text = (m[1] as string).replace(/\[([^\]]*)\]\([^)]*\)/g, '$1');
    const base = text
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  return anchors;
}

/** Heading texts as written, without inline-code backticks, lower case. */
function headingsOf(markdown: string): Set<string> {
  return new Set(
    [...withoutFences(markdown).matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)].map((m) =>
      (m[1] as string).replaceAll('`', '').toLowerCase(),
    ),
  );
}

/** Every `[text](target)` and `![alt](target)` outside code, with its line. */
function linksOf(markdown: string): { target: string; line: number }[] {
  const links: { target: string; line: number }[] = [];
  withoutFences(markdown)
    .split('\n')
    .forEach((raw, i) => {
      const line = raw.replace(/`[^`]*`/g, '');
      for (const m of line.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
        links.push({ target: m[1] as string, line: i + 1 });
      }
    });
  return links;
}

const MARKDOWN = [
  'README.md',
  ...readdirSync(join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
];

describe('the repository cites only itself', () => {
  it('has no file that mentions a document outside the repository', () => {
    const offenders = repositoryFiles()
      .filter(isText)
      .flatMap((file) =>
        read(file)
          .split('\n')
          .flatMap((line, i) =>
            OUTSIDE_NAMES.filter((name) => line.includes(name)).map((name) => `${file}:${i + 1}: ${name}`),
          ),
      );
    expect(offenders).toEqual([]);
  });

  it('has the design documents the code cites', () => {
    for (const doc of ['docs/architecture.md', 'docs/claude-cli.md'])
      expect(existsSync(join(ROOT, doc))).toBe(true);
  });

  it('links, from the README and docs/, only to files and headings that exist', () => {
    const broken: string[] = [];
    for (const file of MARKDOWN) {
      for (const { target, line } of linksOf(read(file))) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto: …
        const [pathPart = '', fragment] = target.split('#', 2);
        const path = decodeURIComponent(pathPart.split('?')[0] as string);
        const resolved = path === '' ? file : normalize(join(dirname(file), path));
        const where = `${file}:${line}: ${target}`;
        if (resolved.startsWith('..') || !existsSync(join(ROOT, resolved))) {
          broken.push(`${where} (no such file)`);
          continue;
        }
        if (fragment && resolved.endsWith('.md') && !anchorsOf(read(resolved)).has(fragment.toLowerCase())) {
          broken.push(`${where} (no such heading in ${resolved})`);
        }
      }
    }
    expect(broken).toEqual([]);
  });

  it('cites docs sections in code and docs only by headings that exist', () => {
    const broken: string[] = [];
    for (const file of repositoryFiles().filter(isText)) {
      const text = read(file);
      for (const m of text.matchAll(/\bdocs\/([\w.-]+\.md)[,:]?\s*\(?\s*"([^"\n]{1,80})"/g)) {
        const doc = `docs/${m[1]}`;
        const section = (m[2] as string).toLowerCase();
        const line = text.slice(0, m.index).split('\n').length;
        if (!existsSync(join(ROOT, doc))) broken.push(`${file}:${line}: ${doc} does not exist`);
        else if (!headingsOf(read(doc)).has(section)) broken.push(`${file}:${line}: ${doc} has no "${m[2]}"`);
      }
    }
    expect(broken).toEqual([]);
  });
});

describe('the claude CLI version pin', () => {
  it('is the same in the worker image, the devDependency, the test double and docs/claude-cli.md', () => {
    const image = /ARG CLAUDE_CODE_VERSION=(\S+)/.exec(read('container/Dockerfile'))?.[1];
    const pkg = JSON.parse(read('package.json')) as { devDependencies: Record<string, string> };
    const dev = pkg.devDependencies['@anthropic-ai/claude-code'];
    const double = /const VERSION = '([^']+)'/.exec(read('test/support/claude-double.mjs'))?.[1];
    expect(image).toMatch(/^\d+\.\d+\.\d+$/);
    expect({ dev, double }).toEqual({ dev: image, double: image });
    expect(read('docs/claude-cli.md')).toContain(`CLAUDE_CODE_VERSION=${image}`);
  });
});
