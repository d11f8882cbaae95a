import { describe, expect, it } from 'vitest';
import { jsonDepthWithin, workerResultSchema } from '../../functions/core/api-schemas.ts';

const nested = (depth: number): unknown => {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = i % 2 ? [v] : { a: v };
  return v;
};

describe('depth bound of the values a worker result carries', () => {
  it('counts arrays and objects, not scalars', () => {
    expect(jsonDepthWithin(1, 0)).toBe(true);
    expect(jsonDepthWithin(null, 0)).toBe(true);
    expect(jsonDepthWithin({}, 0)).toBe(false);
    expect(jsonDepthWithin(nested(64), 64)).toBe(true);
    expect(jsonDepthWithin(nested(65), 64)).toBe(false);
    expect(jsonDepthWithin({ a: 1, b: [nested(10)] }, 12)).toBe(true);
    expect(jsonDepthWithin({ a: 1, b: [nested(10)] }, 11)).toBe(false);
  });

  it('answers for any depth without overflowing the stack', () => {
    const deep = JSON.parse(`${'['.repeat(200_000)}${']'.repeat(200_000)}`);
    expect(jsonDepthWithin(deep, 64)).toBe(false);
  });

  it('refuses a structured output or git value nested deeper than 64, naming the field', () => {
    const schema = workerResultSchema({ maxOutputChars: 1000, maxFilesPerWorker: 10 } as never);
    const base = { attempt: 1, status: 'succeeded', output: 'x' };
    expect(schema.safeParse({ ...base, structured_output: nested(64) }).success).toBe(true);
    const deep = schema.safeParse({ ...base, structured_output: nested(65) });
    expect(deep.success).toBe(false);
    expect(deep.error?.issues[0]?.path).toEqual(['structured_output']);
    expect(deep.error?.issues[0]?.message).toMatch(/deeper than 64/);
    const git = schema.safeParse({ ...base, git: { files: nested(70) } });
    expect(git.error?.issues[0]?.path).toEqual(['git', 'files']);
  });
});
