/** Lambda entry point: the REQUEST authorizer; AUTH_KIND says which credential this one checks. */
import { z } from 'zod';
import { awsClients } from '../../adapters/aws-clients.ts';
import { JobStore } from '../../adapters/job-store.ts';
import { createAuthorizer } from '../authorizer.ts';
import { log, readEnv } from './runtime.ts';

const env = readEnv(z.object({ TABLE_NAME: z.string().min(1), AUTH_KIND: z.enum(['caller', 'worker']) }));

export const handler = createAuthorizer(new JobStore(awsClients().ddb, env.TABLE_NAME), env.AUTH_KIND, log);
