/**
 * Pure pieces the API trusts: the planner's output check, task tokens and
 * digests, idempotent job ids, and worker-supplied file paths.
 */
import { randomBytes } from 'node:crypto';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { safeRelativePath } from '../../functions/core/layout.ts';
import { parsePlan, plannerSchema } from '../../functions/core/planner.ts';
import { decideSchema } from '../../functions/core/recursion-policy.ts';
import {
  canonicalHash,
  formatTaskToken,
  jobIdFor,
  parseTaskToken,
  sameDigest,
  sha256Hex,
} from '../../functions/core/tokens.ts';

const subtasks = (n: number) =>
  Array.from({ length: n }, (_, i) => ({ title: `Part ${i + 1}`, prompt: `Write part ${i + 1}` }));

describe('parsePlan', () => {
  it('accepts a plan within max_workers and trims titles and prompts', () => {
    const plan = parsePlan({ subtasks: [{ title: '  Intro ', prompt: ' Write the intro\n' }] }, 3);
    expect(plan).toEqual({ ok: true, subtasks: [{ title: 'Intro', prompt: 'Write the intro' }] });
  });

  it('accepts exactly max_workers subtasks', () => {
    const plan = parsePlan({ subtasks: subtasks(5) }, 5);
    expect(plan.ok && plan.subtasks).toHaveLength(5);
  });

  it('refuses more subtasks than max_workers', () => {
    const plan = parsePlan({ subtasks: subtasks(6) }, 5);
    expect(plan.ok).toBe(false);
    expect(!plan.ok && plan.reason).toMatch(/^planner returned an unusable plan: subtasks/);
  });

  it('refuses an empty plan', () => {
    const plan = parsePlan({ subtasks: [] }, 5);
    expect(plan.ok).toBe(false);
    expect(!plan.ok && plan.reason).toMatch(/subtasks/);
  });

  it('refuses a subtask without a prompt, naming where', () => {
    const plan = parsePlan({ subtasks: [{ title: 'A', prompt: 'a' }, { title: 'B' }] }, 5);
    expect(plan.ok).toBe(false);
    expect(!plan.ok && plan.reason).toContain('subtasks.1.prompt');
  });

  it('refuses a blank prompt', () => {
    expect(parsePlan({ subtasks: [{ title: 'A', prompt: '   ' }] }, 5).ok).toBe(false);
  });

  it.each([
    ['undefined', undefined],
    ['null', null],
    ['a string', 'do it all at once'],
    ['an array', subtasks(2)],
    ['an object without subtasks', { tasks: subtasks(2) }],
  ])('refuses %s', (_label, output) => {
    const plan = parsePlan(output, 5);
    expect(plan.ok).toBe(false);
    expect(!plan.ok && plan.reason).toMatch(/^planner returned an unusable plan/);
  });
});

describe('plannerSchema', () => {
  it('bounds the subtask count by 1 and max_workers and forbids extra fields', () => {
    const schema = plannerSchema(4) as {
      required: string[];
      additionalProperties: boolean;
      properties: {
        subtasks: {
          minItems: number;
          maxItems: number;
          items: {
            required: string[];
            additionalProperties: boolean;
            properties: Record<string, { minLength: number; maxLength: number }>;
          };
        };
      };
    };
    expect(schema.required).toEqual(['subtasks']);
    expect(schema.additionalProperties).toBe(false);
    expect(schema.properties.subtasks.minItems).toBe(1);
    expect(schema.properties.subtasks.maxItems).toBe(4);
    const items = schema.properties.subtasks.items;
    expect(items.required.sort()).toEqual(['prompt', 'title']);
    expect(items.additionalProperties).toBe(false);
    expect(items.properties.title?.minLength).toBe(1);
    expect(items.properties.prompt?.minLength).toBe(1);
  });

  it('agrees with parsePlan on the longest prompt and title', () => {
    const schema = plannerSchema(1) as {
      properties: { subtasks: { items: { properties: Record<string, { maxLength: number }> } } };
    };
    const { title, prompt } = schema.properties.subtasks.items.properties;
    const atBound = { title: 't'.repeat(title?.maxLength ?? 0), prompt: 'p'.repeat(prompt?.maxLength ?? 0) };
    expect(parsePlan({ subtasks: [atBound] }, 1).ok).toBe(true);
    expect(parsePlan({ subtasks: [{ ...atBound, prompt: `${atBound.prompt}p` }] }, 1).ok).toBe(false);
    expect(parsePlan({ subtasks: [{ ...atBound, title: `${atBound.title}t` }] }, 1).ok).toBe(false);
  });

  it('is valid JSON for --json-schema', () => {
    expect(JSON.parse(JSON.stringify(plannerSchema(7)))).toEqual(plannerSchema(7));
  });

  // What the claude CLI does with --json-schema: new Ajv({ allErrors: true }), validateSchema, then compile.
  const cliValidator = (schema: Record<string, unknown>) => {
    const ajv = new Ajv({ allErrors: true });
    expect(ajv.validateSchema(schema), ajv.errorsText(ajv.errors)).toBe(true);
    return ajv.compile(schema);
  };

  it('is a plain JSON Schema object the CLI accepts, for plans and for decide runs', () => {
    expect(plannerSchema(3)).not.toHaveProperty('$schema');
    expect(cliValidator(plannerSchema(3))).toBeTypeOf('function');
    expect(cliValidator(decideSchema(3))).toBeTypeOf('function');
  });

  const title = 't'.repeat(200);
  const prompt = 'p'.repeat(20_000);
  it.each([
    ['one subtask', { subtasks: [{ title: 'A', prompt: 'a' }] }],
    ['max_workers subtasks', { subtasks: subtasks(3) }],
    ['the longest title and prompt', { subtasks: [{ title, prompt }] }],
    ['surrounding white space', { subtasks: [{ title: ' A ', prompt: '\ta\n' }] }],
    ['no subtask', { subtasks: [] }],
    ['more than max_workers', { subtasks: subtasks(4) }],
    ['a title too long', { subtasks: [{ title: `${title}t`, prompt: 'a' }] }],
    ['a prompt too long', { subtasks: [{ title: 'A', prompt: `${prompt}p` }] }],
    ['a prompt too long before trimming', { subtasks: [{ title: 'A', prompt: ` ${prompt}` }] }],
    ['an empty title', { subtasks: [{ title: '', prompt: 'a' }] }],
    ['a blank prompt', { subtasks: [{ title: 'A', prompt: ' \n\t' }] }],
    ['a missing prompt', { subtasks: [{ title: 'A' }] }],
    ['a number for a title', { subtasks: [{ title: 1, prompt: 'a' }] }],
    ['an extra field in a subtask', { subtasks: [{ title: 'A', prompt: 'a', files: [] }] }],
    ['an extra field in the plan', { subtasks: subtasks(1), note: 'x' }],
    ['subtasks that are not a list', { subtasks: { title: 'A', prompt: 'a' } }],
    ['a list', subtasks(2)],
    ['a string', 'do it all at once'],
    ['null', null],
  ])('and parsePlan agree on %s', (_label, output) => {
    const validate = cliValidator(plannerSchema(3));
    expect(validate(output)).toBe(parsePlan(output, 3).ok);
  });
});

describe('task tokens', () => {
  const scope = { jobId: '0123456789abcdef0123', taskNo: 3, attempt: 2 };

  it('round-trips the scope through format and parse', () => {
    const token = formatTaskToken(scope, randomBytes(32));
    expect(token).toMatch(/^tt1\.0123456789abcdef0123\.3\.2\.[A-Za-z0-9_-]{43}$/);
    expect(parseTaskToken(token)).toEqual(scope);
  });

  it('gives different tokens for different secrets', () => {
    expect(formatTaskToken(scope, randomBytes(32))).not.toBe(formatTaskToken(scope, randomBytes(32)));
  });

  const secret = randomBytes(32).toString('base64url');
  it.each([
    ['empty', ''],
    ['another version', `tt2.job.1.1.${secret}`],
    ['a missing attempt', `tt1.job.1.${secret}`],
    ['an extra segment', `tt1.job.1.1.x.${secret}`],
    ['a non-numeric task number', `tt1.job.one.1.${secret}`],
    ['a negative attempt', `tt1.job.1.-1.${secret}`],
    ['a short secret', 'tt1.job.1.1.tooshort'],
    ['a secret outside base64url', `tt1.job.1.1.${secret.slice(0, 40)}+/=`],
    ['a dotted job id', `tt1.job.x.1.1.${secret}`],
    ['surrounding space', ` tt1.job.1.1.${secret}`],
    ['an API key', `cok_${secret}`],
  ])('rejects %s', (_label, token) => {
    expect(parseTaskToken(token)).toBeUndefined();
  });
});

describe('sameDigest', () => {
  const a = sha256Hex('token-a');
  const b = sha256Hex('token-b');

  it('is true for the same digest and false for another', () => {
    expect(sameDigest(a, sha256Hex('token-a'))).toBe(true);
    expect(sameDigest(a, b)).toBe(false);
  });

  it('is false for a different length, empty input or non-hex text', () => {
    expect(sameDigest(a, a.slice(0, 62))).toBe(false);
    expect(sameDigest('', '')).toBe(false);
    expect(sameDigest(a, '')).toBe(false);
    expect(sameDigest('zz', 'zz')).toBe(false);
  });

  it('does not call different strings equal because hex decoding dropped their tails', () => {
    // Buffer.from(x, 'hex') stops at the first non-hex character and drops an odd last digit.
    expect(sameDigest(a, `${a}zz`)).toBe(false);
    expect(sameDigest('abc', 'abd')).toBe(false);
  });
});

describe('jobIdFor', () => {
  it('derives the same 20-hex id for the same tenant and Idempotency-Key', () => {
    const first = jobIdFor('acme', 'key-1', randomBytes(16));
    expect(first).toMatch(/^[0-9a-f]{20}$/);
    expect(jobIdFor('acme', 'key-1', randomBytes(16))).toBe(first);
  });

  it('derives different ids for another tenant or another key', () => {
    const id = jobIdFor('acme', 'key-1', randomBytes(16));
    expect(jobIdFor('globex', 'key-1', randomBytes(16))).not.toBe(id);
    expect(jobIdFor('acme', 'key-2', randomBytes(16))).not.toBe(id);
  });

  it('uses the random bytes without a key', () => {
    const random = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
    expect(jobIdFor('acme', undefined, random)).toBe('00112233445566778899');
    expect(jobIdFor('acme', undefined, randomBytes(16))).not.toBe(
      jobIdFor('acme', undefined, randomBytes(16)),
    );
  });
});

describe('canonicalHash', () => {
  it('ignores key order at every depth', () => {
    expect(canonicalHash({ a: 1, b: { c: [1, { d: 2, e: 3 }], f: null } })).toBe(
      canonicalHash({ b: { f: null, c: [1, { e: 3, d: 2 }] }, a: 1 }),
    );
  });

  it('sees changed values and array order', () => {
    const base = canonicalHash({ request: 'x', tasks: ['a', 'b'] });
    expect(canonicalHash({ request: 'y', tasks: ['a', 'b'] })).not.toBe(base);
    expect(canonicalHash({ request: 'x', tasks: ['b', 'a'] })).not.toBe(base);
  });

  it('is a hex SHA-256', () => {
    expect(canonicalHash({ a: 1 })).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('safeRelativePath', () => {
  it.each([
    ['a/b.txt', 'a/b.txt'],
    ['index.html', 'index.html'],
    ['src\\app\\main.ts', 'src/app/main.ts'],
    ['dir/.hidden', 'dir/.hidden'],
    ['a/..b/c', 'a/..b/c'],
  ])('accepts %s as %s', (input, expected) => {
    expect(safeRelativePath(input)).toBe(expected);
  });

  it.each([
    ['a parent reference', '../x'],
    ['a parent reference inside', 'a/../b'],
    ['a backslash parent reference', 'a\\..\\..\\b'],
    ['an absolute path', '/abs'],
    ['a backslash absolute path', '\\abs'],
    ['a UNC path', '\\\\server\\share'],
    ['an empty segment', 'a//b'],
    ['a trailing slash', 'a/'],
    ['a dot segment', './a'],
    ['an empty path', ''],
    ['a NUL byte', 'a\0b'],
    ['a path over 512 characters', 'a'.repeat(513)],
  ])('refuses %s', (_label, input) => {
    expect(safeRelativePath(input)).toBeUndefined();
  });
});
