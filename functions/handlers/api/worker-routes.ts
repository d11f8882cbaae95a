/** Routes for workers (task token): assignment, upload links, result. */
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import {
  parseGitResult,
  toWorkerOutcome,
  uploadRequestSchema,
  workerResultSchema,
} from '../../core/api-schemas.ts';
import { badRequest, forbidden, unauthorized } from '../../core/errors.ts';
import type { TaskRecord } from '../../core/model.ts';
import { ProgressBodySchema } from '../../core/progress.ts';
import { canonicalHash } from '../../core/tokens.ts';
import { authenticateWorker, ownsTask } from '../../services/auth.ts';
import type { Deps } from '../../services/deps.ts';
import { recordLastEvents, recordProgress } from '../../services/progress.ts';
import { recordWorkerResult } from '../../services/record-result.ts';
import { getAssignment, uploadLinks } from '../../services/worker-access.ts';
import { header, json, parseJsonBody, pathParam } from '../http.ts';
import { TASK_TOKEN_HEADER } from '../routes.ts';

/**
 * The task named by the path, provided the request's task token is the one
 * stored for it. Worker routes have no authorizer in front: this one read
 * proves the token and gives the route its task (see docs/security.md).
 */
async function ownTask(
  deps: Deps,
  event: APIGatewayProxyEvent,
): Promise<{ task: TaskRecord; attempt: number }> {
  const jobId = pathParam(event, 'id');
  const taskNo = Number(pathParam(event, 'taskNo'));
  const found = await authenticateWorker(deps.tasks, header(event, TASK_TOKEN_HEADER));
  if (!found) return refuse(deps, event, header(event, TASK_TOKEN_HEADER) !== undefined);
  const { scope } = found;
  if (!Number.isInteger(taskNo) || !ownsTask(scope, jobId, taskNo)) {
    deps.log.warn('worker token used outside its task', {
      principal: scope,
      jobId: jobId.slice(0, 64),
      taskNo,
    });
    throw forbidden('this token is not valid for that task');
  }
  return { task: found.task, attempt: scope.attempt };
}

/** As the caller routes' authorizer: a 401 that says nothing of why, and a warning that does. */
function refuse(deps: Deps, event: APIGatewayProxyEvent, presented: boolean): never {
  deps.log.warn('worker token refused', { presented, path: event.path });
  throw unauthorized('missing or unknown X-Task-Token');
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
  if (body.events) await recordLastEvents(deps, task, attempt, body.events);
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
