import { describe, expect, it } from 'vitest';
import { EcsLauncher } from '../../functions/adapters/ecs-launcher.ts';
import { RateLimiter } from '../../functions/core/rate-limiter.ts';

/** A clock that only moves when the limiter sleeps, so pacing is measured exactly and instantly. */
function fakeTime() {
  let now = 0;
  const sleep = async (ms: number) => {
    now += ms;
  };
  return { now: () => now, sleep, elapsed: () => now };
}

describe('RateLimiter', () => {
  it('lets a burst through at once, then paces to the rate', async () => {
    const t = fakeTime();
    const limiter = new RateLimiter({ ratePerSec: 5, burst: 2, now: t.now, sleep: t.sleep });
    for (let i = 0; i < 12; i++) await limiter.acquire();
    // 2 free, then 10 more at 5/s.
    expect(t.elapsed()).toBeGreaterThanOrEqual(2000);
    expect(t.elapsed()).toBeLessThan(2100);
  });

  it('serves concurrent callers in order without exceeding the rate', async () => {
    const t = fakeTime();
    const limiter = new RateLimiter({ ratePerSec: 10, burst: 1, now: t.now, sleep: t.sleep });
    const at: number[] = [];
    await Promise.all(Array.from({ length: 20 }, (_, i) => limiter.acquire().then(() => at.push(i))));
    expect(at).toEqual([...Array(20).keys()]);
    expect(t.elapsed()).toBeGreaterThanOrEqual(1900);
  });

  it('refuses a rate that cannot work', () => {
    expect(() => new RateLimiter({ ratePerSec: 0, burst: 1 })).toThrow();
  });
});

describe('EcsLauncher pacing', () => {
  it('never sends RunTask faster than its limiter allows', async () => {
    const t = fakeTime();
    const sentAt: number[] = [];
    const ecs = {
      send: async () => {
        sentAt.push(t.now());
        return { tasks: [{ taskArn: `arn:aws:ecs:us-east-1:1:task/c/${sentAt.length}` }] };
      },
    };
    const launcher = new EcsLauncher(
      ecs,
      {
        cluster: 'c',
        taskDefinition: 'td',
        containerName: 'worker',
        subnets: ['s'],
        securityGroups: [],
        assignPublicIp: false,
        capacityProvider: 'FARGATE',
      },
      { runTaskLimiter: new RateLimiter({ ratePerSec: 4, burst: 4, now: t.now, sleep: t.sleep }) },
    );
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        launcher.launch({
          jobId: 'j',
          taskNo: i + 1,
          attempt: 1,
          taskToken: `tt1.j.${i + 1}.1.x`,
          timeoutSec: 60,
          kind: 'work',
        }),
      ),
    );
    // In any one-second window, at most 4 calls beyond the initial burst.
    for (const start of sentAt)
      expect(sentAt.filter((s) => s >= start + 1 && s < start + 1001).length).toBeLessThanOrEqual(4);
    expect(t.elapsed()).toBeGreaterThanOrEqual(4000);
  });
});
