/** `orchestrator logs [-f]`: a worker's log, page by page, following it while the worker runs. */
import { type OrchestratorClient, sleep } from '../client/orchestrator-client.ts';

export interface FollowOptions {
  follow: boolean;
  attempt?: number;
  write(text: string): void;
  /** Between reads when nothing new arrived (default 1 s). */
  pollMs?: number;
  signal?: AbortSignal;
}

/**
 * Prints the log of one attempt (the latest unless `attempt` is given). With
 * `follow`, keeps reading until the attempt ends and, when the worker is
 * retried, goes on with the next attempt's log.
 */
export async function followLog(
  client: OrchestratorClient,
  jobId: string,
  worker: string,
  options: FollowOptions,
): Promise<void> {
  let attempt = options.attempt;
  let after = 0;
  for (;;) {
    options.signal?.throwIfAborted();
    const page = await client.log(jobId, worker, { ...(attempt !== undefined ? { attempt } : {}), after });
    attempt = page.attempt;
    if (page.text) options.write(page.text);
    after = page.next;
    if (page.done) {
      // Pinned to one attempt, or the last one: nothing more will come.
      if (!options.follow || options.attempt !== undefined || page.attempts <= attempt) {
        if (page.text && !page.text.endsWith('\n')) options.write('\n');
        return;
      }
      attempt += 1;
      after = 0;
      options.write(`\n--- ${worker} attempt ${attempt} ---\n`);
      continue;
    }
    if (!page.text) {
      if (!options.follow) return;
      await sleep(options.pollMs ?? 1000, options.signal);
    }
  }
}
