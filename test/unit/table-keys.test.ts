/**
 * The table's keys are spelled in one module (functions/adapters/table-keys.ts):
 * no other adapter writes a `JOB#`-style prefix or a fixed sort key, so where
 * every item lives, and every listing partition, reads from one page.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  ACTIVE_SHARDS,
  activeListing,
  activePartition,
  apiKeyKey,
  isTenantListingKey,
  jobKey,
  jobListing,
  logOffsetKey,
  taskKey,
} from '../../functions/adapters/table-keys.ts';

const ADAPTERS = fileURLToPath(new URL('../../functions/adapters/', import.meta.url));

/** The file without its comments, which may show keys to the reader. */
function code(file: string): string {
  return readFileSync(join(ADAPTERS, file), 'utf8')
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/^\s*\/\/.*$/gm, '');
}

/** A string or template literal that starts with an upper-case prefix and `#`, or is a fixed sort key. */
const KEY_LITERAL = /(['"`])(?:[A-Z][A-Z0-9_]*#|(?:META|KEY|COUNTER|APIKEYS)\1)/g;

describe('table keys', () => {
  it('are spelled only in table-keys.ts among the adapters', () => {
    const files = readdirSync(ADAPTERS).filter((f) => f.endsWith('.ts') && f !== 'table-keys.ts');
    expect(files.length).toBeGreaterThan(5);
    const found = files.flatMap((f) => [...code(f).matchAll(KEY_LITERAL)].map((m) => `${f}: ${m[0]}`));
    expect(found).toEqual([]);
    expect([...code('table-keys.ts').matchAll(KEY_LITERAL)].length).toBeGreaterThan(5);
  });

  it('keep the documented shapes', () => {
    expect(jobKey('j1')).toEqual({ PK: 'JOB#j1', SK: 'META' });
    expect(taskKey('j1', 7)).toEqual({ PK: 'JOB#j1', SK: 'TASK#0007' });
    expect(taskKey('j1', 9002).SK).toBe('TASK#9002');
    expect(apiKeyKey('abc')).toEqual({ PK: 'KEY#abc', SK: 'KEY' });
    expect(logOffsetKey(42)).toBe('000000000042');
    const root = { jobId: 'r1', tenant: 'acme', depth: 0, rootJobId: 'r1', path: '', createdAt: 'T0' };
    expect(jobListing(root)).toEqual({ GSI1PK: 'TENANT#acme', GSI1SK: 'T0#r1' });
    expect(jobListing({ ...root, jobId: 'c1', depth: 2, path: '2_1' })).toEqual({
      GSI1PK: 'TREE#r1',
      GSI1SK: '02#2_1#c1',
    });
    expect(activeListing({ jobId: 'abc00005', taskNo: 3, createdAt: 'T0' })).toEqual({
      GSI1PK: 'ACTIVE#1',
      GSI1SK: 'T0#abc00005#3',
    });
  });

  it('spread active tasks over every shard, from the job id', () => {
    const shards = new Set(['0000', '0001', '0002', '0003', 'ffff', 'zzzz'].map((id) => activePartition(id)));
    expect(shards).toEqual(new Set(Array.from({ length: ACTIVE_SHARDS }, (_, i) => `ACTIVE#${i}`)));
  });

  it("take as a tenant's listing cursor only a job key of that tenant's partition", () => {
    const key = { PK: 'JOB#j1', SK: 'META', GSI1PK: 'TENANT#acme', GSI1SK: 'T0#j1' };
    expect(isTenantListingKey(key, 'acme')).toBe(true);
    expect(isTenantListingKey(key, 'globex')).toBe(false);
    expect(isTenantListingKey({ ...key, PK: 'KEY#j1' }, 'acme')).toBe(false);
    expect(isTenantListingKey({ ...key, SK: 'TASK#0001' }, 'acme')).toBe(false);
    expect(isTenantListingKey({ ...key, extra: 'x' }, 'acme')).toBe(false);
    expect(isTenantListingKey([key], 'acme')).toBe(false);
  });
});
