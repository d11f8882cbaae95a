/** The Bedrock client and commands the orchestrator uses, for `import()` on first use (../lazy.ts). */
export {
  BedrockRuntimeClient,
  InvokeModelCommand,
  InvokeModelWithResponseStreamCommand,
} from '@aws-sdk/client-bedrock-runtime';
