/** The UpdateItem builder the stores share: what it joins, and what it leaves out. */
import { describe, expect, it } from 'vitest';
import { combine, conditional, oneOf, updateInput } from '../../functions/adapters/dynamo-ops.ts';

const key = { PK: 'JOB#j1', SK: 'META' };

describe('updateInput', () => {
  it('joins the actions per clause, SET then REMOVE then ADD, and the conditions with AND', () => {
    expect(
      updateInput('t', {
        key,
        add: ['n :one'],
        remove: ['a', 'b'],
        set: ['x = :x', 'y = :y'],
        conditions: ['attribute_exists(PK)', '#s = :s'],
        names: { '#s': 'status' },
        values: { ':x': 1, ':y': 2, ':one': 1, ':s': 'running' },
        returnValues: 'ALL_NEW',
      }),
    ).toEqual({
      TableName: 't',
      Key: key,
      UpdateExpression: 'SET x = :x, y = :y REMOVE a, b ADD n :one',
      ConditionExpression: 'attribute_exists(PK) AND #s = :s',
      ExpressionAttributeNames: { '#s': 'status' },
      ExpressionAttributeValues: { ':x': 1, ':y': 2, ':one': 1, ':s': 'running' },
      ReturnValues: 'ALL_NEW',
    });
  });

  it('leaves out empty clauses, conditions, names and values (DynamoDB refuses empty maps)', () => {
    expect(
      updateInput('t', { key, set: ['x = :x'], remove: [], add: [], conditions: [], names: {} }),
    ).toEqual({
      TableName: 't',
      Key: key,
      UpdateExpression: 'SET x = :x',
    });
  });
});

describe('combine', () => {
  it('joins parts in order and skips the absent ones', () => {
    const parts = combine(
      { set: ['updatedAt = :now'], conditions: ['attribute_exists(PK)'], values: { ':now': 'T' } },
      false,
      {
        set: ['#r = #r - :one'],
        conditions: ['#r > :zero'],
        names: { '#r': 'runningTasks' },
        values: { ':one': 1 },
      },
      undefined,
      { add: ['finishedTasks :n'], values: { ':n': new Set([2]) } },
    );
    expect(updateInput('t', { key, ...parts })).toEqual({
      TableName: 't',
      Key: key,
      UpdateExpression: 'SET updatedAt = :now, #r = #r - :one ADD finishedTasks :n',
      ConditionExpression: 'attribute_exists(PK) AND #r > :zero',
      ExpressionAttributeNames: { '#r': 'runningTasks' },
      ExpressionAttributeValues: { ':now': 'T', ':one': 1, ':n': new Set([2]) },
    });
  });
});

describe('oneOf', () => {
  it('is an IN condition over numbered placeholders', () => {
    expect(oneOf('#state', ':s', new Set(['queued', 'running']))).toEqual({
      condition: '#state IN (:s0, :s1)',
      values: { ':s0': 'queued', ':s1': 'running' },
    });
  });
});

describe('conditional', () => {
  it('answers undefined for a failed condition and throws anything else', async () => {
    const failed = Object.assign(new Error('no'), { name: 'ConditionalCheckFailedException' });
    expect(await conditional(() => Promise.reject(failed))).toBeUndefined();
    await expect(conditional(() => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await conditional(() => Promise.resolve(1))).toBe(1);
  });
});
