/**
 * The fault suite (`npm run test:faults`): every scenario of scenarios.ts with
 * the full job mix, on FAULT_SEED (printed on every run; a fresh one when unset).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { FAULT_KINDS, seedFromEnv } from './fault-injector.ts';
import { CHAOS_KINDS, faultTotals, printTable, type Row, runScenario, SCENARIOS } from './scenarios.ts';

const SEED = seedFromEnv();
console.log(`[faults] FAULT_SEED=${SEED} (re-run with FAULT_SEED=${SEED} npm run test:faults)`);
const rows: Row[] = [];

describe(`fault injection (FAULT_SEED=${SEED})`, () => {
  afterAll(() => {
    printTable(rows, SEED);
  });

  const only = process.env.FAULT_SCENARIOS?.split(',').filter(Boolean);
  for (const scenario of SCENARIOS.filter((s) => !only || only.includes(s.name))) {
    it(`${scenario.name}: every job ends final with its results accounted for`, async () => {
      const row = await runScenario(scenario, SEED);
      rows.push(row);
      expect(row.report.violations, row.report.violations.join('\n')).toEqual([]);
      // A scenario whose own trouble never happened proves nothing.
      const kinds = CHAOS_KINDS[scenario.name] ?? [];
      if (kinds.length > 0)
        expect(
          kinds.some((k) => (row.chaos[k] ?? 0) > 0),
          kinds.join('|'),
        ).toBe(true);
    });
  }

  it('injected at least 500 faults across all kinds', () => {
    if (only) return; // a subset of scenarios is a debugging run, not the acceptance run
    const { sdk, other } = faultTotals(rows);
    expect(sdk + other).toBeGreaterThanOrEqual(500);
    for (const kind of FAULT_KINDS) expect(rows.some((r) => r.sdkFaults[kind] > 0)).toBe(true);
  });
});
