/**
 * Every route of the HTTP API, in one table that the API handler, the local
 * server and the CDK app all read, so the three cannot drift apart.
 */
/**
 * `caller` routes take an API key (`X-API-Key`) or, for a worker acting as a
 * caller (child jobs, spawn-and-wait), its task token (`X-Task-Token`); the
 * handler decides what each may do. `worker` routes take only a task token.
 * `public` routes (health, the OpenAPI document) take none and read nothing
 * of any tenant.
 */
export type RouteAuth = 'caller' | 'worker' | 'public';

export interface RouteSpec {
  method: 'GET' | 'POST';
  /** API Gateway resource path with `{param}` segments. */
  resource: string;
  /** Which authorizer guards the route. */
  auth: RouteAuth;
  name: string;
  /**
   * Served by the streaming function (REST API response streaming on AWS):
   * JSON as usual, or server-sent events when asked with `Accept: text/event-stream`.
   */
  stream?: true;
}

export const ROUTES: readonly RouteSpec[] = [
  { method: 'GET', resource: '/api/v1/health', auth: 'public', name: 'health' },
  { method: 'GET', resource: '/api/v1/openapi.json', auth: 'public', name: 'openapi' },
  { method: 'POST', resource: '/api/v1/orchestrate', auth: 'caller', name: 'submit' },
  { method: 'POST', resource: '/api/v1/sources', auth: 'caller', name: 'createSource' },
  { method: 'GET', resource: '/api/v1/jobs', auth: 'caller', name: 'listJobs' },
  { method: 'GET', resource: '/api/v1/jobs/{id}', auth: 'caller', name: 'getJob' },
  { method: 'GET', resource: '/api/v1/jobs/{id}/status', auth: 'caller', name: 'getStatus' },
  { method: 'GET', resource: '/api/v1/jobs/{id}/report', auth: 'caller', name: 'getReport' },
  { method: 'GET', resource: '/api/v1/jobs/{id}/patch', auth: 'caller', name: 'getPatch' },
  { method: 'GET', resource: '/api/v1/jobs/{id}/bundle', auth: 'caller', name: 'getBundle' },
  { method: 'POST', resource: '/api/v1/jobs/{id}/cancel', auth: 'caller', name: 'cancel' },
  { method: 'GET', resource: '/api/v1/jobs/{id}/events', auth: 'caller', name: 'getEvents', stream: true },
  { method: 'GET', resource: '/api/v1/jobs/{id}/logs/{worker}', auth: 'caller', name: 'getLog' },
  {
    method: 'GET',
    resource: '/api/v1/jobs/{id}/tasks/{taskNo}/assignment',
    auth: 'worker',
    name: 'assignment',
  },
  { method: 'POST', resource: '/api/v1/jobs/{id}/tasks/{taskNo}/uploads', auth: 'worker', name: 'uploads' },
  { method: 'POST', resource: '/api/v1/jobs/{id}/tasks/{taskNo}/result', auth: 'worker', name: 'result' },
  { method: 'POST', resource: '/api/v1/jobs/{id}/tasks/{taskNo}/progress', auth: 'worker', name: 'progress' },
] as const;

export const API_KEY_HEADER = 'x-api-key';
export const TASK_TOKEN_HEADER = 'x-task-token';
/** `x-child-mode: handoff | wait` on a worker's submit (see services/children.ts). */
export const CHILD_MODE_HEADER = 'x-child-mode';
/** On a hand-off, what the worker spent deciding to split: its attempt's spend ends there. */
export const DECIDE_COST_HEADER = 'x-decide-cost-usd';
/**
 * On a hand-off in a repository job: the commit of the worker's checkout, held
 * by its uploaded snapshot bundle; the child job starts from it.
 */
export const SOURCE_COMMIT_HEADER = 'x-source-commit';

/** Matches a concrete path to a route, API Gateway style: literal segments, `{param}` matches one segment. */
export function matchRoute(
  method: string,
  path: string,
): { route: RouteSpec; pathParameters: Record<string, string> } | { route?: undefined; allowed: string[] } {
  const segments = path.replace(/\/+$/, '').split('/');
  const allowed: string[] = [];
  for (const route of ROUTES) {
    const pattern = route.resource.split('/');
    if (pattern.length !== segments.length) continue;
    const params: Record<string, string> = {};
    const ok = pattern.every((p, i) => {
      const s = segments[i] as string;
      if (p.startsWith('{') && p.endsWith('}')) {
        if (s === '') return false;
        try {
          params[p.slice(1, -1)] = decodeURIComponent(s);
          return true;
        } catch {
          // Broken percent-encoding names no resource.
          return false;
        }
      }
      return p === s;
    });
    if (!ok) continue;
    if (route.method === method) return { route, pathParameters: params };
    allowed.push(route.method);
  }
  return { allowed };
}
