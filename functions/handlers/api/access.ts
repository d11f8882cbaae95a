/**
 * Who may use a caller route, read once per request by the route's pipeline
 * (pipeline.ts): a tenant's API key, or a worker's task token acting on the
 * child jobs its live attempt created.
 */
import type { APIGatewayProxyEvent } from 'aws-lambda';
import { forbidden, notFound } from '../../core/errors.ts';
import type { JobRecord } from '../../core/model.ts';
import type { Deps } from '../../services/deps.ts';
import { liveTask } from '../../services/worker-access.ts';
import { pathParam, principalOf } from '../http.ts';

/** The tenant of an API key; a worker's token is refused on a caller-only route. */
export function tenantOf(deps: Deps, event: APIGatewayProxyEvent): string {
  const principal = principalOf(event);
  if (principal.kind !== 'caller') {
    deps.log.warn('worker token refused on a caller-only route', { principal, path: event.path });
    throw forbidden('this route needs an API key');
  }
  return principal.tenant;
}

/**
 * The job named by the path, if the principal may see it: a tenant its own
 * jobs; a worker, while its attempt is live, the child jobs that attempt
 * created (and through them their subtrees), never its own job, its parent,
 * the root or a sibling's. Anything else answers exactly like a job that does
 * not exist; a token whose attempt has ended is refused outright (403).
 */
export async function visibleJob(deps: Deps, event: APIGatewayProxyEvent): Promise<JobRecord> {
  const principal = principalOf(event);
  if (principal.kind === 'worker')
    await liveTask(
      deps,
      { jobId: principal.jobId, taskNo: principal.taskNo, attempt: principal.attempt },
      'read',
    );
  const jobId = pathParam(event, 'id');
  const job = /^[A-Za-z0-9_-]{1,64}$/.test(jobId) ? await deps.jobs.getJob(jobId) : undefined;
  const visible =
    job !== undefined &&
    (principal.kind === 'caller'
      ? job.tenant === principal.tenant
      : job.parentJobId === principal.jobId &&
        job.parentTaskNo === principal.taskNo &&
        job.parentAttempt === principal.attempt);
  if (!visible) {
    if (principal.kind === 'worker')
      deps.log.warn('worker tried to read a job that is not its child', {
        principal,
        jobId: jobId.slice(0, 64),
      });
    throw notFound(`job ${jobId.slice(0, 64)} not found`);
  }
  return job;
}
