/** The ECS client and commands the orchestrator uses, for `import()` on first use (../lazy.ts). */
export { DescribeTasksCommand, ECSClient, RunTaskCommand, StopTaskCommand } from '@aws-sdk/client-ecs';
