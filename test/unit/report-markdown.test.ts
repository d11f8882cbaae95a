/**
 * Worker-written text in the markdown reports, rendered the way a reader's
 * viewer renders it (markdown-it with raw HTML and URL autolinks on, the
 * most permissive setting): titles, errors, prompts and file names stay text.
 * They never become a heading, a link, an image or HTML.
 */
import MarkdownIt from 'markdown-it';
import { describe, expect, it } from 'vitest';
import { finalReportMarkdown } from '../../functions/core/final-report.ts';
import { levelReportMarkdown } from '../../functions/core/level-report.ts';
import { linkTarget, markdownText } from '../../functions/core/report-markdown.ts';
import { buildTreeResult, type ResultContext } from '../../functions/core/result-format.ts';
import { makeAttempt, makeJob, makeResult, makeTask } from '../support/records.ts';

const md = new MarkdownIt({ html: true, linkify: true });
md.linkify.set({ fuzzyLink: false, fuzzyEmail: false });

const ctx: ResultContext = { bucket: 'artifacts', now: '2025-03-01T10:01:05.000Z' };

const HOSTILE = [
  '# Owned',
  '[click me](https://evil.example/steal)',
  '![pixel](https://evil.example/p.png)',
  '<img src=x onerror=alert(1)>',
  '<script>alert(1)</script>',
  '<https://evil.example>',
  'see https://evil.example/x now',
  '[ref]: https://evil.example',
  '`code` and *stars* and _under_ and ~~gone~~',
  'back\\slash at the end\\',
  '&lt;b&gt; entity &amp; more',
  'a [x] b ](javascript:alert(1)) c',
];

function escapeHtml(text: string): string {
  return text
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;');
}

/** Tags in rendered HTML, e.g. `a`, `img`, `h2`. */
function tags(html: string): string[] {
  return [...html.matchAll(/<([a-z][a-z0-9]*)\b/gi)].map((m) => (m[1] as string).toLowerCase());
}

describe('markdownText', () => {
  it.each(HOSTILE)('renders %j exactly as written, as plain text', (text) => {
    const html = md.renderInline(markdownText(text));
    expect(html).toBe(escapeHtml(text));
    expect(tags(html)).toEqual([]);
  });

  it('puts text on one line, so it cannot start a block of its own', () => {
    const html = md.render(`- ${markdownText('title\n# Heading\n\n<div>x</div>')}`);
    expect(tags(html)).toEqual(['ul', 'li']);
    expect(html).toContain('title # Heading &lt;div&gt;x&lt;/div&gt;');
  });

  it('leaves underscores inside words as written', () => {
    expect(markdownText('worker_2_1 of error_max_turns')).toBe('worker_2_1 of error_max_turns');
    expect(markdownText('_emphasis_')).toBe('\\_emphasis\\_');
  });

  it('breaks bare www autolinks', () => {
    expect(markdownText('visit www.evil.example')).toBe('visit www\\.evil.example');
  });
});

describe('linkTarget', () => {
  it.each([
    'https://bucket.example/jobs/a b/(x).txt?X-Amz-Signature=abc',
    'https://h.example/k/]) [evil](https://evil.example',
    'https://h.example/k/naïve "quoted" <tag> `tick`',
    'https://h.example/k/already%20encoded%2Fslash',
  ])('keeps %j a single link to the same address', (url) => {
    const html = md.renderInline(`[text](${linkTarget(url)})`);
    expect(tags(html)).toEqual(['a']);
    const href = /href="([^"]*)"/.exec(html)?.[1] ?? '';
    expect(decodeURIComponent(href.replaceAll('&amp;', '&'))).toBe(decodeURIComponent(url));
    expect(html).toMatch(/>text<\/a>$/);
  });

  it('changes nothing in a URL that is already plain', () => {
    const url = 'https://s3.example/b/jobs/j/depth_0/worker_1/notes.md?X-Amz-Expires=900&X-Amz-Signature=0a';
    expect(linkTarget(url)).toBe(url);
  });
});

describe('reports with hostile worker text', () => {
  const title = '[x](https://evil.example) <img src=x onerror=alert(1)> # not a heading';
  const job = makeJob({
    jobId: 'job-m',
    request: '# Request heading\n<script>alert(1)</script>\n[a](https://evil.example)',
  });
  const mine = { jobId: 'job-m', rootJobId: 'job-m' };
  const tasks = [
    makeTask(1, {
      ...mine,
      title,
      prompt: '1. first\n---\n> quoted\n![i](https://evil.example/i.png)',
      result: makeResult({ filesCreated: ['](https://evil.example) [x', '<b>bold</b>.md'] }),
      attempts: [makeAttempt(1)],
    }),
    makeTask(2, {
      ...mine,
      title: 'Plain',
      state: 'failed',
      result: makeResult({ error: 'failed: [click](https://evil.example) <iframe src=x>' }),
      attempts: [makeAttempt(1, { state: 'failed', error: '<img src=x> ## h' })],
    }),
  ];

  it('the final report renders no link, image or HTML from a worker, and only its own headings', () => {
    const html = md.render(finalReportMarkdown(buildTreeResult([{ job, tasks }], ctx)));
    const found = tags(html);
    expect(found).not.toContain('img');
    expect(found).not.toContain('script');
    expect(found).not.toContain('iframe');
    expect(found).not.toContain('b');
    // The only links are the report's own, relative and inside the job's folder: a worker's file
    // names are percent-encoded into a link to the file itself and can open no other.
    const hrefs = [...html.matchAll(/<a href="([^"]*)"/g)].map((m) => m[1]);
    expect(hrefs).toEqual([
      'depth_0/worker_1/%5D%28https%3A//evil.example%29%20%5Bx',
      'depth_0/worker_1/%3Cb%3Ebold%3C/b%3E.md',
      'depth_0/LEVEL_0_REPORT.md',
      'result.json',
    ]);
    const headings = [...html.matchAll(/<h(\d)>(.*?)<\/h\1>/g)].map((m) => m[2]);
    expect(headings).toEqual([
      'Final result: job <code>job-m</code>',
      'Request',
      'Totals',
      'Planning',
      'Tree',
      'Workers',
      'Files',
      'Failures',
      'Performance',
      'Critical path',
      'Attempts over time',
      'Resources by worker',
      'Cost by depth',
      'Outputs',
      `worker_1: ${escapeHtml(title)}`,
      'worker_2: Plain',
      'Reports',
    ]);
    expect(html).toContain(escapeHtml(title));
  });

  it('the level report renders the title, prompt and request as text', () => {
    const html = md.render(levelReportMarkdown(buildTreeResult([{ job, tasks }], ctx), job.depth));
    const found = tags(html);
    for (const tag of ['img', 'script', 'iframe', 'hr', 'ol']) expect(found).not.toContain(tag);
    // Links only to the job's own objects, relative to depth_0/.
    for (const [, href] of html.matchAll(/<a href="([^"]*)"/g))
      expect(href).toMatch(/^(worker_1\/|\.\.\/logs\/depth_0_worker_[12]\.log$)/);
    const headings = [...html.matchAll(/<h(\d)>(.*?)<\/h\1>/g)].map((m) => m[2]);
    expect(headings).toEqual([
      'Level 0 report: job <code>job-m</code>',
      'Request',
      'Workers',
      `worker_1: ${escapeHtml(title)}`,
      'worker_2: Plain',
    ]);
    // One blockquote per quoted text (request, two prompts, a failure); `> quoted` does not nest another.
    expect(found.filter((t) => t === 'blockquote')).toHaveLength(4);
    expect(html).toContain('1. first');
    expect(html).toContain('&gt; quoted');
  });
});
