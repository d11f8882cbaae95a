/** The KMS client and commands the orchestrator uses, for `import()` on first use (../lazy.ts). */
export { DecryptCommand, EncryptCommand, KMSClient } from '@aws-sdk/client-kms';
