/** The API Lambda: one middy handler that routes on API Gateway's `resource` and method. */
import middy from '@middy/core';
import httpHeaderNormalizer from '@middy/http-header-normalizer';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { HttpError } from '../../core/errors.ts';
import type { Deps } from '../../services/deps.ts';
import { errorResponses } from '../http.ts';
import { ROUTES } from '../routes.ts';
import * as caller from './caller-routes.ts';
import { plainRoute, type RouteFactory } from './pipeline.ts';
import * as publicRoutes from './public-routes.ts';
import * as worker from './worker-routes.ts';

/** Every route's pipeline by name (ROUTES); worker routes bring their own steps (pipeline.ts). */
const IMPLEMENTATIONS: Readonly<Record<string, RouteFactory>> = {
  health: plainRoute(publicRoutes.health),
  openapi: plainRoute(publicRoutes.openapi),
  submit: caller.submit,
  createSource: caller.createSource,
  getPatch: caller.getPatch,
  getBundle: caller.getBundle,
  listJobs: caller.listJobs,
  getJob: caller.getJob,
  getStatus: caller.getStatus,
  getReport: caller.getReport,
  cancel: caller.cancel,
  getEvents: caller.getEvents,
  getLog: caller.getLog,
  assignment: worker.assignment,
  uploads: worker.uploads,
  result: worker.result,
  progress: worker.progress,
};

export function createApiHandler(deps: Deps) {
  const table = new Map(
    ROUTES.map((r) => [`${r.method} ${r.resource}`, (IMPLEMENTATIONS[r.name] as RouteFactory)(deps)]),
  );
  return middy<APIGatewayProxyEvent, APIGatewayProxyResult>()
    .use(httpHeaderNormalizer())
    .use(errorResponses(deps.log))
    .handler(async (event, context) => {
      const route = table.get(`${event.httpMethod} ${event.resource}`);
      if (!route)
        throw new HttpError(
          404,
          `no route for ${event.httpMethod} ${event.resource}`,
          undefined,
          'not_found',
        );
      return route(event, context);
    });
}
