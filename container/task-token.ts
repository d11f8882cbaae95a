/**
 * Where the worker gets its task token: `TASK_TOKEN` locally, or on Fargate
 * `TASK_TOKEN_SEALED`, a KMS ciphertext bound to this attempt (TASK_ID), which
 * the task role may decrypt. The plain token then lives only in this process
 * and the sessions it starts, never in the RunTask request.
 */
import type { TokenUnsealer } from '../functions/adapters/token-seal.ts';
import { parseTaskIdEnv, WORKER_ENV } from '../functions/core/worker-identity.ts';

export type TokenSource = { token: string } | { error: string };

/** The KMS client is loaded only for a sealed token: a local worker never needs it. */
async function kmsUnsealer(): Promise<TokenUnsealer> {
  const [{ KMSClient }, { kmsTokenUnsealer }] = await Promise.all([
    import('@aws-sdk/client-kms'),
    import('../functions/adapters/token-seal.ts'),
  ]);
  return kmsTokenUnsealer(new KMSClient({ maxAttempts: 3 }));
}

export async function resolveTaskToken(
  env: NodeJS.ProcessEnv,
  unsealer: () => TokenUnsealer | Promise<TokenUnsealer> = kmsUnsealer,
): Promise<TokenSource> {
  const plain = env[WORKER_ENV.taskToken];
  if (plain) return { token: plain };
  const sealed = env[WORKER_ENV.sealedTaskToken];
  if (!sealed) return { error: 'neither TASK_TOKEN nor TASK_TOKEN_SEALED is set' };
  const scope = parseTaskIdEnv(env[WORKER_ENV.taskId] ?? '');
  if (!scope) return { error: 'TASK_TOKEN_SEALED needs a valid TASK_ID (<job>/<task>/<attempt>)' };
  try {
    return { token: await (await unsealer()).unseal(sealed, scope) };
  } catch (err) {
    return { error: `cannot unseal the task token: ${(err as Error).message}` };
  }
}
