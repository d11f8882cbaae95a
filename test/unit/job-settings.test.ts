/**
 * JOB_SETTINGS, the runtime settings a deployment hands its Lambdas: checked
 * at synth before they are written, and at each cold start, where a bad value
 * fails with the field named.
 */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../functions/core/config.ts';
import { depsFromEnv } from '../../functions/handlers/lambda/runtime.ts';
import type { Settings } from '../../functions/services/deps.ts';
import { gatewaySettingsFromConfig } from '../../functions/services/model-gateway.ts';
import { settingsFromConfig, settingsJson } from '../../functions/services/settings.ts';

/** The settings as infra/stack.ts builds them: no API URL yet, the gateway on. */
function deployedSettings(yaml = ''): Settings {
  const config = parseConfig(yaml);
  return {
    ...settingsFromConfig(config, ''),
    gateway: gatewaySettingsFromConfig(config, {}, { enabled: true }),
  };
}

const lambdaEnv = (jobSettings: string) => ({
  TABLE_NAME: 'table',
  QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/000000000000/work',
  BUCKET_NAME: 'bucket',
  JOB_SETTINGS: jobSettings,
  AWS_REGION: 'us-east-1',
});

/** The deployed settings with one field changed, as JSON. */
function changed(edit: (s: Record<string, Record<string, unknown>>) => void): string {
  const settings = JSON.parse(settingsJson(deployedSettings()));
  edit(settings);
  return JSON.stringify(settings);
}

describe('JOB_SETTINGS', () => {
  it('the settings a deployment writes are read back unchanged at cold start', () => {
    for (const yaml of ['', 'orchestrator: { model: claude-sonnet-4-5 }\nrecursion: { enable: true }']) {
      const settings = deployedSettings(yaml);
      expect(depsFromEnv(lambdaEnv(settingsJson(settings))).settings).toEqual(settings);
    }
  });

  it('a wrong type fails at cold start, naming the field', () => {
    const text = changed((s) => {
      (s.limits as Record<string, unknown>).maxWorkersPerJob = 'twenty';
    });
    expect(() => depsFromEnv(lambdaEnv(text))).toThrow(
      /^invalid Lambda environment: JOB_SETTINGS\.limits\.maxWorkersPerJob: /,
    );
  });

  it('a missing section fails at cold start, naming it', () => {
    const text = changed((s) => {
      delete s.worker;
    });
    expect(() => depsFromEnv(lambdaEnv(text))).toThrow(/JOB_SETTINGS\.worker: /);
  });

  it('an unknown field fails at cold start, naming it (a setting the code would silently drop)', () => {
    const text = changed((s) => {
      (s.defaults as Record<string, unknown>).maxWorker = 3;
    });
    expect(() => depsFromEnv(lambdaEnv(text))).toThrow(/JOB_SETTINGS\.defaults: .*maxWorker/);
  });

  it('a value that is not JSON fails at cold start', () => {
    expect(() => depsFromEnv(lambdaEnv('{"defaults":'))).toThrow(/JOB_SETTINGS: not JSON/);
  });

  it('bad settings fail at synth, before they are written', () => {
    const settings = deployedSettings();
    settings.defaults.maxWorkers = 0;
    expect(() => settingsJson(settings)).toThrow(/^invalid JOB_SETTINGS: defaults\.maxWorkers: /);
  });
});
