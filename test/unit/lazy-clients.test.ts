/**
 * Clients made on first use (functions/adapters/lazy.ts): the adapters take
 * a client or a function that makes it, make it once, and only when a call
 * needs it; the launcher can start loading its clients before a launch.
 */

import { RunTaskCommand } from '@aws-sdk/client-ecs';
import { EncryptCommand } from '@aws-sdk/client-kms';
import { describe, expect, it } from 'vitest';
import { Artifacts } from '../../functions/adapters/artifacts.ts';
import { EcsLauncher } from '../../functions/adapters/ecs-launcher.ts';
import type { EcsLike } from '../../functions/adapters/ecs-task-monitor.ts';
import { clientOf, lazy } from '../../functions/adapters/lazy.ts';
import { kmsTokenSealer } from '../../functions/adapters/token-seal.ts';
import { WorkQueue } from '../../functions/adapters/work-queue.ts';

/** A client factory that counts how often it is called. */
function counted<C>(client: C): { make: () => Promise<C>; made: () => number } {
  let n = 0;
  return {
    make: async () => {
      n += 1;
      return client;
    },
    made: () => n,
  };
}

describe('lazy', () => {
  it('makes once on first use and shares the result', async () => {
    const f = counted({ id: 1 });
    const get = lazy(f.make);
    expect(f.made()).toBe(0);
    const [a, b] = await Promise.all([get(), get()]);
    expect(a).toBe(b);
    await get();
    expect(f.made()).toBe(1);
  });

  it('keeps no failure: the next use tries again', async () => {
    let n = 0;
    const get = lazy(async () => {
      n += 1;
      if (n === 1) throw new Error('first try fails');
      return n;
    });
    await expect(get()).rejects.toThrow('first try fails');
    expect(await get()).toBe(2);
    expect(await get()).toBe(2);
  });

  it('clientOf takes a client as it is', async () => {
    const client = { send: async () => 'ok' };
    expect(await clientOf(client)()).toBe(client);
  });
});

describe('adapters given a function that makes the client', () => {
  it('WorkQueue makes its SQS client on the first send, and not for an empty batch', async () => {
    const sent: unknown[] = [];
    const f = counted({ send: async (c: unknown) => sent.push(c) });
    const queue = new WorkQueue(f.make as never, 'https://sqs.example/q');
    await queue.sendAll([]);
    expect(f.made()).toBe(0);
    await queue.send({ type: 'aggregate', jobId: 'j' });
    await queue.send({ type: 'aggregate', jobId: 'j' });
    expect(f.made()).toBe(1);
    expect(sent).toHaveLength(2);
  });

  it('Artifacts makes its S3 client on the first call', async () => {
    const f = counted({ send: async () => ({}) });
    const artifacts = new Artifacts(f.make as never, 'bucket');
    expect(artifacts.uri('a/b')).toBe('s3://bucket/a/b');
    expect(f.made()).toBe(0);
    await artifacts.putText('a/b', 'text', 'text/plain');
    expect(f.made()).toBe(1);
  });

  it('the ECS launcher makes its clients when prepared, once, and launches with them', async () => {
    const calls: string[] = [];
    const ecs = counted<EcsLike>({
      send: async (command) => {
        calls.push((command as object).constructor.name);
        expect(command).toBeInstanceOf(RunTaskCommand);
        return { tasks: [{ taskArn: 'arn:aws:ecs:eu-west-1:1:task/c/t' }], failures: [] };
      },
    });
    const kms = counted({
      send: async (command: unknown) => {
        expect(command).toBeInstanceOf(EncryptCommand);
        return { CiphertextBlob: new Uint8Array([1, 2, 3]) };
      },
    });
    const launcher = new EcsLauncher(ecs.make, {
      cluster: 'c',
      taskDefinition: 'td',
      containerName: 'worker',
      subnets: ['s'],
      securityGroups: [],
      assignPublicIp: false,
      capacityProvider: 'FARGATE',
      tokenSealer: kmsTokenSealer(kms.make as never, 'alias/k'),
    });
    expect([ecs.made(), kms.made()]).toEqual([0, 0]);
    launcher.prepare();
    launcher.prepare();
    const { handle } = await launcher.launch({
      jobId: 'job',
      taskNo: 1,
      attempt: 1,
      taskToken: 'token',
      timeoutSec: 60,
      kind: 'work',
    });
    expect(handle).toBe('arn:aws:ecs:eu-west-1:1:task/c/t');
    expect([ecs.made(), kms.made()]).toEqual([1, 1]);
    expect(calls).toEqual(['RunTaskCommand']);
  });
});
