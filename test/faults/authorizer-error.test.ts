/**
 * Found by FAULT_SEED=40035032 (sdk-faults): DynamoDB failing while the
 * authorizer reads an API key made the local API answer 401, a verdict on a
 * key that was fine, so a careful caller gave up. API Gateway answers 500 for
 * an authorizer that fails (only its "Unauthorized" is a 401), and so must
 * the local stand-in: the caller retries and gets in.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { FaultInjector } from './fault-injector.ts';
import { type FaultStack, startFaultStack } from './fault-stack.ts';

describe("the authorizer's store failing", () => {
  let stack: FaultStack | undefined;
  afterEach(async () => {
    await stack?.stop();
    stack = undefined;
  });

  it('is a 500 the caller retries, not a 401; a retry gets in', async () => {
    const injector = new FaultInjector(3, { rates: { DYNAMODB: 0, SQS: 0, S3: 0 } });
    stack = await startFaultStack('workers: {max_retries: 0}', {}, injector);
    // Every SDK attempt of one key lookup (the client tries 3 times) fails.
    const rule = injector.addRule({
      service: 'DYNAMODB',
      bodyIncludes: ['"KEY#'],
      kind: 'server_error',
      times: 3,
    });
    const first = await fetch(`${stack.apiUrl}/api/v1/jobs`, { headers: { 'x-api-key': stack.apiKey } });
    expect(rule.hits).toBe(3);
    expect(first.status).toBe(500);
    expect(((await first.json()) as { code?: string }).code).toBe('internal');
    const again = await fetch(`${stack.apiUrl}/api/v1/jobs`, { headers: { 'x-api-key': stack.apiKey } });
    expect(again.status).toBe(200);
    // A key that is not known is still a 401.
    const unknown = await fetch(`${stack.apiUrl}/api/v1/jobs`, {
      headers: { 'x-api-key': `cok_${'x'.repeat(43)}` },
    });
    expect(unknown.status).toBe(401);
  });
});
