/**
 * The OpenAPI 3.1 document of the HTTP API, generated from the same zod
 * schemas that validate the requests and type the client, with the bounds of
 * this deployment's limits. Every route of ROUTES must be described here:
 * generation fails on one that is not, so the document cannot fall behind.
 */
import { OpenAPIRegistry, OpenApiGeneratorV31, type RouteConfig } from '@asteasolutions/zod-to-openapi';
import * as z from 'zod';
import {
  AssignmentResponseSchema,
  BundleResponseSchema,
  CancelResponseSchema,
  CreateSourceResponseSchema,
  ErrorBodySchema,
  HealthResponseSchema,
  JobListResponseSchema,
  JobResultSchema,
  JobStatusResponseSchema,
  ResultAcceptedResponseSchema,
  SubmitResponseSchema,
  UploadLinksResponseSchema,
} from '../../core/api-responses.ts';
import {
  type ApiLimits,
  CreateSourceBodySchema,
  ListJobsQuerySchema,
  submitBodySchema,
  uploadRequestSchema,
  workerResultSchema,
} from '../../core/api-schemas.ts';
import {
  EventsQuerySchema,
  EventsResponseSchema,
  LogQuerySchema,
  LogResponseSchema,
  ProgressBodySchema,
  ProgressResponseSchema,
} from '../../core/progress.ts';
import { VERSION } from '../../core/version.ts';
import { API_KEY_HEADER, ROUTES, type RouteSpec, TASK_TOKEN_HEADER } from '../routes.ts';

type Doc = Omit<RouteConfig, 'method' | 'path' | 'responses'> & {
  ok: { status: number; description: string; schema?: z.ZodType; contentType?: string };
  errors?: number[];
};

const jsonBody = (schema: z.ZodType) => ({ content: { 'application/json': { schema } }, required: true });
const jobId = z.object({ id: z.string().describe('a job id') });
const taskParams = jobId.extend({ taskNo: z.string().regex(/^\d+$/).describe('the task number') });

function describeRoutes(limits: ApiLimits): Record<string, Doc> {
  return {
    health: {
      summary: 'Liveness: answers without credentials',
      ok: { status: 200, description: 'the API is up', schema: HealthResponseSchema },
    },
    openapi: {
      summary: 'This document',
      ok: { status: 200, description: 'OpenAPI 3.1', schema: z.looseObject({ openapi: z.string() }) },
    },
    submit: {
      summary: 'Submit a request: the orchestrator plans subtasks (or takes `tasks`) and runs them',
      request: {
        body: jsonBody(submitBodySchema(limits)),
        headers: z.object({
          'idempotency-key': z
            .string()
            .optional()
            .describe('1-128 visible ASCII characters: a repeat returns the job the first call created'),
        }),
      },
      ok: { status: 202, description: 'accepted', schema: SubmitResponseSchema },
      errors: [400, 401, 403, 409, 413, 415, 429],
    },
    createSource: {
      summary: 'Start a repository bundle upload: an id for source.bundle_id and a presigned PUT',
      request: { body: jsonBody(CreateSourceBodySchema) },
      ok: { status: 201, description: 'upload link', schema: CreateSourceResponseSchema },
      errors: [400, 401, 413],
    },
    listJobs: {
      summary: "The caller's jobs, newest first",
      request: { query: ListJobsQuerySchema },
      ok: { status: 200, description: 'one page', schema: JobListResponseSchema },
      errors: [400, 401],
    },
    getJob: {
      summary: 'The result of a job and every job below it',
      request: { params: jobId },
      ok: { status: 200, description: 'the result (result.json)', schema: JobResultSchema },
      errors: [401, 404],
    },
    getStatus: {
      summary: 'Counts of tasks by state',
      request: { params: jobId },
      ok: { status: 200, description: 'status', schema: JobStatusResponseSchema },
      errors: [401, 404],
    },
    getReport: {
      summary: 'FINAL_RESULT.md with short-lived links to every artifact',
      request: { params: jobId },
      ok: {
        status: 200,
        description: 'markdown',
        schema: z.string(),
        contentType: 'text/markdown',
      },
      errors: [401, 404],
    },
    getPatch: {
      summary: 'The unified diff of everything a repository job changed',
      request: { params: jobId },
      ok: { status: 200, description: 'a patch', schema: z.string(), contentType: 'text/x-diff' },
      errors: [401, 404],
    },
    getBundle: {
      summary: "Where to download a repository job's merged branch, as a git bundle",
      request: { params: jobId },
      ok: { status: 200, description: 'a presigned link', schema: BundleResponseSchema },
      errors: [401, 404],
    },
    cancel: {
      summary: 'Cancel a job and everything below it; running workers are stopped',
      request: { params: jobId },
      ok: {
        status: 202,
        description: 'cancelling (200 with the same body when the job already was cancelled)',
        schema: CancelResponseSchema,
      },
      errors: [401, 404, 409],
    },
    getEvents: {
      summary:
        "The job tree's events (workers' turns, tools, tokens, cost, last text) after `after`, waiting up to `wait` s for one",
      description:
        'With `Accept: text/event-stream` the answer is server-sent events instead: `id:` the event id, `event:` its kind, `data:` the event; a keep-alive comment every 15 s; `event: end` once the job has ended. `Last-Event-ID` resumes after that event.',
      request: { params: jobId, query: EventsQuerySchema },
      ok: { status: 200, description: 'events, oldest first', schema: EventsResponseSchema },
      errors: [400, 401, 404],
    },
    getLog: {
      summary: "One attempt's log, redacted: live while the worker runs, the uploaded log after",
      request: {
        params: jobId.extend({ worker: z.string().describe('worker id, e.g. worker_2_1') }),
        query: LogQuerySchema,
      },
      ok: { status: 200, description: 'a page of the log', schema: LogResponseSchema },
      errors: [400, 401, 404],
    },
    progress: {
      summary: 'Workers only: what the attempt is doing and the new part of its log; also its heartbeat',
      request: { params: taskParams, body: jsonBody(ProgressBodySchema) },
      ok: { status: 200, description: 'stored', schema: ProgressResponseSchema },
      errors: [400, 401, 403, 429],
    },
    assignment: {
      summary: "Workers only: the attempt's task; marks it running",
      request: { params: taskParams },
      ok: { status: 200, description: 'the assignment', schema: AssignmentResponseSchema },
      errors: [401, 403, 409],
    },
    uploads: {
      summary: 'Workers only: presigned PUT links for the files, the log and git artifacts, each of its size',
      request: { params: taskParams, body: jsonBody(uploadRequestSchema(limits)) },
      ok: { status: 200, description: 'links', schema: UploadLinksResponseSchema },
      errors: [400, 401, 403, 409],
    },
    result: {
      summary: "Workers only: the attempt's result; an identical repeat is answered the same",
      request: { params: taskParams, body: jsonBody(workerResultSchema(limits)) },
      ok: { status: 200, description: 'recorded', schema: ResultAcceptedResponseSchema },
      errors: [400, 401, 403, 409],
    },
  };
}

const ERROR_TEXT: Record<number, string> = {
  400: 'a field is invalid: `issues` names each one and why',
  401: 'missing or unknown credentials',
  403: 'the credentials may not do this',
  404: 'no such job (or not yours)',
  409: 'the state does not allow it',
  413: 'too large',
  415: 'the body must be application/json',
  429: 'too many requests: retry after Retry-After seconds',
};

function security(route: RouteSpec): RouteConfig['security'] {
  if (route.auth === 'public') return [];
  return route.auth === 'worker' ? [{ taskToken: [] }] : [{ apiKey: [] }, { taskToken: [] }];
}

export function buildOpenApiDocument(limits: ApiLimits, serverUrl = '/'): Record<string, unknown> {
  const registry = new OpenAPIRegistry();
  registry.registerComponent('securitySchemes', 'apiKey', {
    type: 'apiKey',
    in: 'header',
    name: API_KEY_HEADER,
    description: 'an API key made with `orchestrator keys create` (or printed by `orchestrator serve`)',
  });
  registry.registerComponent('securitySchemes', 'taskToken', {
    type: 'apiKey',
    in: 'header',
    name: TASK_TOKEN_HEADER,
    description: "a worker's task token (workers only)",
  });
  const error = ErrorBodySchema;
  const docs = describeRoutes(limits);
  for (const route of ROUTES) {
    const doc = docs[route.name];
    if (!doc) throw new Error(`route ${route.name} (${route.method} ${route.resource}) is not described`);
    const { ok, errors = [], ...config } = doc;
    const responses: RouteConfig['responses'] = {
      [ok.status]: {
        description: ok.description,
        ...(ok.schema ? { content: { [ok.contentType ?? 'application/json']: { schema: ok.schema } } } : {}),
      },
    };
    for (const status of [...errors, 500])
      responses[status] = {
        description: ERROR_TEXT[status] ?? 'internal error',
        content: { 'application/json': { schema: error } },
      };
    registry.registerPath({
      ...config,
      operationId: route.name,
      method: route.method === 'GET' ? 'get' : 'post',
      path: route.resource,
      security: security(route),
      responses,
    });
  }
  return new OpenApiGeneratorV31(registry.definitions).generateDocument({
    openapi: '3.1.0',
    info: {
      title: 'claude-fleet orchestrator API',
      version: VERSION,
      description:
        'Submit a request, follow its workers, read the result. Generated from the zod schemas the server validates with.',
    },
    servers: [{ url: serverUrl }],
    security: [{ apiKey: [] }],
  }) as unknown as Record<string, unknown>;
}
