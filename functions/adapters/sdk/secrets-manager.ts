/** The Secrets Manager client and command the orchestrator uses, for `import()` on first use (../lazy.ts). */
export { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
