/**
 * The fault suite's fast variant, part of `npm test`: every kind of trouble
 * at once (scenarios.ts `allKinds`) on a small job mix, for two fixed seeds.
 * The full suite (`npm run test:faults`, fresh seeds) goes wider and longer.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { FAULT_KINDS } from './fault-injector.ts';
import { allKinds, CHAOS_KINDS, faultTotals, printTable, type Row, runScenario } from './scenarios.ts';

const SEEDS = [20261201, 20261202];

describe('fault injection, fast variant (two fixed seeds, every kind of fault)', () => {
  const rows: Row[] = [];
  const bySeed = new Map<number, Row>();
  afterAll(() => {
    for (const [seed, row] of bySeed) printTable([row], seed);
  });

  for (const seed of SEEDS) {
    it(`seed ${seed}: every job ends final with its results accounted for`, {
      timeout: 200_000,
    }, async () => {
      const row = await runScenario(allKinds(), seed, { small: true, deadlineMs: 100_000 });
      rows.push(row);
      bySeed.set(seed, row);
      expect(row.report.violations, row.report.violations.join('\n')).toEqual([]);
    });
  }

  it('injected every kind of fault', () => {
    expect(rows).toHaveLength(SEEDS.length);
    for (const kind of FAULT_KINDS)
      expect(
        rows.some((r) => r.sdkFaults[kind] > 0),
        kind,
      ).toBe(true);
    for (const kinds of Object.values(CHAOS_KINDS))
      expect(
        rows.some((r) => kinds.some((k) => (r.chaos[k] ?? 0) > 0)),
        kinds.join('|'),
      ).toBe(true);
    expect(
      rows.some((r) => r.report.failedRuns > 0),
      'failed claude runs',
    ).toBe(true);
    const { sdk, other } = faultTotals(rows);
    expect(sdk + other).toBeGreaterThan(100);
  });
});
