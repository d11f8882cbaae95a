/** Job, task and attempt records for pure-core tests: complete by default, any field overridable. */
import type { AttemptRecord, JobRecord, TaskRecord, TaskResultSummary } from '../../functions/core/model.ts';

export const T0 = '2025-03-01T10:00:00.000Z';

export function makeJob(overrides: Partial<JobRecord> = {}): JobRecord {
  const jobId = overrides.jobId ?? 'job-a';
  return {
    jobId,
    tenant: 'tenant-1',
    status: 'completed',
    request: 'Build a small website',
    config: {
      maxWorkers: 5,
      defaultTimeoutSec: 600,
      maxRetries: 2,
      enableRecursion: false,
      maxRecursionDepth: 2,
      maxBudgetUsd: 10,
    },
    depth: 0,
    rootJobId: jobId,
    path: '',
    totalTasks: 3,
    finishedTasks: [1, 2, 3],
    createdAt: T0,
    updatedAt: '2025-03-01T10:01:05.000Z',
    finishedAt: '2025-03-01T10:01:05.000Z',
    requestHash: 'hash',
    ...overrides,
  };
}

export function makeResult(overrides: Partial<TaskResultSummary> = {}): TaskResultSummary {
  return {
    output: 'done',
    outputTruncated: false,
    filesCreated: [],
    costUsd: 0.01,
    numTurns: 4,
    durationMs: 20_000,
    ...overrides,
  };
}

export function makeAttempt(attempt: number, overrides: Partial<AttemptRecord> = {}): AttemptRecord {
  return { attempt, state: 'succeeded', finishedAt: `2025-03-01T10:0${attempt}:00.000Z`, ...overrides };
}

export function makeTask(taskNo: number, overrides: Partial<TaskRecord> = {}): TaskRecord {
  const jobId = overrides.jobId ?? 'job-a';
  return {
    jobId,
    taskNo,
    kind: taskNo === 0 ? 'plan' : 'work',
    title: taskNo === 0 ? 'Plan' : `Task ${taskNo}`,
    prompt: `Do part ${taskNo}`,
    state: 'succeeded',
    attempt: 1,
    maxRetries: 2,
    timeoutSec: 600,
    depth: 0,
    rootJobId: overrides.rootJobId ?? jobId,
    jobPath: '',
    createdAt: T0,
    updatedAt: T0,
    attempts: [],
    ...overrides,
  };
}
