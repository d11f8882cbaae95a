/**
 * The task token never travels in the clear through ECS: the launcher puts a
 * KMS ciphertext bound to the attempt in the RunTask overrides, and the worker
 * unseals it. A fake KMS here behaves as KMS does for symmetric keys: the
 * encryption context is authenticated data, so a ciphertext only decrypts
 * under the context it was sealed with.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { DecryptCommand, EncryptCommand } from '@aws-sdk/client-kms';
import { describe, expect, it } from 'vitest';
import { resolveTaskToken } from '../../container/task-token.ts';
import { EcsLauncher, type EcsLike } from '../../functions/adapters/ecs-launcher.ts';
import { LaunchRefusedError, type LaunchRequest } from '../../functions/adapters/launcher.ts';
import { kmsTokenSealer, kmsTokenUnsealer, SEALED_TOKEN_ENV } from '../../functions/adapters/token-seal.ts';
import { taskIdEnv } from '../../functions/core/tokens.ts';

class FakeKms {
  private readonly key = randomBytes(32);
  readonly calls: string[] = [];
  async send(command: unknown): Promise<unknown> {
    this.calls.push((command as object).constructor.name);
    const aad = (ctx: Record<string, string> | undefined) =>
      Buffer.from(JSON.stringify(Object.entries(ctx ?? {}).sort()), 'utf8');
    if (command instanceof EncryptCommand) {
      const iv = randomBytes(12);
      const c = createCipheriv('aes-256-gcm', this.key, iv).setAAD(aad(command.input.EncryptionContext));
      const body = Buffer.concat([c.update(command.input.Plaintext as Uint8Array), c.final()]);
      return { CiphertextBlob: Buffer.concat([iv, c.getAuthTag(), body]) };
    }
    if (command instanceof DecryptCommand) {
      const blob = Buffer.from(command.input.CiphertextBlob as Uint8Array);
      const d = createDecipheriv('aes-256-gcm', this.key, blob.subarray(0, 12))
        .setAAD(aad(command.input.EncryptionContext))
        .setAuthTag(blob.subarray(12, 28));
      try {
        return { Plaintext: Buffer.concat([d.update(blob.subarray(28)), d.final()]) };
      } catch {
        throw Object.assign(new Error('InvalidCiphertextException'), { name: 'InvalidCiphertextException' });
      }
    }
    throw new Error('unexpected KMS command');
  }
}

const REQUEST: LaunchRequest = {
  jobId: '0123456789abcdef0123',
  taskNo: 2,
  attempt: 1,
  taskToken: `tt1.0123456789abcdef0123.2.1.${'A'.repeat(43)}`,
  timeoutSec: 600,
  kind: 'work',
};

function launcherWith(ecs: EcsLike, kms: FakeKms | { send(): Promise<never> }) {
  return new EcsLauncher(
    ecs,
    {
      cluster: 'fleet',
      taskDefinition: 'fleet-worker',
      containerName: 'worker',
      subnets: ['subnet-a'],
      securityGroups: ['sg-1'],
      assignPublicIp: false,
      capacityProvider: 'FARGATE',
      tokenSealer: kmsTokenSealer(kms, 'alias/fleet-task-tokens'),
    },
    { maxAttempts: 2, baseDelayMs: 0, sleep: async () => {} },
  );
}

function runTaskCalls(): { ecs: EcsLike; inputs: Record<string, unknown>[] } {
  const inputs: Record<string, unknown>[] = [];
  let n = 0;
  return {
    inputs,
    ecs: {
      async send(command: unknown) {
        inputs.push(structuredClone((command as { input: Record<string, unknown> }).input));
        n += 1;
        // The first try times out: the retry must send the very same request.
        if (n === 1) throw Object.assign(new Error('timeout'), { name: 'TimeoutError', $metadata: {} });
        return { tasks: [{ taskArn: 'arn:aws:ecs:eu-west-1:1:task/fleet/abc' }], failures: [] };
      },
    },
  };
}

describe('task tokens in the RunTask request', () => {
  it('the overrides carry a sealed token, never the token itself, and retries resend the same ciphertext', async () => {
    const kms = new FakeKms();
    const { ecs, inputs } = runTaskCalls();
    await launcherWith(ecs, kms).launch(REQUEST);
    expect(inputs).toHaveLength(2);
    expect(inputs[1]).toEqual(inputs[0]);
    const serialized = JSON.stringify(inputs[0]);
    expect(serialized).not.toContain(REQUEST.taskToken);
    expect(serialized).not.toContain('A'.repeat(43));
    type Overrides = { containerOverrides: { environment: { name: string; value: string }[] }[] };
    const overrides = (inputs[0] as { overrides: Overrides }).overrides;
    const env = Object.fromEntries(
      (overrides.containerOverrides[0]?.environment ?? []).map((e) => [e.name, e.value]),
    );
    expect(Object.keys(env).sort()).toEqual(['TASK_ID', SEALED_TOKEN_ENV].sort());
    expect(kms.calls).toEqual(['EncryptCommand']);

    // The worker of that attempt gets the token back.
    const resolved = await resolveTaskToken(env, () => kmsTokenUnsealer(kms));
    expect(resolved).toEqual({ token: REQUEST.taskToken });
  });

  it('a sealed token moved to another attempt does not unseal', async () => {
    const kms = new FakeKms();
    const sealed = await kmsTokenSealer(kms, 'k').seal(REQUEST.taskToken, REQUEST);
    const otherAttempt = { ...REQUEST, attempt: 2 };
    const resolved = await resolveTaskToken(
      { [SEALED_TOKEN_ENV]: sealed, TASK_ID: taskIdEnv(otherAttempt) },
      () => kmsTokenUnsealer(kms),
    );
    expect(resolved).toEqual({ error: expect.stringContaining('cannot unseal the task token') });
  });

  it('a worker without a token or without its TASK_ID says which is missing', async () => {
    const kms = new FakeKms();
    expect(await resolveTaskToken({}, () => kmsTokenUnsealer(kms))).toEqual({
      error: expect.stringContaining('neither TASK_TOKEN nor TASK_TOKEN_SEALED'),
    });
    expect(await resolveTaskToken({ [SEALED_TOKEN_ENV]: 'abc' }, () => kmsTokenUnsealer(kms))).toEqual({
      error: expect.stringContaining('TASK_ID'),
    });
    expect(kms.calls).toEqual([]);
  });

  it('when KMS is unavailable nothing starts and the launch is retried later', async () => {
    const ecs = { send: async () => ({ tasks: [{ taskArn: 'x' }] }) };
    const calls: unknown[] = [];
    const failing = {
      send: async (c: unknown) => {
        calls.push(c);
        throw Object.assign(new Error('KMS is throttling'), { name: 'ThrottlingException' });
      },
    };
    const recording = {
      send: async (c: unknown) => {
        calls.push(c);
        return ecs.send();
      },
    };
    const err = await launcherWith(recording, failing as never)
      .launch(REQUEST)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LaunchRefusedError);
    expect((err as LaunchRefusedError).retryable).toBe(true);
    expect((err as Error).message).toContain('cannot seal the token');
    expect(calls.filter((c) => !(c instanceof EncryptCommand))).toEqual([]);
  });
});
