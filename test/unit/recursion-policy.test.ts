/** Who may create child jobs: only a work task's token, never a planner's or a step's. */
import { describe, expect, it } from 'vitest';
import type { TaskKind } from '../../functions/core/model.ts';
import { childCreatorRefusal } from '../../functions/core/recursion-policy.ts';

describe('childCreatorRefusal', () => {
  it('lets a work task hand off or spawn', () => {
    expect(childCreatorRefusal('work')).toBeUndefined();
  });

  it.each([
    ['plan', "a planner's task token"],
    ['source', "the source step's task token"],
    ['merge', "the merge step's task token"],
    ['push', "the push step's task token"],
  ] as [TaskKind, string][])('refuses a %s task, naming whose token it is', (kind, who) => {
    expect(childCreatorRefusal(kind)).toBe(
      `${who} cannot create child jobs: only a work task may hand off or spawn a child job`,
    );
  });
});
