/**
 * `orchestrator keys` through the real bin against the embedded emulators:
 * a created key authenticates as its tenant, listings never show a key or its
 * hash, a revoked key stops authenticating, and every refusal is one line on
 * stderr with exit code 1.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiKeyStore } from '../../functions/adapters/api-key-store.ts';
import { type AwsClients, createAwsClients } from '../../functions/adapters/aws-clients.ts';
import { ensureResources } from '../../functions/adapters/provision.ts';
import { sha256Hex } from '../../functions/core/tokens.ts';
import { type Emulators, startEmulators } from '../../functions/local/emulators.ts';
import { authorizeApiKey } from '../../functions/services/auth.ts';
import { type BinRun, runBin } from '../support/run-bin.ts';

const TABLE = 'keys-test';

type Run = BinRun;

interface ListedKey {
  key_id: string;
  tenant: string;
  name: string;
  created_at: string;
  revoked_at: string | null;
}

/** Endpoints from the caller's shell (e.g. LocalStack) must not leak into these runs. */
function inheritedEnv(): NodeJS.ProcessEnv {
  const inherited = { ...process.env };
  for (const name of Object.keys(inherited)) if (name.startsWith('AWS_ENDPOINT_URL')) delete inherited[name];
  return inherited;
}

/** Runs the real bin without the caller's endpoints. */
function orchestrator(args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return runBin(args, { env: { ...inheritedEnv(), ...env } });
}

/** The only line of stderr that is ours: exactly one, prefixed, no stack trace. */
function errorLine(run: Run): string {
  const lines = run.stderr.split('\n').filter((l) => l.startsWith('orchestrator keys: '));
  expect(lines, run.stderr).toHaveLength(1);
  expect(run.stderr).not.toMatch(/^\s+at /m);
  return lines[0] as string;
}

describe('orchestrator keys', () => {
  let emulators: Emulators;
  let clients: AwsClients;
  let apiKeys: ApiKeyStore;
  let env: Record<string, string>;
  const keys = (...args: string[]) => orchestrator(['keys', ...args], env);

  beforeAll(async () => {
    emulators = await startEmulators();
    env = { ...emulators.env };
    clients = createAwsClients({ ...emulators.env });
    await ensureResources(clients, {
      tableName: TABLE,
      queueName: 'keys-test-work',
      deadLetterQueueName: 'keys-test-work-dlq',
      bucketName: 'keys-test-artifacts',
      maxReceiveCount: 3,
      visibilityTimeoutSec: 30,
    });
    apiKeys = new ApiKeyStore(clients.ddb, TABLE);
  });

  afterAll(async () => {
    clients?.ddb.destroy();
    clients?.sqs.destroy();
    clients?.s3.destroy();
    await emulators?.stop();
  });

  it('creates, lists and revokes keys that authenticate as their tenant', async () => {
    const created: { key: string; keyId: string; tenant: string }[] = [];
    for (const [tenant, name] of [
      ['acme', 'ci'],
      ['globex.eu_2', undefined],
    ] as const) {
      const run = await keys(
        'create',
        '--tenant',
        tenant,
        ...(name ? ['--name', name] : []),
        '--table',
        TABLE,
      );
      expect(run.code, run.stderr).toBe(0);
      const m = /^API_KEY=(cok_[A-Za-z0-9_-]{32})\nKEY_ID=([0-9a-f]{12}) TENANT=(\S+)\n$/.exec(run.stdout);
      expect(m, run.stdout).not.toBeNull();
      const [, key, keyId, printedTenant] = m as unknown as [string, string, string, string];
      expect(printedTenant).toBe(tenant);
      expect(keyId).toBe(sha256Hex(key).slice(0, 12));
      created.push({ key, keyId, tenant });
    }
    const [acme, globex] = created as [(typeof created)[0], (typeof created)[0]];

    // Only the hash is stored, and the key authenticates as its tenant.
    const stored = await apiKeys.getApiKey(sha256Hex(acme.key));
    expect(stored).toMatchObject({ keyId: acme.keyId, tenant: 'acme', name: 'ci' });
    expect(JSON.stringify(stored)).not.toContain(acme.key);
    expect(await authorizeApiKey(apiKeys, acme.key)).toEqual({
      kind: 'caller',
      tenant: 'acme',
      keyId: acme.keyId,
    });
    expect(await authorizeApiKey(apiKeys, globex.key)).toMatchObject({ tenant: 'globex.eu_2' });

    // Listings show both, and never a key or a full hash.
    const table = await keys('list', '--table', TABLE);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/^KEY_ID\s+TENANT\s+NAME\s+CREATED\s+REVOKED$/m);
    expect(table.stdout).toMatch(new RegExp(`^${acme.keyId}\\s+acme\\s+ci\\s+\\S+Z\\s+-$`, 'm'));
    expect(table.stdout).toMatch(new RegExp(`^${globex.keyId}\\s+globex\\.eu_2\\s+cli\\s+\\S+Z\\s+-$`, 'm'));
    const json = await keys('list', '--json', '--table', TABLE);
    expect(json.code, json.stderr).toBe(0);
    const listed = JSON.parse(json.stdout) as ListedKey[];
    expect(listed.map((k) => k.key_id).sort()).toEqual([acme.keyId, globex.keyId].sort());
    for (const k of listed) {
      expect(Object.keys(k).sort()).toEqual(['created_at', 'key_id', 'name', 'revoked_at', 'tenant']);
      expect(k.revoked_at).toBeNull();
    }
    for (const out of [table.stdout, table.stderr, json.stdout, json.stderr]) {
      for (const { key } of created) {
        expect(out).not.toContain(key);
        expect(out).not.toContain(sha256Hex(key));
      }
    }

    // Revoking stops the key at once, and shows in the listing; the other key is untouched.
    const revoked = await keys('revoke', acme.keyId, '--table', TABLE);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toMatch(new RegExp(`^revoked KEY_ID=${acme.keyId} TENANT=acme at \\S+Z$`, 'm'));
    expect(await authorizeApiKey(apiKeys, acme.key)).toBeUndefined();
    expect(await authorizeApiKey(apiKeys, globex.key)).toMatchObject({ tenant: 'globex.eu_2' });
    const after = JSON.parse((await keys('list', '--json', '--table', TABLE)).stdout) as ListedKey[];
    expect(after.find((k) => k.key_id === acme.keyId)?.revoked_at).toMatch(/Z$/);
    expect(after.find((k) => k.key_id === globex.keyId)?.revoked_at).toBeNull();
    const afterTable = await keys('list', '--table', TABLE);
    expect(afterTable.stdout).toMatch(new RegExp(`^${acme.keyId}\\s+acme\\s+ci\\s+\\S+Z\\s+\\S+Z$`, 'm'));

    // Revoking again, or an unknown id, is refused.
    const again = await keys('revoke', acme.keyId, '--table', TABLE);
    expect(again.code).toBe(1);
    expect(errorLine(again)).toMatch(new RegExp(`API key ${acme.keyId} is already revoked`));
    const unknown = await keys('revoke', 'ffffffffffff', '--table', TABLE);
    expect(unknown.code).toBe(1);
    expect(errorLine(unknown)).toMatch(/no API key with id ffffffffffff/);
  });

  it('refuses a bad tenant without writing anything', async () => {
    const before = (await apiKeys.listApiKeys()).length;
    for (const tenant of ['bad tenant', 'a/b', 'x'.repeat(65), '']) {
      const run = await keys('create', '--tenant', tenant, '--table', TABLE);
      expect(run.code, tenant).toBe(1);
      expect(run.stdout).toBe('');
      expect(errorLine(run)).toMatch(/invalid tenant/);
    }
    expect(await apiKeys.listApiKeys()).toHaveLength(before);
  });

  it('needs --table or --stack', async () => {
    for (const args of [['list'], ['create', '--tenant', 'acme'], ['revoke', 'abc']]) {
      const run = await keys(...args);
      // A usage error: its own exit code, never that of a failed job.
      expect(run.code, args.join(' ')).toBe(64);
      expect(errorLine(run)).toBe(
        'orchestrator keys: one of --table <name> or --stack <stackName> is required',
      );
    }
  });

  it('--stack against the emulators fails with one clear line: they have no CloudFormation', async () => {
    // Only DynamoDB/SQS/S3 endpoints are set: refused before any call (nothing may reach real AWS).
    const local = await keys('list', '--stack', 'claude-orchestrator');
    expect(local.code).toBe(1);
    expect(errorLine(local)).toMatch(
      /--stack needs CloudFormation.*embedded emulators have no CloudFormation/,
    );

    // A CloudFormation endpoint that does not speak CloudFormation: the server's refusal, in one line.
    const answered = await orchestrator(['keys', 'list', '--stack', 'claude-orchestrator'], {
      ...env,
      AWS_ENDPOINT_URL_CLOUDFORMATION: emulators.endpoints.sqs,
    });
    expect(answered.code).toBe(1);
    expect(errorLine(answered)).toMatch(/cannot read stack claude-orchestrator from CloudFormation in \S+: /);
  });

  it('names a missing table', async () => {
    const run = await keys('list', '--table', 'no-such-table');
    expect(run.code).toBe(1);
    expect(errorLine(run)).toMatch(/table no-such-table not found in \S+/);
  });
});
