import { describe, expect, it } from 'vitest';
import {
  type AttackRow,
  attackName,
  outcomeOf,
  renderAttackTable,
  securityFile,
} from '../security/attack-table-reporter.ts';

describe('security suite table', () => {
  it('takes only test/security files and only tests named attack:', () => {
    expect(securityFile('/work/main/test/security/api-boundaries.test.ts')).toBe('api-boundaries.test.ts');
    expect(securityFile('C:\\repo\\test\\security\\sub\\x.test.ts')).toBe('sub/x.test.ts');
    expect(securityFile('/work/main/test/e2e/untrusted-worker.test.ts')).toBeUndefined();
    expect(securityFile('/work/main/test/securityish/x.test.ts')).toBeUndefined();
    expect(attackName('attack: forged token')).toBe('forged token');
    expect(attackName('Attack:tampered signature ')).toBe('tampered signature');
    expect(attackName('captures a live token')).toBeUndefined();
    expect(attackName('an attack: in the middle')).toBeUndefined();
  });

  it('reads a passing test as refused and a failing one as got through', () => {
    expect(outcomeOf('passed')).toBe('refused');
    expect(outcomeOf('failed')).toBe('got_through');
    expect(outcomeOf('skipped')).toBe('skipped');
    expect(outcomeOf('pending')).toBe('not_run');
  });

  it('prints one aligned row per attack, sorted by file, and the count line', () => {
    const rows: AttackRow[] = [
      { file: 'uploads.test.ts', attack: 'upload past the cap', outcome: 'refused' },
      { file: 'api-boundaries.test.ts', attack: 'forged token', outcome: 'got_through' },
      { file: 'api-boundaries.test.ts', attack: 'deep JSON', outcome: 'skipped' },
    ];
    const lines = renderAttackTable(rows).trimEnd().split('\n');
    expect(lines[0]).toBe('Security suite: attack -> outcome');
    expect(lines.slice(1, -1)).toEqual([
      '| file                   | attack              | outcome       |',
      '|------------------------|---------------------|---------------|',
      '| api-boundaries.test.ts | forged token        | GOT THROUGH ✗ |',
      '| api-boundaries.test.ts | deep JSON           | skipped       |',
      '| uploads.test.ts        | upload past the cap | refused ✓     |',
    ]);
    expect(lines.at(-1)).toBe('3 attacks, 1 refused, 1 got through, 1 skipped');
  });

  it('says only "N attacks, N refused" ("1 attack" alone) when all were refused, and prints nothing without attacks', () => {
    const rows: AttackRow[] = [{ file: 'a.test.ts', attack: 'x', outcome: 'refused' }];
    expect(renderAttackTable(rows).trimEnd().split('\n').at(-1)).toBe('1 attack, 1 refused');
    expect(renderAttackTable([])).toBe('');
  });

  it('never prints a line the CI summary parser would take for vitest’s own', () => {
    const rows: AttackRow[] = [{ file: 'a.test.ts', attack: 'Tests passed', outcome: 'got_through' }];
    for (const line of renderAttackTable(rows).split('\n')) {
      expect(line).not.toMatch(/^\s+Tests\s/);
      expect(line).not.toMatch(/^\d+ passed, \d+ failed/);
    }
  });
});
