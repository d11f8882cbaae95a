/**
 * The Lambda REQUEST authorizer of the caller routes: an API key, or a task
 * token (a worker creating or reading its child jobs). Worker routes have no
 * authorizer: their handler reads the task anyway and checks the token with
 * that one read. It answers with an Allow policy for the whole API and the
 * principal as context; anything else is API Gateway's 401. Answers are not
 * cached: a revoked key or an ended attempt stops working at once.
 */
import type { APIGatewayAuthorizerResult, APIGatewayRequestAuthorizerEvent } from 'aws-lambda';
import type { ApiKeyStore } from '../adapters/api-key-store.ts';
import type { TaskStore } from '../adapters/task-store.ts';
import { authorizeApiKey, authorizeTaskToken, type Principal } from '../services/auth.ts';
import type { Log } from '../services/deps.ts';
import { principalContext } from './http.ts';
import { API_KEY_HEADER, TASK_TOKEN_HEADER } from './routes.ts';

/** API Gateway turns exactly this error message into a 401. */
export const UNAUTHORIZED = 'Unauthorized';

export function createAuthorizer(stores: { keys: ApiKeyStore; tasks: TaskStore }, log: Log) {
  return async (event: APIGatewayRequestAuthorizerEvent): Promise<APIGatewayAuthorizerResult> => {
    const apiKey = headerValue(event.headers, API_KEY_HEADER);
    const token = apiKey === undefined ? headerValue(event.headers, TASK_TOKEN_HEADER) : undefined;
    const credential = apiKey ?? token;
    const principal: Principal | undefined =
      apiKey !== undefined
        ? await authorizeApiKey(stores.keys, apiKey)
        : await authorizeTaskToken(stores.tasks, token);
    if (!principal) {
      log.warn('request refused by authorizer', {
        presented: credential !== undefined,
        path: event.path,
      });
      throw new Error(UNAUTHORIZED);
    }
    return {
      principalId:
        principal.kind === 'caller'
          ? `${principal.tenant}/${principal.keyId}`
          : `task/${principal.jobId}/${principal.taskNo}`,
      policyDocument: {
        Version: '2012-10-17',
        Statement: [{ Action: 'execute-api:Invoke', Effect: 'Allow', Resource: apiWideArn(event.methodArn) }],
      },
      context: principalContext(principal),
    };
  };
}

/** `arn:...:api-id/stage/METHOD/path` -> `arn:...:api-id/stage/*`. */
function apiWideArn(methodArn: string): string {
  const [prefix, apiId, stage] = methodArn.split('/');
  return apiId && stage ? `${prefix}/${apiId}/${stage}/*` : methodArn;
}

function headerValue(headers: Record<string, string | undefined> | null, name: string): string | undefined {
  for (const [k, v] of Object.entries(headers ?? {})) if (k.toLowerCase() === name && v) return v;
  return undefined;
}
