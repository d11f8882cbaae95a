/**
 * The deployment's own CloudWatch metrics, written as EMF log lines by the
 * Lambdas (functions/handlers/lambda/runtime.ts) and read by the alarms and
 * the dashboard (infra/constructs/monitoring.ts). One namespace and one
 * `service` for every function: a metric is the same whichever emitted it.
 */

export const METRIC_NAMESPACE = 'ClaudeFleet';
/** The service name of the Lambdas' logs and metrics; Powertools adds it to each metric as a dimension. */
export const SERVICE_NAME = 'claude-orchestrator';
export const SERVICE_DIMENSION = 'service';

/** Jobs that reached a final status, counted once by whoever moved them there; dimension `status`. */
export const JOBS_FINISHED_METRIC = 'JobsFinished';
export const JOB_STATUS_DIMENSION = 'status';
