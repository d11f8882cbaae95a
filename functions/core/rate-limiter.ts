/**
 * A token bucket: at most `ratePerSec` acquisitions per second on average,
 * with bursts up to `burst`. Used to pace ECS RunTask under its account-wide
 * limit (20 calls/s), split between the dispatchers that may run at once.
 * The clock and sleep are injected so the pacing is testable without waiting.
 */
export interface RateLimiterOptions {
  ratePerSec: number;
  burst: number;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

export class RateLimiter {
  private tokens: number;
  private last: number;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  /** Waiters are served in order, so one slow caller cannot be overtaken forever. */
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly options: RateLimiterOptions) {
    if (!(options.ratePerSec > 0) || !(options.burst >= 1))
      throw new Error('rate must be > 0 and burst >= 1');
    this.now = options.now ?? (() => Date.now());
    this.sleep = options.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.tokens = options.burst;
    this.last = this.now();
  }

  /** Resolves when the caller may make one call. */
  acquire(): Promise<void> {
    const turn = this.queue.then(() => this.take());
    this.queue = turn.catch(() => undefined);
    return turn;
  }

  private async take(): Promise<void> {
    for (;;) {
      const now = this.now();
      this.tokens = Math.min(
        this.options.burst,
        this.tokens + ((now - this.last) / 1000) * this.options.ratePerSec,
      );
      this.last = now;
      if (this.tokens >= 1) {
        this.tokens -= 1;
        return;
      }
      await this.sleep(Math.ceil(((1 - this.tokens) / this.options.ratePerSec) * 1000));
    }
  }
}
