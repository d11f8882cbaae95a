/**
 * A vitest reporter that prints the security suite's table at the end of a
 * run: every test under test/security whose name starts with `attack:`, with
 * its outcome. A passing attack test is a refused attack; a failing one means
 * the attack got through (or its assertions of "nothing written, lost or
 * leaked" did not hold).
 */
import type { Reporter, TestModule, Vitest } from 'vitest/node';

export type AttackOutcome = 'refused' | 'got_through' | 'skipped' | 'not_run';

export interface AttackRow {
  /** The test file, relative to test/security. */
  file: string;
  /** The test's name without the `attack:` prefix. */
  attack: string;
  outcome: AttackOutcome;
}

const ATTACK_PREFIX = /^attack:\s*/i;
const SECURITY_DIR = /(?:^|[\\/])test[\\/]security[\\/](.+)$/;

const LABELS: Record<AttackOutcome, string> = {
  refused: 'refused ✓',
  got_through: 'GOT THROUGH ✗',
  skipped: 'skipped',
  not_run: 'NOT RUN ✗',
};

/** The file under test/security a module path names, or undefined for any other file. */
export function securityFile(moduleId: string): string | undefined {
  return SECURITY_DIR.exec(moduleId)?.[1]?.replaceAll('\\', '/');
}

/** The attack a test name describes, or undefined when it is not an attack test. */
export function attackName(testName: string): string | undefined {
  return ATTACK_PREFIX.test(testName) ? testName.replace(ATTACK_PREFIX, '').trim() : undefined;
}

/** A vitest test state as the table's outcome. */
export function outcomeOf(state: string): AttackOutcome {
  if (state === 'passed') return 'refused';
  if (state === 'failed') return 'got_through';
  if (state === 'skipped') return 'skipped';
  return 'not_run';
}

/** The table and its count line; empty when the run held no attack test. */
export function renderAttackTable(rows: readonly AttackRow[]): string {
  if (rows.length === 0) return '';
  const sorted = [...rows].sort((a, b) => a.file.localeCompare(b.file));
  const header = ['file', 'attack', 'outcome'] as const;
  const cells = sorted.map((r) => [r.file, r.attack, LABELS[r.outcome]] as const);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] ?? '').length)));
  const line = (c: readonly string[]) => `| ${c.map((v, i) => v.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  const rule = `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`;
  const count = (o: AttackOutcome) => rows.filter((r) => r.outcome === o).length;
  const tally = [`${rows.length} ${rows.length === 1 ? 'attack' : 'attacks'}, ${count('refused')} refused`];
  if (count('got_through')) tally.push(`${count('got_through')} got through`);
  if (count('skipped')) tally.push(`${count('skipped')} skipped`);
  if (count('not_run')) tally.push(`${count('not_run')} not run`);
  return [
    'Security suite: attack -> outcome',
    line(header),
    rule,
    ...cells.map(line),
    tally.join(', '),
    '',
  ].join('\n');
}

/** Rows for every attack test in the run's modules under test/security. */
export function attackRows(modules: readonly TestModule[]): AttackRow[] {
  const rows: AttackRow[] = [];
  for (const module of modules) {
    const file = securityFile(module.moduleId);
    if (!file) continue;
    for (const test of module.children.allTests()) {
      const attack = attackName(test.name);
      if (attack !== undefined) rows.push({ file, attack, outcome: outcomeOf(test.result().state) });
    }
  }
  return rows;
}

export class AttackTableReporter implements Reporter {
  private vitest?: Vitest;

  onInit(vitest: Vitest): void {
    this.vitest = vitest;
  }

  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    const table = renderAttackTable(attackRows(modules));
    if (!table) return;
    if (this.vitest) this.vitest.logger.log(`\n${table}`);
    else process.stdout.write(`\n${table}\n`);
  }
}
