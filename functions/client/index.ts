/** `claude-fleet/client`: the TypeScript client of the orchestrator's HTTP API. */
export * from './orchestrator-client.ts';
