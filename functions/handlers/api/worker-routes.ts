/** Routes for workers (task token): assignment, upload links, result. */
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import {
  parseGitResult,
  toWorkerOutcome,
  uploadRequestSchema,
  workerResultSchema,
} from '../../core/api-schemas.ts';
import { badRequest, forbidden, notFound } from '../../core/errors.ts';
import type { TaskRecord } from '../../core/model.ts';
import { ProgressBodySchema } from '../../core/progress.ts';
import { canonicalHash } from '../../core/tokens.ts';
import { ownsTask } from '../../services/auth.ts';
import type { Deps } from '../../services/deps.ts';
import { recordProgress } from '../../services/progress.ts';
import { recordWorkerResult } from '../../services/record-result.ts';
import { getAssignment, uploadLinks } from '../../services/worker-access.ts';
import { json, parseJsonBody, pathParam, principalOf } from '../http.ts';

/** The task named by the path, provided the token belongs to it. */
async function ownTask(
  deps: Deps,
  event: APIGatewayProxyEvent,
): Promise<{ task: TaskRecord; attempt: number }> {
  const principal = principalOf(event);
  const jobId = pathParam(event, 'id');
  const taskNo = Number(pathParam(event, 'taskNo'));
  if (principal.kind !== 'worker' || !Number.isInteger(taskNo) || !ownsTask(principal, jobId, taskNo)) {
    deps.log.warn('worker token used outside its task', { principal, jobId: jobId.slice(0, 64), taskNo });
    throw forbidden('this token is not valid for that task');
  }
  const task = await deps.store.getTask(jobId, taskNo);
  if (!task) throw notFound(`task ${taskNo} of job ${jobId} not found`);
  return { task, attempt: principal.attempt };
}

export async function assignment(deps: Deps, event: APIGatewayProxyEvent): Promise<APIGatewayProxyResult> {
  const { task, attempt } = await ownTask(deps, event);
  return json(200, await getAssignment(deps, task, attempt));
}

export async function uploads(deps: Deps, event: APIGatewayProxyEvent): Promise<APIGatewayProxyResult> {
  const { task, attempt } = await ownTask(deps, event);
  const body = parseJsonBody(event, uploadRequestSchema(deps.settings.limits));
  if (body.attempt !== attempt) {
    deps.log.warn('uploads refused: token of another attempt', {
      jobId: task.jobId,
      taskNo: task.taskNo,
      attempt: body.attempt,
    });
    throw forbidden('this token belongs to another attempt');
  }
  return json(200, await uploadLinks(deps, task, body));
}

export async function result(deps: Deps, event: APIGatewayProxyEvent): Promise<APIGatewayProxyResult> {
  const { task, attempt } = await ownTask(deps, event);
  const body = parseJsonBody(event, workerResultSchema(deps.settings.limits));
  if (body.attempt !== attempt) {
    deps.log.warn('result refused: token of another attempt', {
      jobId: task.jobId,
      taskNo: task.taskNo,
      attempt: body.attempt,
    });
    throw forbidden('this token belongs to another attempt');
  }
  const outcome = toWorkerOutcome(body);
  if (body.git !== undefined) {
    const git = parseGitResult(task.kind, body.git, deps.settings.limits);
    if (!git.ok) throw badRequest('request body is invalid', git.issues);
    outcome.git = git.value;
  }
  // The body as the schema reads it, key order aside: only this exact result may be replayed.
  const recorded = await recordWorkerResult(deps, task, outcome, canonicalHash(body));
  return json(200, { outcome: recorded.outcome, state: recorded.task.state, attempt: recorded.task.attempt });
}

/** What the worker is doing, and the new part of its log; also its heartbeat. */
export async function progress(deps: Deps, event: APIGatewayProxyEvent): Promise<APIGatewayProxyResult> {
  const { task, attempt } = await ownTask(deps, event);
  const body = parseJsonBody(event, ProgressBodySchema);
  if (body.attempt !== attempt) throw forbidden('this token belongs to another attempt');
  return json(200, await recordProgress(deps, task, body));
}
