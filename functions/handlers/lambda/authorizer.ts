/** Lambda entry point: the caller routes' REQUEST authorizer (API key, or a worker's task token). */
import * as z from 'zod';
import { lambdaClients } from '../../adapters/lambda-clients.ts';
import { tableStores } from '../../adapters/table-stores.ts';
import { createAuthorizer } from '../authorizer.ts';
import { log, readEnv } from './runtime.ts';

const env = readEnv(z.object({ TABLE_NAME: z.string().min(1) }));

export const handler = createAuthorizer(tableStores(lambdaClients().ddb, env.TABLE_NAME), log);
