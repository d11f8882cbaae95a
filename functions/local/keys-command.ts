/**
 * `orchestrator keys`: create, list and revoke callers' API keys in the
 * orchestrator's table, on AWS, on LocalStack or on any emulator. Only the
 * SHA-256 of a key is stored; the key itself is printed once, by `create`.
 *
 * The table is `--table <name>`, or the `TableName` output of the CloudFormation
 * stack `--stack <name>`. Endpoints and credentials come from the SDK's standard
 * environment (`AWS_ENDPOINT_URL=http://127.0.0.1:4566` for LocalStack).
 */
import { randomBytes } from 'node:crypto';
import { Command } from 'commander';
import type { ApiKeyStore } from '../adapters/api-key-store.ts';
import { isNotFound } from '../adapters/aws-errors.ts';
import type { ApiKeyRecord } from '../core/model.ts';
import { formatApiKey, sha256Hex } from '../core/tokens.ts';
import { EXIT, UsageError } from './exit-codes.ts';

const TENANT_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
const MAX_NAME_CHARS = 128;
/** The stack output that names the table (a CfnOutput with id `TableName` at stack scope). */
const TABLE_OUTPUT_KEY = 'TableName';
/** Same deadlines as `createAwsClients`: no call may hang the command. */
const REQUEST_HANDLER = { connectionTimeout: 3_000, requestTimeout: 30_000 };
const MAX_MESSAGE_CHARS = 400;
const UNREACHABLE_HINT = '(is the endpoint running? check AWS_ENDPOINT_URL)';

/** A failure the user can act on: printed as one line, exit code 1. */
class KeysError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeysError';
  }
}

interface TargetOptions {
  table?: string;
  stack?: string;
  region?: string;
}

interface Target {
  apiKeys: ApiKeyStore;
  tableName: string;
  region: string;
  close(): void;
}

/** One line, bounded, never a stack trace. */
function oneLine(err: unknown): string {
  const e = err as { name?: string; message?: string; code?: string } | undefined;
  let message = (e?.message ?? String(err)).replace(/\s+/g, ' ').trim();
  const name =
    e?.name && e.name !== 'Error' && e.name !== 'KeysError' && e.name !== 'UsageError' ? e.name : undefined;
  if (!message) message = name ?? 'unknown error';
  else if (name && !message.includes(name)) message = `${name}: ${message}`;
  if (/ECONNREFUSED/.test(`${e?.code ?? ''} ${message}`) && !message.includes(UNREACHABLE_HINT))
    message += ` ${UNREACHABLE_HINT}`;
  return message.length > MAX_MESSAGE_CHARS ? `${message.slice(0, MAX_MESSAGE_CHARS - 1)}…` : message;
}

const regionOf = (env: NodeJS.ProcessEnv) => env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1';

/** The standard SDK environment, with `--region` on top. */
function clientEnv(options: TargetOptions): NodeJS.ProcessEnv {
  return options.region ? { ...process.env, AWS_REGION: options.region } : { ...process.env };
}

async function tableFromStack(stackName: string, env: NodeJS.ProcessEnv): Promise<string> {
  const region = regionOf(env);
  const endpoint = env.AWS_ENDPOINT_URL_CLOUDFORMATION || env.AWS_ENDPOINT_URL || undefined;
  // Local DynamoDB with AWS's own CloudFormation is never what was meant (and would reach out to AWS).
  const localDynamo = env.AWS_ENDPOINT_URL_DYNAMODB;
  if (!endpoint && localDynamo)
    throw new KeysError(
      `--stack needs CloudFormation, but only AWS_ENDPOINT_URL_DYNAMODB (${localDynamo}) is set: ` +
        'the embedded emulators have no CloudFormation; pass --table <name>, or set AWS_ENDPOINT_URL ' +
        '(or AWS_ENDPOINT_URL_CLOUDFORMATION) to a LocalStack endpoint',
    );
  // As in createAwsClients: a local endpoint accepts any signature, AWS itself never sees these.
  const credentials =
    endpoint && !env.AWS_ACCESS_KEY_ID && !env.AWS_PROFILE
      ? { accessKeyId: 'local', secretAccessKey: 'local' }
      : undefined;
  // Loaded when used: every other command of the CLI starts without the SDK.
  const { CloudFormationClient, DescribeStacksCommand } = await import('@aws-sdk/client-cloudformation');
  const cfn = new CloudFormationClient({
    region,
    requestHandler: REQUEST_HANDLER,
    maxAttempts: 3,
    ...(endpoint ? { endpoint } : {}),
    ...(credentials ? { credentials } : {}),
  });
  try {
    const out = await cfn.send(new DescribeStacksCommand({ StackName: stackName }));
    const stack = out.Stacks?.[0];
    if (!stack) throw new KeysError(`stack ${stackName} not found in ${region}`);
    const output = stack.Outputs?.find((o) => o.OutputKey === TABLE_OUTPUT_KEY);
    if (!output?.OutputValue) {
      const keys = (stack.Outputs ?? []).map((o) => o.OutputKey).filter(Boolean);
      throw new KeysError(
        `stack ${stackName} (${stack.StackStatus ?? 'unknown status'}) has no output ${TABLE_OUTPUT_KEY}` +
          ` (outputs: ${keys.length ? keys.join(', ') : 'none'}); pass --table <name> instead`,
      );
    }
    return output.OutputValue;
  } catch (err) {
    if (err instanceof KeysError) throw err;
    const message = oneLine(err);
    if (/does not exist/i.test(message))
      throw new KeysError(
        `stack ${stackName} not found in ${region} (${message}); deploy it or pass --table`,
      );
    throw new KeysError(`cannot read stack ${stackName} from CloudFormation in ${region}: ${message}`);
  } finally {
    cfn.destroy();
  }
}

async function openTarget(options: TargetOptions): Promise<Target> {
  const env = clientEnv(options);
  let tableName: string;
  if (options.table !== undefined) {
    if (!options.table.trim()) throw new UsageError('--table must not be empty');
    tableName = options.table;
  } else if (options.stack !== undefined) {
    tableName = await tableFromStack(options.stack, env);
  } else {
    throw new UsageError('one of --table <name> or --stack <stackName> is required');
  }
  const [{ createAwsClients }, { ApiKeyStore }] = await Promise.all([
    import('../adapters/aws-clients.ts'),
    import('../adapters/api-key-store.ts'),
  ]);
  const clients = createAwsClients(env);
  return {
    apiKeys: new ApiKeyStore(clients.ddb, tableName),
    tableName,
    region: regionOf(env),
    close: () => {
      clients.ddb.destroy();
      clients.sqs.destroy();
      clients.s3.destroy();
    },
  };
}

/** Opens the table, runs `body`, and turns any failure into one line on stderr and exit code 1. */
async function withTarget(options: TargetOptions, body: (target: Target) => Promise<void>): Promise<void> {
  let target: Target | undefined;
  try {
    target = await openTarget(options);
    await body(target);
  } catch (err) {
    let message = oneLine(err);
    if (target && !(err instanceof KeysError || err instanceof UsageError)) {
      message = isNotFound(err)
        ? `table ${target.tableName} not found in ${target.region} (check --table/--stack, --region and AWS_ENDPOINT_URL)`
        : `table ${target.tableName}: ${message}`;
    }
    process.stderr.write(`orchestrator keys: ${message}\n`);
    process.exitCode = err instanceof UsageError ? EXIT.usage : EXIT.failed;
  } finally {
    target?.close();
  }
}

function targetOptions(cmd: Command): Command {
  return cmd
    .option('--table <name>', 'DynamoDB table of the orchestrator')
    .option('--stack <stackName>', `CloudFormation stack whose "${TABLE_OUTPUT_KEY}" output names the table`)
    .option('--region <region>', 'AWS region (sets AWS_REGION for the clients)');
}

function fail(message: string): void {
  process.stderr.write(`orchestrator keys: ${message}\n`);
  process.exitCode = 1;
}

/** Whatever a listing may show: never the key, never the full hash. */
function publicView(key: ApiKeyRecord) {
  return {
    key_id: key.keyId,
    tenant: key.tenant,
    name: key.name,
    created_at: key.createdAt,
    revoked_at: key.revokedAt ?? null,
  };
}

function renderTable(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows
    .map((r) =>
      r
        .map((cell, i) => cell.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

async function createKey(options: TargetOptions & { tenant: string; name?: string }): Promise<void> {
  if (!TENANT_PATTERN.test(options.tenant)) {
    fail(`invalid tenant "${options.tenant}": use 1-64 characters from A-Z a-z 0-9 _ . -`);
    return;
  }
  const name = options.name ?? 'cli';
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what is refused
  if (!name || name.length > MAX_NAME_CHARS || /[\u0000-\u001f\u007f]/.test(name)) {
    fail(`invalid name: use 1-${MAX_NAME_CHARS} printable characters`);
    return;
  }
  await withTarget(options, async ({ apiKeys }) => {
    const key = formatApiKey(randomBytes(24));
    const sha256 = sha256Hex(key);
    const keyId = sha256.slice(0, 12);
    await apiKeys.putApiKey({
      sha256,
      keyId,
      tenant: options.tenant,
      name,
      createdAt: new Date().toISOString(),
    });
    process.stdout.write(`API_KEY=${key}\nKEY_ID=${keyId} TENANT=${options.tenant}\n`);
    process.stderr.write('Store the key now: only its SHA-256 is kept, and it cannot be shown again.\n');
  });
}

async function listKeys(options: TargetOptions & { json?: boolean }): Promise<void> {
  await withTarget(options, async ({ apiKeys }) => {
    const keys = (await apiKeys.listApiKeys()).map(publicView);
    if (options.json) {
      process.stdout.write(`${JSON.stringify(keys, null, 2)}\n`);
      return;
    }
    if (keys.length === 0) {
      process.stdout.write('no API keys\n');
      return;
    }
    const rows = [
      ['KEY_ID', 'TENANT', 'NAME', 'CREATED', 'REVOKED'],
      ...keys.map((k) => [k.key_id, k.tenant, k.name, k.created_at, k.revoked_at ?? '-']),
    ];
    process.stdout.write(`${renderTable(rows)}\n`);
  });
}

async function revokeKey(keyId: string, options: TargetOptions): Promise<void> {
  await withTarget(options, async ({ apiKeys }) => {
    const matches = (await apiKeys.listApiKeys()).filter((k) => k.keyId === keyId);
    if (matches.length === 0)
      throw new KeysError(`no API key with id ${keyId} (see: orchestrator keys list)`);
    if (matches.length > 1)
      throw new KeysError(
        `${matches.length} API keys share the id ${keyId}; revoke them in the table directly`,
      );
    const key = matches[0] as ApiKeyRecord;
    if (key.revokedAt) throw new KeysError(`API key ${keyId} is already revoked (since ${key.revokedAt})`);
    const now = new Date().toISOString();
    if (!(await apiKeys.revokeApiKey(key.sha256, now)))
      throw new KeysError(`API key ${keyId} is already revoked (or was just deleted)`);
    process.stdout.write(`revoked KEY_ID=${keyId} TENANT=${key.tenant} at ${now}\n`);
  });
}

export function keysCommand(): Command {
  const keys = new Command('keys').description(
    'create, list and revoke API keys in the orchestrator table (only their SHA-256 is stored)',
  );
  targetOptions(
    keys
      .command('create')
      .description('create a key for a tenant; prints API_KEY=<key> once, then KEY_ID=<id> TENANT=<tenant>')
      .requiredOption('--tenant <tenant>', 'tenant the key acts for (1-64 of A-Z a-z 0-9 _ . -)')
      .option('--name <name>', 'a label for the key (default: cli)'),
  ).action(createKey);
  targetOptions(
    keys
      .command('list')
      .description('list keys: id, tenant, name, created, revoked (never a key or its hash)')
      .option('--json', 'print [{key_id, tenant, name, created_at, revoked_at}]'),
  ).action(listKeys);
  targetOptions(
    keys
      .command('revoke')
      .description('revoke a key by its KEY_ID')
      .argument('<keyId>', 'the KEY_ID to revoke'),
  ).action(revokeKey);
  return keys;
}
