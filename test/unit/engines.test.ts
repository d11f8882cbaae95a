/**
 * `npm ci` on Node 20 warns EBADENGINE for any package of the tree that
 * declares a Node range without 20 in it. The project supports Node 20 (the
 * README says so), so no package it installs may declare otherwise.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { satisfies } from 'semver';
import { describe, expect, it } from 'vitest';

const lock = JSON.parse(
  readFileSync(fileURLToPath(new URL('../../package-lock.json', import.meta.url)), 'utf8'),
) as {
  packages: Record<string, { engines?: { node?: string } | string[]; optional?: boolean; os?: string[] }>;
};

describe('the dependency tree on Node 20', () => {
  it('holds no package whose engines field leaves Node 20 out (npm ci would warn EBADENGINE)', () => {
    const refusing = Object.entries(lock.packages)
      .filter(([path]) => path !== '')
      .flatMap(([path, pkg]) => {
        const range = !Array.isArray(pkg.engines) ? pkg.engines?.node : undefined;
        return range && !satisfies('20.19.0', range, { includePrerelease: true })
          ? [`${path} (${range})`]
          : [];
      });
    expect(refusing).toEqual([]);
  });
});
