/** Routes for callers (API key): submit, status, result, list, report. */
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { InvalidCursorError } from '../../adapters/job-store.ts';
import { ListJobsQuerySchema, submitBodySchema } from '../../core/api-schemas.ts';
import { badRequest, notFound, unauthorized, zodIssues } from '../../core/errors.ts';
import { finalReportKey, jobPrefix } from '../../core/layout.ts';
import type { JobRecord } from '../../core/model.ts';
import { renderFinalReport } from '../../core/reports.ts';
import { buildJobResult, countTasksByState, type ResultContext } from '../../core/result-format.ts';
import type { Deps } from '../../services/deps.ts';
import { submitJob } from '../../services/submit-job.ts';
import { header, json, parseJsonBody, pathParam, principalOf } from '../http.ts';

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,128}$/;

function tenantOf(event: APIGatewayProxyEvent): string {
  const principal = principalOf(event);
  if (principal.kind !== 'caller') throw unauthorized('this route needs an API key');
  return principal.tenant;
}

/** Another tenant's job answers exactly like a job that does not exist. */
async function ownJob(deps: Deps, event: APIGatewayProxyEvent): Promise<JobRecord> {
  const tenant = tenantOf(event);
  const jobId = pathParam(event, 'id');
  const job = /^[A-Za-z0-9_-]{1,64}$/.test(jobId) ? await deps.store.getJob(jobId) : undefined;
  if (!job || job.tenant !== tenant) throw notFound(`job ${jobId.slice(0, 64)} not found`);
  return job;
}

function links(jobId: string) {
  const base = `/api/v1/jobs/${jobId}`;
  return { self: base, status: `${base}/status`, report: `${base}/report` };
}

function resultContext(deps: Deps, job: JobRecord): ResultContext {
  return {
    bucket: deps.artifacts.bucket,
    now: deps.now().toISOString(),
    workspace: deps.artifacts.uri(jobPrefix(job.rootJobId)),
  };
}

export async function submit(deps: Deps, event: APIGatewayProxyEvent): Promise<APIGatewayProxyResult> {
  const tenant = tenantOf(event);
  const idempotencyKey = header(event, 'idempotency-key');
  if (idempotencyKey !== undefined && !IDEMPOTENCY_KEY.test(idempotencyKey)) {
    throw badRequest('Idempotency-Key must be 1-128 visible ASCII characters', [
      { path: 'Idempotency-Key', message: 'invalid' },
    ]);
  }
  const body = parseJsonBody(event, submitBodySchema(deps.settings.limits));
  const { job, created } = await submitJob(deps, { tenant, body, idempotencyKey });
  return json(
    202,
    { job_id: job.jobId, status: job.status, created, links: links(job.jobId) },
    { location: links(job.jobId).self },
  );
}

export async function getJob(deps: Deps, event: APIGatewayProxyEvent): Promise<APIGatewayProxyResult> {
  const job = await ownJob(deps, event);
  const tasks = await deps.store.listTasks(job.jobId);
  return json(200, buildJobResult(job, tasks, resultContext(deps, job)));
}

export async function getStatus(deps: Deps, event: APIGatewayProxyEvent): Promise<APIGatewayProxyResult> {
  const job = await ownJob(deps, event);
  const tasks = await deps.store.listTasks(job.jobId);
  return json(200, {
    job_id: job.jobId,
    status: job.status,
    total_tasks: job.totalTasks,
    finished_tasks: job.finishedTasks.length,
    tasks: countTasksByState(tasks),
    created_at: job.createdAt,
    updated_at: job.updatedAt,
    finished_at: job.finishedAt,
    links: links(job.jobId),
  });
}

export async function listJobs(deps: Deps, event: APIGatewayProxyEvent): Promise<APIGatewayProxyResult> {
  const tenant = tenantOf(event);
  const query = ListJobsQuerySchema.safeParse(event.queryStringParameters ?? {});
  if (!query.success) throw badRequest('invalid query string', zodIssues(query.error));
  try {
    const page = await deps.store.listJobs(tenant, query.data.limit, query.data.cursor);
    return json(200, {
      jobs: page.jobs.map((j) => ({
        job_id: j.jobId,
        status: j.status,
        request: j.request.length > 200 ? `${j.request.slice(0, 200)}…` : j.request,
        total_tasks: j.totalTasks,
        created_at: j.createdAt,
        finished_at: j.finishedAt,
        links: links(j.jobId),
      })),
      next_cursor: page.nextCursor,
    });
  } catch (err) {
    if (err instanceof InvalidCursorError)
      throw badRequest(err.message, [{ path: 'cursor', message: err.message }]);
    throw err;
  }
}

/**
 * FINAL_RESULT.md as markdown, followed by short-lived links to every
 * artifact of the job. While the job runs, the report is rendered from the
 * current state so progress is visible.
 */
export async function getReport(deps: Deps, event: APIGatewayProxyEvent): Promise<APIGatewayProxyResult> {
  const job = await ownJob(deps, event);
  let report = await deps.artifacts.getText(finalReportKey(job.rootJobId));
  if (report === undefined) {
    report = renderFinalReport(job, await deps.store.listTasks(job.jobId), resultContext(deps, job));
  }
  const prefix = jobPrefix(job.rootJobId);
  const objects = await deps.artifacts.list(prefix);
  const expires = deps.settings.presignExpirySec;
  const lines = await Promise.all(
    objects.map(
      async (o) =>
        `- [${o.key.slice(prefix.length)}](${await deps.artifacts.presignGet(o.key, expires)}) (${o.size} bytes)`,
    ),
  );
  const body = `${report.trimEnd()}\n\n## Artifact links (valid ${Math.round(expires / 60)} min)\n\n${lines.join('\n') || '_none yet_'}\n`;
  return {
    statusCode: 200,
    headers: { 'content-type': 'text/markdown; charset=utf-8', 'cache-control': 'no-store' },
    body,
  };
}
