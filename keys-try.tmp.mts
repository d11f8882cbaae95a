import { execFileSync, spawnSync } from 'node:child_process';
import { createAwsClients } from '/work/main/functions/adapters/aws-clients.ts';
import { ensureResources } from '/work/main/functions/adapters/provision.ts';
import { startEmulators } from '/work/main/functions/local/emulators.ts';

const em = await startEmulators();
await ensureResources(createAwsClients({ ...em.env }), {
  tableName: 'keys-test',
  queueName: 'q',
  deadLetterQueueName: 'q-dlq',
  bucketName: 'keys-b',
  maxReceiveCount: 3,
  visibilityTimeoutSec: 30,
});
const run = (args: string[], extra: Record<string, string> = {}) => {
  const t = Date.now();
  const r = spawnSync(process.execPath, ['bin/orchestrator.mjs', ...args], {
    env: { ...process.env, ...em.env, ...extra },
    encoding: 'utf8',
  });
  console.log('$', args.join(' '), '->', r.status, `${Date.now() - t}ms`);
  console.log(r.stdout);
  console.log(r.stderr);
};
run(['keys', 'create', '--tenant', 'acme', '--table', 'keys-test']);
run(['keys', 'create', '--tenant', 'beta', '--name', 'ci bot', '--table', 'keys-test']);
run(['keys', 'list', '--table', 'keys-test']);
run(['keys', 'list', '--table', 'keys-test', '--json']);
run(['keys', 'create', '--tenant', 'bad tenant!', '--table', 'keys-test']);
run(['keys', 'list']);
run(['keys', 'revoke', 'nope', '--table', 'keys-test']);
run(['keys', 'list', '--table', 'missing-table']);
run(['keys', 'list', '--stack', 'orchestrator'], { AWS_ENDPOINT_URL_CLOUDFORMATION: em.endpoints.dynamodb });
run(['keys', 'list', '--stack', 'orchestrator'], { AWS_ENDPOINT_URL_CLOUDFORMATION: em.endpoints.sqs });
run(['keys', 'list', '--stack', 'orchestrator'], { AWS_ENDPOINT_URL_CLOUDFORMATION: 'http://127.0.0.1:1' });
run(['keys']);
await em.stop();
