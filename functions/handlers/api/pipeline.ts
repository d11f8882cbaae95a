/**
 * Per-route middy pipelines. The API handler's own middy does what every
 * request needs (header normalisation, error answers); a route's pipeline
 * adds what that route needs, each step typed into the route's context: the
 * worker's task (its token checked once, with the one read of the task), the
 * caller's tenant, the job the caller may see, who submits and with which
 * idempotency key, the parsed body, the attempt check. A route's handler then receives only values that have passed those
 * steps.
 */
import middy, { type MiddlewareObj } from '@middy/core';
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import type { z } from 'zod';
import { badRequest, forbidden, unauthorized } from '../../core/errors.ts';
import type { JobRecord, TaskRecord } from '../../core/model.ts';
import { authenticateWorker, ownsTask, type Principal } from '../../services/auth.ts';
import type { Deps } from '../../services/deps.ts';
import { header, parseJsonBody, pathParam, principalOf } from '../http.ts';
import { TASK_TOKEN_HEADER } from '../routes.ts';
import { tenantOf, visibleJob } from './access.ts';

/** A route, built once per set of dependencies. */
export type Route = (event: APIGatewayProxyEvent, context: Context) => Promise<APIGatewayProxyResult>;
export type RouteFactory = (deps: Deps) => Route;

type Middleware<C extends Context> = MiddlewareObj<APIGatewayProxyEvent, APIGatewayProxyResult, Error, C>;

export interface WorkerContext<B> extends Context {
  deps: Deps;
  /** The task named by the path, read once: the token was checked against it. */
  task: TaskRecord;
  /** The attempt the token was issued for. */
  attempt: number;
  /** The task's job, read with the task, on routes built `withJob` (undefined if it is gone). */
  job: JobRecord | undefined;
  body: B;
}

export interface JobContext extends Context {
  deps: Deps;
  /** The job named by the path, which the caller may see (access.ts). */
  job: JobRecord;
}

export interface TenantContext<B> extends Context {
  deps: Deps;
  /** The API key's tenant: a worker's token is refused on these routes. */
  tenant: string;
  body: B;
}

export interface SubmitContext<B> extends Context {
  deps: Deps;
  /** A tenant's API key, or a worker's task token (a child job of its own task). */
  principal: Principal;
  /** The `Idempotency-Key` header, when given: 1-128 visible ASCII characters. */
  idempotencyKey: string | undefined;
  body: B;
}

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,128}$/;

/** A route whose one step fills its context (after `deps`) before the handler runs. */
function steppedRoute<C extends Context & { deps: Deps }>(
  step: (deps: Deps, event: APIGatewayProxyEvent, context: C) => Promise<void> | void,
  handle: (event: APIGatewayProxyEvent, context: C) => Promise<APIGatewayProxyResult>,
): RouteFactory {
  return (deps) => {
    const handler = middy<APIGatewayProxyEvent, APIGatewayProxyResult, Error, C>()
      .use({
        before: async ({ event, context }) => {
          context.deps = deps;
          await step(deps, event, context);
        },
      })
      .handler(handle);
    // The step writes into the context: each request gets its own, over the invocation's.
    return (event, context) => handler(event, Object.create(context) as C);
  };
}

/** A route that creates a job: either credential, an optional idempotency key, and a body. */
export function submitRoute<B>(
  options: { body: (deps: Deps) => z.ZodType<B> },
  handle: (event: APIGatewayProxyEvent, context: SubmitContext<B>) => Promise<APIGatewayProxyResult>,
): RouteFactory {
  return steppedRoute<SubmitContext<B>>((deps, event, context) => {
    context.principal = principalOf(event);
    const key = header(event, 'idempotency-key');
    if (key !== undefined && !IDEMPOTENCY_KEY.test(key)) {
      throw badRequest('Idempotency-Key must be 1-128 visible ASCII characters', [
        { path: 'Idempotency-Key', message: 'invalid' },
      ]);
    }
    context.idempotencyKey = key;
    context.body = parseJsonBody(event, options.body(deps));
  }, handle);
}

/** A caller route about one job: `tenantOnly` refuses a worker's token even for its own children. */
export function jobRoute(
  handle: (event: APIGatewayProxyEvent, context: JobContext) => Promise<APIGatewayProxyResult>,
  options: { tenantOnly?: boolean } = {},
): RouteFactory {
  return steppedRoute<JobContext>(async (deps, event, context) => {
    if (options.tenantOnly) tenantOf(deps, event);
    context.job = await visibleJob(deps, event);
  }, handle);
}

/** A caller route of a tenant (an API key only), with its body parsed when it has one. */
export function tenantRoute<B = undefined>(
  options: { body?: (deps: Deps) => z.ZodType<B> },
  handle: (event: APIGatewayProxyEvent, context: TenantContext<B>) => Promise<APIGatewayProxyResult>,
): RouteFactory {
  return steppedRoute<TenantContext<B>>((deps, event, context) => {
    context.tenant = tenantOf(deps, event);
    if (options.body) context.body = parseJsonBody(event, options.body(deps));
  }, handle);
}

/** A public route (health, the API's description): `(deps, event)`, no steps of its own. */
export function plainRoute(
  fn: (deps: Deps, event: APIGatewayProxyEvent) => Promise<APIGatewayProxyResult>,
): RouteFactory {
  return (deps) => (event) => fn(deps, event);
}

/**
 * A worker route: the task token checked, then (with `body`) the JSON body
 * parsed by its schema and its `attempt` held to the token's.
 */
export function workerRoute<B = undefined>(
  options: { body?: (deps: Deps) => z.ZodType<B & { attempt: number }>; what?: string; withJob?: boolean },
  handle: (event: APIGatewayProxyEvent, context: WorkerContext<B>) => Promise<APIGatewayProxyResult>,
): RouteFactory {
  return (deps) => {
    const pipeline = middy<APIGatewayProxyEvent, APIGatewayProxyResult, Error, WorkerContext<B>>().use(
      workerToken(deps, options.withJob ?? false),
    );
    if (options.body) pipeline.use(jsonBody(options.body, options.what ?? 'request'));
    const handler = pipeline.handler(handle);
    // The steps write into the context: each request gets its own, over the invocation's.
    return (event, context) => handler(event, Object.create(context) as WorkerContext<B>);
  };
}

/**
 * Worker routes have no authorizer in front: this step's one read of the task
 * proves the token and gives the route its task (see docs/security.md), and
 * `withJob` its job in the same request.
 */
function workerToken<B>(deps: Deps, withJob: boolean): Middleware<WorkerContext<B>> {
  return {
    before: async ({ event, context }) => {
      context.deps = deps;
      const jobId = pathParam(event, 'id');
      const taskNo = Number(pathParam(event, 'taskNo'));
      const token = header(event, TASK_TOKEN_HEADER);
      const found = await authenticateWorker(deps.tasks, token, withJob);
      if (!found) {
        deps.log.warn('worker token refused', { presented: token !== undefined, path: event.path });
        throw unauthorized('missing or unknown X-Task-Token');
      }
      if (!Number.isInteger(taskNo) || !ownsTask(found.scope, jobId, taskNo)) {
        deps.log.warn('worker token used outside its task', {
          principal: found.scope,
          jobId: jobId.slice(0, 64),
          taskNo,
        });
        throw forbidden('this token is not valid for that task');
      }
      context.task = found.task;
      context.job = found.job;
      context.attempt = found.scope.attempt;
    },
  };
}

/** The body parsed by its schema; its `attempt` must be the token's. */
function jsonBody<B>(
  schema: (deps: Deps) => z.ZodType<B & { attempt: number }>,
  what: string,
): Middleware<WorkerContext<B>> {
  return {
    before: async ({ event, context }) => {
      const body = parseJsonBody(event, schema(context.deps));
      if (body.attempt !== context.attempt) {
        context.deps.log.warn(`${what} refused: token of another attempt`, {
          jobId: context.task.jobId,
          taskNo: context.task.taskNo,
          attempt: body.attempt,
        });
        throw forbidden('this token belongs to another attempt');
      }
      context.body = body;
    },
  };
}
