/** Routes for workers (task token): assignment, upload links, progress, result. */
import {
  parseGitResult,
  toWorkerOutcome,
  uploadRequestSchema,
  workerResultSchema,
} from '../../core/api-schemas.ts';
import { badRequest } from '../../core/errors.ts';
import { ProgressBodySchema } from '../../core/progress.ts';
import { isLiveAttempt } from '../../core/task-states.ts';
import { canonicalHash } from '../../core/tokens.ts';
import { recordLastEvents, recordProgress } from '../../services/progress.ts';
import { recordWorkerResult } from '../../services/record-result.ts';
import { getAssignment, storedFiles, uploadLinks } from '../../services/worker-access.ts';
import { json } from '../http.ts';
import { workerRoute } from './pipeline.ts';

// Both check that the job has not ended: its item comes in the same read as the task's.
export const assignment = workerRoute({ withJob: true }, async (_event, { deps, task, job, attempt }) =>
  json(200, await getAssignment(deps, task, attempt, job)),
);

export const uploads = workerRoute(
  { body: (deps) => uploadRequestSchema(deps.settings.limits), what: 'uploads', withJob: true },
  async (_event, { deps, task, job, body }) => json(200, await uploadLinks(deps, task, body, job)),
);

export const result = workerRoute(
  { body: (deps) => workerResultSchema(deps.settings.limits), what: 'result', withJob: true },
  async (_event, { deps, task, job, attempt, body }) => {
    const outcome = toWorkerOutcome(body);
    if (body.git !== undefined) {
      const git = parseGitResult(task.kind, body.git, deps.settings.limits);
      if (!git.ok) throw badRequest('request body is invalid', git.issues);
      outcome.git = git.value;
    }
    // The storage's listing of the attempt's files is read while its last events are stored.
    const listing = isLiveAttempt(task, attempt) ? storedFiles(deps, task, attempt) : undefined;
    listing?.catch(() => {});
    if (body.events) await recordLastEvents(deps, task, attempt, body.events);
    // The body as the schema reads it, key order aside: only this exact result may be replayed.
    const recorded = await recordWorkerResult(deps, task, outcome, canonicalHash(body), listing, job);
    return json(200, {
      outcome: recorded.outcome,
      state: recorded.task.state,
      attempt: recorded.task.attempt,
    });
  },
);

/** What the worker is doing, and the new part of its log; also its heartbeat. */
export const progress = workerRoute(
  { body: () => ProgressBodySchema, what: 'progress' },
  async (_event, { deps, task, body }) => json(200, await recordProgress(deps, task, body)),
);
