/**
 * Task tokens sealed with KMS for the trip through ECS. RunTask overrides are
 * visible to anyone who may call DescribeTasks and are recorded by CloudTrail,
 * so the dispatcher puts only a KMS ciphertext there. The encryption context
 * binds the ciphertext to one task attempt: a ciphertext moved to another
 * attempt's container does not decrypt.
 */
import type { KMSClient } from '@aws-sdk/client-kms';
import type { TaskTokenScope } from '../core/tokens.ts';
import { taskIdEnv } from '../core/worker-identity.ts';
import { type ClientSource, clientOf, lazy } from './lazy.ts';

/** The KMS commands, imported once on first use (each `import()` call resolves the module again). */
const kmsCommands = lazy(() => import('./sdk/kms.ts'));

/** KMS calls are small: fail fast and let the caller's retry policy decide. */
const KMS_TIMEOUT_MS = 5_000;

export interface TokenSealer {
  seal(token: string, scope: TaskTokenScope): Promise<string>;
  /** Starts loading what sealing needs, without waiting for it (see `Launcher.prepare`). */
  prepare?(): void;
}

export interface TokenUnsealer {
  unseal(sealed: string, scope: TaskTokenScope): Promise<string>;
}

/** The KMS encryption context of one attempt's token; the key policy can require it. */
export function sealContext(scope: TaskTokenScope): Record<string, string> {
  return { 'fleet:task': taskIdEnv(scope) };
}

type KmsLike = Pick<KMSClient, 'send'>;

/** The KMS package and the client, both on first use: a Lambda that seals no token never loads them. */
function kmsSdk(client: () => Promise<KmsLike>) {
  return Promise.all([kmsCommands(), client()]);
}

export function kmsTokenSealer(source: ClientSource<KmsLike>, keyId: string): TokenSealer {
  const client = clientOf(source);
  return {
    prepare() {
      // A failure to load is thrown again by the seal that awaits it.
      kmsSdk(client).catch(() => {});
    },
    async seal(token, scope) {
      const [{ EncryptCommand }, kms] = await kmsSdk(client);
      const out = await kms.send(
        new EncryptCommand({
          KeyId: keyId,
          Plaintext: Buffer.from(token, 'utf8'),
          EncryptionContext: sealContext(scope),
        }),
        { abortSignal: AbortSignal.timeout(KMS_TIMEOUT_MS) },
      );
      if (!out.CiphertextBlob) throw new Error('KMS Encrypt returned no ciphertext');
      return Buffer.from(out.CiphertextBlob).toString('base64');
    },
  };
}

export function kmsTokenUnsealer(source: ClientSource<KmsLike>): TokenUnsealer {
  const client = clientOf(source);
  return {
    async unseal(sealed, scope) {
      const [{ DecryptCommand }, kms] = await kmsSdk(client);
      const out = await kms.send(
        new DecryptCommand({
          CiphertextBlob: Buffer.from(sealed, 'base64'),
          EncryptionContext: sealContext(scope),
        }),
        { abortSignal: AbortSignal.timeout(KMS_TIMEOUT_MS) },
      );
      if (!out.Plaintext) throw new Error('KMS Decrypt returned no plaintext');
      return Buffer.from(out.Plaintext).toString('utf8');
    },
  };
}
