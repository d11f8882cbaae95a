/** The SQS client and commands the orchestrator uses, for `import()` on first use (../lazy.ts). */
export { SendMessageBatchCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
