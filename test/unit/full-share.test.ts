/**
 * A root job's attempt may reserve a full share without reading its job
 * first, on a condition its own write checks: the shortcut must give exactly
 * what the share computed from a read would have given, whenever it applies.
 */
import { describe, expect, it } from 'vitest';
import type { RootBudget, TaskKind } from '../../functions/core/model.ts';
import { attemptBudget, spendShares } from '../../functions/core/recursion-policy.ts';
import { fullShareWithoutRead } from '../../functions/services/attempt-budget.ts';
import type { Deps } from '../../functions/services/deps.ts';
import { makeJob, makeTask } from '../support/records.ts';

/** Only what the shortcut reads of the settings. */
const depsWith = (maxTaskBudgetUsd: number, gateway = false) =>
  ({ settings: { limits: { maxTaskBudgetUsd }, gateway: { enabled: gateway } } }) as unknown as Deps;

const rootTask = (kind: TaskKind = 'work', maxSpendUsd = 10, maxWorkers = 4) =>
  makeTask(1, { jobId: 'root', rootJobId: 'root', kind, spendLimits: { maxSpendUsd, maxWorkers } });

/** The reservation's own condition (root-budget.ts spendReservation with keepUsd), as a predicate. */
const fits = (committedUsd: number, share: { usd: number; maxSpendUsd: number; keepUsd: number }) =>
  committedUsd <= share.maxSpendUsd - share.usd - share.keepUsd + 1e-9;

/** A small deterministic generator, so a failure names the case that broke. */
function* cases(n: number) {
  let seed = 20261202;
  const next = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  for (let i = 0; i < n; i++) {
    const maxWorkers = 1 + Math.floor(next() * 8);
    const maxSpendUsd = Math.round(next() * 2000) / 100;
    const maxTaskBudgetUsd = Math.round(next() * 500) / 100 + 0.001 * Math.floor(next() * 10);
    const running = Math.floor(next() * (maxWorkers + 1));
    const totalTasks = Math.floor(next() * 12);
    const finished = Math.floor(next() * (totalTasks + 1));
    const committedUsd = Math.round(next() * maxSpendUsd * 100) / 100;
    yield { maxWorkers, maxSpendUsd, maxTaskBudgetUsd, running, totalTasks, finished, committedUsd };
  }
}

describe('fullShareWithoutRead', () => {
  it('asks for a full share that leaves a full share uncommitted for each other slot of the job', () => {
    expect(fullShareWithoutRead(depsWith(2), rootTask('work', 10, 4))).toEqual({
      usd: 2,
      maxSpendUsd: 10,
      keepUsd: 6,
    });
  });

  it('gives what the share computed from a read gives, in every case where its condition holds', () => {
    let applied = 0;
    for (const c of cases(20_000)) {
      const share = fullShareWithoutRead(
        depsWith(c.maxTaskBudgetUsd),
        rootTask('work', c.maxSpendUsd, c.maxWorkers),
      );
      if (!share || !fits(c.committedUsd, share)) continue;
      applied += 1;
      const budget: RootBudget = {
        maxTasks: 100,
        maxSpendUsd: c.maxSpendUsd,
        maxDepth: 0,
        reservedTasks: 0,
        committedUsd: c.committedUsd,
        spentUsd: 0,
      };
      const job = makeJob({
        config: { ...makeJob().config, maxWorkers: c.maxWorkers },
        runningTasks: c.running,
        totalTasks: c.totalTasks,
        finishedTasks: Array.from({ length: c.finished }, (_, i) => i + 1),
      });
      expect(attemptBudget(budget, c.maxTaskBudgetUsd, spendShares(job)), JSON.stringify(c)).toBe(share.usd);
    }
    // The cases reach the shortcut often enough to mean something.
    expect(applied).toBeGreaterThan(1_000);
  });

  it('is not taken when the read is needed: a child job, a step without AI, the gateway on, no limits copied', () => {
    expect(fullShareWithoutRead(depsWith(2), { ...rootTask(), jobId: 'child' })).toBeUndefined();
    expect(fullShareWithoutRead(depsWith(2), rootTask('source'))).toBeUndefined();
    expect(fullShareWithoutRead(depsWith(2), rootTask('push'))).toBeUndefined();
    expect(fullShareWithoutRead(depsWith(2, true), rootTask())).toBeUndefined();
    expect(fullShareWithoutRead(depsWith(2), { ...rootTask(), spendLimits: undefined })).toBeUndefined();
    expect(fullShareWithoutRead(depsWith(0.001), rootTask())).toBeUndefined();
  });

  it('plans and merges take it like work', () => {
    expect(fullShareWithoutRead(depsWith(1), rootTask('plan'))?.usd).toBe(1);
    expect(fullShareWithoutRead(depsWith(1), rootTask('merge'))?.usd).toBe(1);
  });
});
