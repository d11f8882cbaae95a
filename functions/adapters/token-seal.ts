/**
 * Task tokens sealed with KMS for the trip through ECS. RunTask overrides are
 * visible to anyone who may call DescribeTasks and are recorded by CloudTrail,
 * so the dispatcher puts only a KMS ciphertext there. The encryption context
 * binds the ciphertext to one task attempt: a ciphertext moved to another
 * attempt's container does not decrypt.
 */
import { DecryptCommand, EncryptCommand, type KMSClient } from '@aws-sdk/client-kms';
import type { TaskTokenScope } from '../core/tokens.ts';
import { taskIdEnv } from '../core/worker-identity.ts';

/** KMS calls are small: fail fast and let the caller's retry policy decide. */
const KMS_TIMEOUT_MS = 5_000;

export interface TokenSealer {
  seal(token: string, scope: TaskTokenScope): Promise<string>;
}

export interface TokenUnsealer {
  unseal(sealed: string, scope: TaskTokenScope): Promise<string>;
}

/** The KMS encryption context of one attempt's token; the key policy can require it. */
export function sealContext(scope: TaskTokenScope): Record<string, string> {
  return { 'fleet:task': taskIdEnv(scope) };
}

type KmsLike = Pick<KMSClient, 'send'>;

export function kmsTokenSealer(kms: KmsLike, keyId: string): TokenSealer {
  return {
    async seal(token, scope) {
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

export function kmsTokenUnsealer(kms: KmsLike): TokenUnsealer {
  return {
    async unseal(sealed, scope) {
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
