/**
 * A worker's identity: the TASK_ID its launcher gives it and the reconciler
 * reads back, the variables it reads its token from, and the ECS client
 * token and startedBy derived from the same ids.
 */
import { describe, expect, it } from 'vitest';
import { sealContext } from '../../functions/adapters/token-seal.ts';
import {
  attemptOfEnvironment,
  clientTokenFor,
  parseTaskIdEnv,
  startedByFor,
  taskIdEnv,
  WORKER_ENV,
  workerIdentityEnv,
} from '../../functions/core/worker-identity.ts';

const REQUEST = {
  jobId: '0123456789abcdef0123',
  taskNo: 2,
  attempt: 1,
  taskToken: `tt1.0123456789abcdef0123.2.1.${'A'.repeat(43)}`,
};

describe('taskIdEnv and parseTaskIdEnv', () => {
  it('round-trips job, task and attempt', () => {
    for (const ids of [
      { jobId: '0123456789abcdef0123', taskNo: 1, attempt: 1 },
      { jobId: 'a_b-C', taskNo: 0, attempt: 0 },
      { jobId: 'z'.repeat(64), taskNo: 999_999, attempt: 9_999 },
    ]) {
      expect(parseTaskIdEnv(taskIdEnv(ids))).toEqual(ids);
    }
    expect(taskIdEnv(REQUEST)).toBe('0123456789abcdef0123/2/1');
  });

  it('rejects malformed values', () => {
    for (const value of [
      '',
      'job',
      'job/1',
      'job/1/2/3',
      'job/x/1',
      'job/1/-1',
      'job/01/1',
      'job/1/1.5',
      'jo b/1/1',
      'job/1/1 ',
      '/1/1',
      `${'z'.repeat(65)}/1/1`,
      'job/1234567/1',
    ]) {
      expect(parseTaskIdEnv(value)).toBeUndefined();
    }
  });

  it('is the attempt KMS binds a sealed token to', () => {
    expect(sealContext(REQUEST)).toEqual({ 'fleet:task': taskIdEnv(REQUEST) });
  });
});

describe('workerIdentityEnv', () => {
  it('gives TASK_ID and the plain token, or only the sealed one', () => {
    expect(workerIdentityEnv(REQUEST)).toEqual({
      TASK_ID: '0123456789abcdef0123/2/1',
      TASK_TOKEN: REQUEST.taskToken,
    });
    const sealed = workerIdentityEnv(REQUEST, 'c2VhbGVk');
    expect(sealed).toEqual({ TASK_ID: '0123456789abcdef0123/2/1', TASK_TOKEN_SEALED: 'c2VhbGVk' });
    expect(JSON.stringify(sealed)).not.toContain(REQUEST.taskToken);
    expect(Object.keys(sealed)).toEqual([WORKER_ENV.taskId, WORKER_ENV.sealedTaskToken]);
  });
});

describe('attemptOfEnvironment', () => {
  it('reads the attempt from the TASK_ID of an ECS container environment', () => {
    const env = [
      { name: 'TASK_TOKEN_SEALED', value: 'secret' },
      { name: 'TASK_ID', value: '0123456789abcdef0123/2/1' },
    ];
    expect(attemptOfEnvironment(env)).toEqual({ jobId: '0123456789abcdef0123', taskNo: 2, attempt: 1 });
  });

  it('is undefined without a valid TASK_ID', () => {
    expect(attemptOfEnvironment([])).toBeUndefined();
    expect(attemptOfEnvironment([{ name: 'TASK_ID' }])).toBeUndefined();
    expect(attemptOfEnvironment([{ name: 'TASK_ID', value: 'not/an/id' }])).toBeUndefined();
    expect(attemptOfEnvironment([{ name: 'OTHER', value: 'job/1/1' }])).toBeUndefined();
  });
});

describe('clientTokenFor', () => {
  const ascii = /^[\x21-\x7e]{1,64}$/;

  it('is deterministic, at most 64 printable ASCII characters, and differs per job, task, attempt and task token', () => {
    const token = clientTokenFor(REQUEST);
    expect(token).toMatch(ascii);
    expect(clientTokenFor({ ...REQUEST })).toBe(token);
    const others = [
      clientTokenFor({ ...REQUEST, attempt: 2 }),
      clientTokenFor({ ...REQUEST, taskNo: 3 }),
      clientTokenFor({ ...REQUEST, jobId: 'fedcba98765432100123' }),
      // A redelivered dispatch of the same attempt mints a new task token: a distinct RunTask, never a ConflictException.
      clientTokenFor({ ...REQUEST, taskToken: `${REQUEST.taskToken}x` }),
    ];
    expect(new Set([token, ...others]).size).toBe(5);
  });

  it('stays within 64 characters and distinct for the longest job ids', () => {
    const jobId = 'z'.repeat(64);
    const taskToken = REQUEST.taskToken;
    const a = clientTokenFor({ jobId, taskNo: 999_999, attempt: 1, taskToken });
    const b = clientTokenFor({ jobId, taskNo: 999_999, attempt: 2, taskToken });
    expect(a).toMatch(ascii);
    expect(b).toMatch(ascii);
    expect(a).not.toBe(b);
    expect(clientTokenFor({ jobId, taskNo: 999_999, attempt: 1, taskToken })).toBe(a);
  });
});

describe('startedByFor', () => {
  it('is the job id, cut to 36 characters, in the alphabet ECS accepts', () => {
    expect(startedByFor('0123456789abcdef0123')).toBe('0123456789abcdef0123');
    expect(startedByFor('j'.repeat(64))).toBe('j'.repeat(36));
    expect(startedByFor('a.b c/d_e-f')).toBe('a_b_c/d_e-f');
    expect(startedByFor(`${'x'.repeat(35)}😀`)).toBe(`${'x'.repeat(35)}_`);
    expect(startedByFor('😀'.repeat(40))).toMatch(/^[A-Za-z0-9_/-]{36}$/);
  });
});
