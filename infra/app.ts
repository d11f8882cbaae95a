/**
 * The CDK app: `config.yaml` (or the defaults) validated by the same schema as
 * local mode, one stack, and cdk-nag's AWS Solutions checks.
 */
import { existsSync, readFileSync } from 'node:fs';
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { ConfigError, type OrchestratorConfig, parseConfig } from '../functions/core/config.ts';
import { OrchestratorStack } from './stack.ts';

export function loadDeployConfig(
  file = process.env.ORCHESTRATOR_CONFIG ?? 'config.yaml',
): OrchestratorConfig {
  const text = existsSync(file) ? readFileSync(file, 'utf8') : undefined;
  return parseConfig(text, process.env, text === undefined ? 'defaults' : file);
}

export function buildApp(
  config: OrchestratorConfig,
  app = new App(),
): { app: App; stack: OrchestratorStack } {
  const stack = new OrchestratorStack(app, config.deploy.stack_name, {
    config,
    description: 'claude-orchestrator: Claude Code workers on Fargate behind an authenticated API',
    env: {
      account: process.env.CDK_DEFAULT_ACCOUNT,
      region: process.env.CDK_DEFAULT_REGION ?? config.aws.region,
    },
  });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return { app, stack };
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop() ?? '')) {
  try {
    buildApp(loadDeployConfig()).app.synth();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
}
