/** Lambda entry point: every HTTP API route. */
import { aggregateJob } from '../../services/aggregate.ts';
import { createApiHandler } from '../api/router.ts';
import { depsFromEnv } from './runtime.ts';

// The API may write reports (PutObject on the bucket): a small job's last result writes them at once.
export const handler = createApiHandler({ ...depsFromEnv(), aggregateInline: aggregateJob });
