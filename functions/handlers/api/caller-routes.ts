/**
 * Routes for callers: submit, status, result, list, report, cancel. A caller
 * is a tenant's API key, or a worker's task token: a worker may create child
 * jobs under its own task and read those, nothing else.
 */
import { InvalidCursorError } from '../../adapters/job-store.ts';
import { roundUsd } from '../../core/accounting.ts';
import { CreateSourceBodySchema, ListJobsQuerySchema, submitBodySchema } from '../../core/api-schemas.ts';
import { badRequest, notFound, zodIssues } from '../../core/errors.ts';
import { finalReportMarkdown } from '../../core/final-report.ts';
import { finalReportKey, jobPrefix, mergeBundleKey, mergePatchKey } from '../../core/layout.ts';
import { mergeResultOf } from '../../core/merge-plan.ts';
import type { JobRecord, TaskRecord } from '../../core/model.ts';
import { EventsQuerySchema, LogQuerySchema, parseWorkerId } from '../../core/progress.ts';
import { reportObjects } from '../../core/report-links.ts';
import { linkTarget, markdownText } from '../../core/report-markdown.ts';
import { buildTreeResult, countTasksByState, type ResultContext } from '../../core/result-format.ts';
import { isTerminalJobStatus } from '../../core/task-states.ts';
import { requestCancel } from '../../services/cancel.ts';
import { createChildJob } from '../../services/children.ts';
import type { Deps } from '../../services/deps.ts';
import { loadSubtree } from '../../services/job-tree.ts';
import { readEvents, readLog } from '../../services/progress.ts';
import { createSourceUpload } from '../../services/sources.ts';
import { submitJob } from '../../services/submit-job.ts';
import { header, json, pathParam } from '../http.ts';
import { CHILD_MODE_HEADER, DECIDE_COST_HEADER, SOURCE_COMMIT_HEADER } from '../routes.ts';
import { jobRoute, submitRoute, tenantRoute } from './pipeline.ts';

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

export const submit = submitRoute(
  { body: (deps) => submitBodySchema(deps.settings.limits) },
  async (event, { deps, principal, idempotencyKey, body }) => {
    let outcome: { job: JobRecord; created: boolean };
    if (principal.kind === 'caller') {
      outcome = await submitJob(deps, { tenant: principal.tenant, body, idempotencyKey });
    } else {
      const mode = header(event, CHILD_MODE_HEADER) ?? 'wait';
      if (mode !== 'handoff' && mode !== 'wait') {
        throw badRequest('x-child-mode must be handoff or wait', [
          { path: CHILD_MODE_HEADER, message: `got ${mode.slice(0, 20)}` },
        ]);
      }
      const cost = Number(header(event, DECIDE_COST_HEADER) ?? '0');
      // To the micro-dollar: a cost such as 1e-300 would underflow the store's numbers.
      const decideCostUsd = Number.isFinite(cost) && cost >= 0 && cost < 1_000_000 ? roundUsd(cost) : 0;
      const sourceCommit = header(event, SOURCE_COMMIT_HEADER);
      outcome = await createChildJob(deps, {
        scope: principal,
        body,
        mode,
        idempotencyKey,
        decideCostUsd,
        sourceCommit,
      });
    }
    const { job, created } = outcome;
    return json(
      202,
      { job_id: job.jobId, status: job.status, created, links: links(job.jobId) },
      { location: links(job.jobId).self },
    );
  },
);

/** The job's result, with every descendant job's workers in it. */
export const getJob = jobRoute(async (_event, { deps, job }) => {
  return json(200, buildTreeResult(await loadSubtree(deps, job), resultContext(deps, job)));
});

export const getStatus = jobRoute(async (_event, { deps, job }) => {
  const tasks = await deps.tasks.listTasks(job.jobId);
  return json(200, {
    job_id: job.jobId,
    status: job.status,
    total_tasks: job.totalTasks,
    finished_tasks: job.finishedTasks.length,
    tasks: countTasksByState(tasks),
    ...waitingTasks(tasks),
    created_at: job.createdAt,
    updated_at: job.updatedAt,
    finished_at: job.finishedAt,
    links: links(job.jobId),
  });
});

/** Queued tasks held back, by why: `spend_budget` (other attempts hold the tree's spend). */
function waitingTasks(tasks: readonly TaskRecord[]): { waiting?: Record<string, number> } {
  const waiting: Record<string, number> = {};
  for (const t of tasks)
    if (t.state === 'queued' && t.waitingFor) waiting[t.waitingFor] = (waiting[t.waitingFor] ?? 0) + 1;
  return Object.keys(waiting).length > 0 ? { waiting } : {};
}

export const listJobs = tenantRoute({}, async (event, { deps, tenant }) => {
  const query = ListJobsQuerySchema.safeParse(event.queryStringParameters ?? {});
  if (!query.success) throw badRequest('invalid query string', zodIssues(query.error));
  try {
    const page = await deps.jobs.listJobs(tenant, query.data.limit, query.data.cursor);
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
});

/**
 * FINAL_RESULT.md as markdown, followed by short-lived links to the job's
 * artifacts: its own and its descendants' (report-links.ts), each worker's
 * files only as its result recorded them. While the job runs, the report is
 * rendered from the current state so progress is visible.
 */
export const getReport = jobRoute(async (_event, { deps, job }) => {
  const subtree = await loadSubtree(deps, job);
  const stored =
    job.depth === 0 && isTerminalJobStatus(job.status)
      ? await deps.artifacts.getText(finalReportKey(job.rootJobId))
      : undefined;
  const report = stored ?? finalReportMarkdown(buildTreeResult(subtree, resultContext(deps, job)));
  const prefix = jobPrefix(job.rootJobId);
  const { linked: objects, withheld } = reportObjects(subtree, await deps.artifacts.list(prefix));
  const expires = deps.settings.presignExpirySec;
  const lines = await Promise.all(
    objects.map(
      async (o) =>
        // Object names are chosen by workers: as link text they must stay text.
        `- [${markdownText(o.key.slice(prefix.length))}](${linkTarget(await deps.artifacts.presignGet(o.key, expires))}) (${o.size} bytes)`,
    ),
  );
  if (withheld > 0)
    lines.push(
      `- _${withheld} worker file(s) not linked: stored or changed after their attempt's result was recorded_`,
    );
  const body = `${report.trimEnd()}\n\n## Artifact links (valid ${Math.round(expires / 60)} min)\n\n${lines.join('\n') || '_none yet_'}\n`;
  return {
    statusCode: 200,
    headers: { 'content-type': 'text/markdown; charset=utf-8', 'cache-control': 'no-store' },
    body,
  };
});

/** Cancels the job and everything below it; running workers are stopped. */
export const cancel = jobRoute(
  async (_event, { deps, job }) => {
    const { job: cancelled, changed } = await requestCancel(deps, job);
    // 202 when this call cancelled it (workers are being stopped), 200 when it already was.
    return json(changed ? 202 : 200, {
      job_id: cancelled.jobId,
      status: cancelled.status,
      links: links(cancelled.jobId),
    });
  },
  { tenantOnly: true },
);

/** Starts a bundle upload: the id to name on submit and a presigned PUT for exactly `size_bytes`. */
export const createSource = tenantRoute(
  { body: () => CreateSourceBodySchema },
  async (_event, { deps, tenant, body }) => {
    return json(201, await createSourceUpload(deps, tenant, body.size_bytes));
  },
);

/** The merged branch of a repository job, when it has one; 404 (with why) otherwise. */
async function mergedBranch(deps: Deps, job: JobRecord) {
  if (!job.source) throw notFound(`job ${job.jobId} has no repository`);
  const merged = mergeResultOf(await deps.tasks.listTasks(job.jobId));
  if (!merged || merged.headCommit === merged.baseCommit) {
    throw notFound(
      isTerminalJobStatus(job.status)
        ? `job ${job.jobId} changed nothing in the repository`
        : `job ${job.jobId} has not merged its workers' changes yet (${job.status})`,
    );
  }
  return merged;
}

/** The unified diff of everything the job changed (base..head of its branch). */
export const getPatch = jobRoute(async (_event, { deps, job }) => {
  await mergedBranch(deps, job);
  const patch = await deps.artifacts.getText(mergePatchKey(job.rootJobId, job.path));
  if (patch === undefined) throw notFound(`the patch of job ${job.jobId} is missing`);
  return {
    statusCode: 200,
    headers: { 'content-type': 'text/x-diff; charset=utf-8', 'cache-control': 'no-store' },
    body: patch,
  };
});

/**
 * Where to download the job's branch: a bundle of base..head, to fetch with
 * `git fetch <file> +refs/heads/<branch>:refs/heads/<branch>` into a
 * repository that has the base.
 */
export const getBundle = jobRoute(async (_event, { deps, job }) => {
  const merged = await mergedBranch(deps, job);
  const key = mergeBundleKey(job.rootJobId, job.path);
  const expires = deps.settings.presignExpirySec;
  return json(200, {
    job_id: job.jobId,
    branch: merged.branch,
    base_commit: merged.baseCommit,
    head_commit: merged.headCommit,
    url: await deps.artifacts.presignGet(key, expires),
    size_bytes: (await deps.artifacts.size(key)) ?? 0,
    expires_in: expires,
  });
});

/**
 * The job tree's events after `?after=`, held open up to `?wait=` seconds
 * (20 at most) until one arrives.
 */
export const getEvents = jobRoute(async (event, { deps, job }) => {
  const query = EventsQuerySchema.safeParse(event.queryStringParameters ?? {});
  if (!query.success) throw badRequest('invalid query string', zodIssues(query.error));
  const { after, wait, limit } = query.data;
  return json(200, await readEvents(deps, job, { after, waitSec: wait, limit }));
});

/** One attempt's log, redacted: live while the worker runs, the uploaded log after. */
export const getLog = jobRoute(async (event, { deps, job }) => {
  const query = LogQuerySchema.safeParse(event.queryStringParameters ?? {});
  if (!query.success) throw badRequest('invalid query string', zodIssues(query.error));
  const worker = pathParam(event, 'worker');
  const lineage = parseWorkerId(worker);
  if (!lineage)
    throw badRequest('not a worker id', [{ path: 'worker', message: 'like worker_2 or worker_2_1' }]);
  const taskNo = lineage.at(-1) as number;
  const jobPath = lineage.slice(0, -1).join('_');
  const subtree = job.depth === 0 ? '' : job.path;
  const inside = subtree === '' || jobPath === subtree || jobPath.startsWith(`${subtree}_`);
  const owner = !inside
    ? undefined
    : jobPath === ''
      ? await deps.jobs.getJob(job.rootJobId)
      : (await deps.jobs.listDescendants(job.rootJobId)).find((j) => j.path === jobPath);
  const task = owner ? await deps.tasks.getTask(owner.jobId, taskNo) : undefined;
  if (!owner || !task) throw notFound(`no ${worker.slice(0, 64)} in job ${job.jobId}`);
  if (query.data.attempt !== undefined && query.data.attempt > task.attempt)
    throw notFound(`${worker} has made ${task.attempt} attempt(s)`);
  return json(200, await readLog(deps, job, task, query.data));
});
