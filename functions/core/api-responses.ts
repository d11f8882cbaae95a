/**
 * Response bodies of the HTTP API as zod schemas: the OpenAPI document is
 * generated from them (openapi.ts), and the TypeScript client takes its
 * types from them, so what the document promises, what the client reads and
 * what the handlers write are one definition. Large, growing views (a job's
 * result, a worker's assignment) list their stable fields and allow more.
 */
import * as z from 'zod';
import { JOB_STATUSES, TASK_STATES } from './task-states.ts';

const isoTime = z.string().describe('ISO 8601 time');

export const JobStatusEnum = z.enum(JOB_STATUSES);
export const TaskStateEnum = z.enum(TASK_STATES);

export const ErrorBodySchema = z
  .looseObject({
    error: z.string().describe('what went wrong, for a person'),
    code: z.string().optional().describe('stable machine-readable reason, e.g. bad_request, not_found'),
    issues: z
      .array(z.object({ path: z.string(), message: z.string() }))
      .optional()
      .describe('one entry per invalid field'),
  })
  .describe('Every 4xx/5xx answer of the API');

export const JobLinksSchema = z.object({
  self: z.string(),
  status: z.string(),
  report: z.string(),
});

export const SubmitResponseSchema = z.object({
  job_id: z.string(),
  status: JobStatusEnum,
  /** False when an Idempotency-Key replay found the job an earlier submission created. */
  created: z.boolean(),
  links: JobLinksSchema,
});

export const JobStatusResponseSchema = z.object({
  job_id: z.string(),
  status: JobStatusEnum,
  total_tasks: z.number().int(),
  finished_tasks: z.number().int(),
  tasks: z.record(z.string(), z.number().int()).describe('tasks by state'),
  waiting: z
    .record(z.string(), z.number().int())
    .optional()
    .describe('queued tasks held back, by why (spend_budget)'),
  created_at: isoTime,
  updated_at: isoTime,
  finished_at: isoTime.optional(),
  links: JobLinksSchema,
});

export const JobListResponseSchema = z.object({
  jobs: z.array(
    z.object({
      job_id: z.string(),
      status: JobStatusEnum,
      request: z.string().describe('the request, cut to 200 characters'),
      total_tasks: z.number().int(),
      created_at: isoTime,
      finished_at: isoTime.optional(),
      links: JobLinksSchema,
    }),
  ),
  next_cursor: z.string().optional().describe('pass as ?cursor= for the next page'),
});

export const CancelResponseSchema = z.object({
  job_id: z.string(),
  status: JobStatusEnum,
  links: JobLinksSchema,
});

export const CreateSourceResponseSchema = z.object({
  bundle_id: z.string(),
  upload: z.object({
    method: z.literal('PUT'),
    url: z.string().describe('presigned; the body must be exactly size_bytes long'),
    headers: z.record(z.string(), z.string()),
  }),
  expires_in: z.number().int().describe('seconds'),
  max_bytes: z.number().int(),
});

export const BundleResponseSchema = z.object({
  job_id: z.string(),
  branch: z.string(),
  base_commit: z.string(),
  head_commit: z.string(),
  url: z.string().describe('presigned GET of a git bundle of base..head'),
  size_bytes: z.number().int(),
  expires_in: z.number().int(),
});

const TaskViewSchema = z.looseObject({
  worker_id: z.string(),
  job_id: z.string(),
  task_no: z.number().int(),
  title: z.string(),
  status: TaskStateEnum,
  depth: z.number().int(),
  attempts: z.number().int(),
  output: z.string(),
  files_created: z.array(z.string()),
  duration_ms: z.number(),
  num_turns: z.number().int(),
  cost_usd: z.number(),
  error: z.string().optional(),
  started_at: isoTime.optional(),
  finished_at: isoTime.optional(),
});

export const JobResultSchema = z
  .looseObject({
    job_id: z.string(),
    status: JobStatusEnum,
    request: z.string(),
    created_at: isoTime,
    finished_at: isoTime.optional(),
    wall_time_ms: z.number().optional(),
    cost: z.looseObject({
      total_usd: z.number(),
      workers_usd: z.number(),
      planning_usd: z.number(),
      steps_usd: z.number(),
    }),
    results: z.looseObject({
      summary: z.looseObject({
        total: z.number().int(),
        succeeded: z.number().int(),
        failed: z.number().int(),
        timed_out: z.number().int(),
      }),
      tasks: z.array(TaskViewSchema),
    }),
    error: z.string().optional(),
  })
  .describe('The result of a job and every job below it, as result.json holds it');

export const HealthResponseSchema = z.object({
  status: z.literal('ok'),
  version: z.string(),
  time: isoTime,
});

export const AssignmentResponseSchema = z
  .looseObject({
    job_id: z.string(),
    task_no: z.number().int(),
    attempt: z.number().int(),
    kind: z.string(),
    title: z.string(),
    prompt: z.string(),
    timeout_sec: z.number().int(),
    permission_mode: z.string(),
    max_budget_usd: z.number(),
  })
  .describe("A worker attempt's task: the prompt and everything it needs to run it");

export const UploadLinksResponseSchema = z.object({
  files: z.array(z.object({ path: z.string(), url: z.string() })),
  refused: z.array(z.object({ path: z.string(), reason: z.string() })),
  log: z.object({ url: z.string() }).optional(),
  git: z.record(z.string(), z.object({ url: z.string() })).optional(),
  expires_in: z.number().int(),
  files_left: z.number().int(),
  bytes_left: z.number().int(),
});

export const ResultAcceptedResponseSchema = z.object({
  outcome: z.string().describe('what the server did with the result (recorded, retrying, replayed, ...)'),
  state: TaskStateEnum,
  attempt: z.number().int(),
});

export type ErrorBody = z.infer<typeof ErrorBodySchema>;
export type SubmitResponse = z.infer<typeof SubmitResponseSchema>;
export type JobStatusResponse = z.infer<typeof JobStatusResponseSchema>;
export type JobListResponse = z.infer<typeof JobListResponseSchema>;
export type CancelResponse = z.infer<typeof CancelResponseSchema>;
export type CreateSourceResponse = z.infer<typeof CreateSourceResponseSchema>;
export type BundleResponse = z.infer<typeof BundleResponseSchema>;
export type HealthResponse = z.infer<typeof HealthResponseSchema>;
