import { describe, expect, it } from 'vitest';
import { SLOT_WAIT_MAX_SEC, SLOT_WAIT_SEC, slotWaitDelaySec } from '../../functions/services/dispatch.ts';

describe('how long a task waits for a full running slot', () => {
  it("for the deployment's slots, doubles from the first wait up to the cap", () => {
    const mid = [1, 2, 3, 4, 5, 10].map((times) => slotWaitDelaySec('deployment', times, 0.5));
    expect(mid).toEqual([SLOT_WAIT_SEC, 4, 8, SLOT_WAIT_MAX_SEC, SLOT_WAIT_MAX_SEC, SLOT_WAIT_MAX_SEC]);
  });

  it("for its job's own slots, keeps the first delay: that slot comes back within one task's run", () => {
    expect([1, 2, 5, 50].map((times) => slotWaitDelaySec('job', times, 0.5))).toEqual([2, 2, 2, 2]);
  });

  it('spreads waiters by a quarter either way, and never asks for less than a second', () => {
    expect(slotWaitDelaySec('deployment', 4, 0)).toBe(Math.round(SLOT_WAIT_MAX_SEC * 0.75));
    expect(slotWaitDelaySec('deployment', 4, 1)).toBe(Math.round(SLOT_WAIT_MAX_SEC * 1.25));
    expect(slotWaitDelaySec('job', 1, 0)).toBeGreaterThanOrEqual(1);
    expect(slotWaitDelaySec('deployment', 0, 0)).toBeGreaterThanOrEqual(1);
  });
});
