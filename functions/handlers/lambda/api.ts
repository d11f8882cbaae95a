/** Lambda entry point: every HTTP API route. */
import { createApiHandler } from '../api/router.ts';
import { depsFromEnv } from './runtime.ts';

export const handler = createApiHandler(depsFromEnv());
