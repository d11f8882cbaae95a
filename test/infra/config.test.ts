/**
 * `loadDeployConfig` (what `cdk synth` reads) refuses a bad `deploy:` section
 * with a ConfigError naming the option, before any infrastructure is built.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../functions/core/config.ts';
import { loadDeployConfig } from '../../infra/app.ts';

const dir = mkdtempSync(join(tmpdir(), 'orchestrator-deploy-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Writes `yamlText` to a config file, loads it and returns the ConfigError it must throw. */
function loadError(name: string, yamlText: string): ConfigError {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, yamlText);
  try {
    loadDeployConfig(file);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error(`expected loadDeployConfig(${file}) to throw a ConfigError`);
}

describe('loadDeployConfig', () => {
  it('loads a valid deploy section from the file', () => {
    const file = join(dir, 'valid.yaml');
    writeFileSync(file, 'deploy:\n  worker: { cpu: 2048, memory_mib: 8192 }\n');
    expect(loadDeployConfig(file).deploy.worker).toMatchObject({ cpu: 2048, memory_mib: 8192 });
  });

  it.each([
    [
      'a memory size Fargate does not offer for the CPU',
      'deploy:\n  worker: { cpu: 256, memory_mib: 4096 }\n',
      'deploy.worker.memory_mib',
    ],
    [
      'a retention CloudWatch Logs does not accept',
      'deploy:\n  log_retention_days: 17\n',
      'deploy.log_retention_days',
    ],
    ['a VPC id without subnets', 'deploy:\n  vpc: { vpc_id: vpc-0abc1234 }\n', 'deploy.vpc.subnet_ids'],
    ['a CPU size Fargate does not offer', 'deploy:\n  worker: { cpu: 3000 }\n', 'deploy.worker.cpu'],
    ['an unknown deploy option', 'deploy:\n  workers: { cpu: 1024 }\n', 'deploy'],
    [
      "Bedrock without a mapped model (the CLI's default has no Bedrock id)",
      'deploy:\n  anthropic: { mode: bedrock }\n',
      'orchestrator.model',
    ],
    [
      'Bedrock with a model outside deploy.anthropic.bedrock_models',
      'orchestrator: { model: claude-opus-4-8 }\ndeploy:\n  anthropic: { mode: bedrock }\n',
      'orchestrator.model',
    ],
  ])('refuses %s, naming the option', (_label, yamlText, path) => {
    const error = loadError(path.replaceAll('.', '-'), yamlText);
    expect(error.issues.map((i) => i.path)).toContain(path);
    expect(error.message).toContain(`${path}:`);
  });

  it('names the file in the error', () => {
    const error = loadError('named', 'deploy:\n  log_retention_days: 17\n');
    expect(error.message).toContain(join(dir, 'named.yaml'));
  });
});
