/** Lambda entry point: the caller routes' REQUEST authorizer (API key, or a worker's task token). */
import * as z from 'zod';
import { awsClients } from '../../adapters/aws-clients.ts';
import { JobStore } from '../../adapters/job-store.ts';
import { createAuthorizer } from '../authorizer.ts';
import { log, readEnv } from './runtime.ts';

const env = readEnv(z.object({ TABLE_NAME: z.string().min(1) }));

export const handler = createAuthorizer(new JobStore(awsClients().ddb, env.TABLE_NAME), log);
