/**
 * The gateway's settings from the config and the orchestrator's environment,
 * the worker's Claude environment through it, and how an attempt's dispatch
 * reservation is sized when the gateway is off.
 */
import { describe, expect, it } from 'vitest';
import { claudeEnv, isModelCredential } from '../../container/session.ts';
import { parseConfig } from '../../functions/core/config.ts';
import type { RootBudget } from '../../functions/core/model.ts';
import { attemptBudget, spendShares } from '../../functions/core/recursion-policy.ts';
import { gatewayBaseUrl, gatewaySettingsFromConfig } from '../../functions/services/model-gateway.ts';
import { makeJob } from '../support/records.ts';

describe('gateway settings', () => {
  it('auto turns the gateway on exactly when the orchestrator holds an Anthropic credential', () => {
    const config = parseConfig('');
    expect(config.gateway.enabled).toBe('auto');
    expect(gatewaySettingsFromConfig(config, {}).enabled).toBe(false);
    expect(gatewaySettingsFromConfig(config, { ANTHROPIC_API_KEY: 'k' }).enabled).toBe(true);
    expect(gatewaySettingsFromConfig(config, { ANTHROPIC_AUTH_TOKEN: 't' }).enabled).toBe(true);
    expect(
      gatewaySettingsFromConfig(parseConfig('gateway: {enabled: false}'), { ANTHROPIC_API_KEY: 'k' }).enabled,
    ).toBe(false);
    expect(gatewaySettingsFromConfig(parseConfig('', { MODEL_GATEWAY: 'true' }), {}).enabled).toBe(true);
  });

  it('sends requests to upstream_url, else ANTHROPIC_BASE_URL, else the Anthropic API', () => {
    expect(gatewaySettingsFromConfig(parseConfig(''), {}).upstreamUrl).toBe('https://api.anthropic.com');
    expect(
      gatewaySettingsFromConfig(parseConfig(''), { ANTHROPIC_BASE_URL: 'http://llm.internal' }).upstreamUrl,
    ).toBe('http://llm.internal');
    const config = parseConfig('gateway: {upstream_url: "https://proxy.example"}');
    expect(gatewaySettingsFromConfig(config, { ANTHROPIC_BASE_URL: 'http://x' }).upstreamUrl).toBe(
      'https://proxy.example',
    );
  });

  it('adds configured prices to the built-in table and refuses malformed ones with their path', () => {
    const config = parseConfig(
      'gateway: {prices: {my-model: {input: 1, output: 2, cache_write: 1.25, cache_read: 0.1}, claude-opus-4-8: {input: 9, output: 9, cache_write: 9, cache_read: 9}}}',
    );
    const { prices } = gatewaySettingsFromConfig(config, {});
    expect(prices['my-model']).toMatchObject({ input: 1, output: 2, cacheWrite1h: 2 });
    expect(prices['claude-opus-4-8']).toMatchObject({ input: 9 });
    expect(prices['claude-haiku-4-5-20251001']).toMatchObject({ input: 1, output: 5 });
    expect(() => parseConfig('gateway: {prices: {m: {input: 1}}}')).toThrow(/gateway\.prices\.m\.output/);
    expect(() => parseConfig('gateway: {enabled: maybe}')).toThrow(
      /gateway\.enabled: must be auto, true or false/,
    );
  });

  it("gives workers the API's /gateway unless a base URL is set", () => {
    expect(gatewayBaseUrl({ apiUrl: 'http://127.0.0.1:9/', gateway: undefined })).toBe(
      'http://127.0.0.1:9/gateway',
    );
    expect(
      gatewayBaseUrl({
        apiUrl: 'x',
        gateway: { enabled: true, prices: {}, upstreamUrl: 'u', baseUrl: 'https://gw.example/m' },
      }),
    ).toBe('https://gw.example/m');
  });
});

describe("Claude's environment", () => {
  const env = {
    PATH: '/usr/bin',
    HOME: '/home/w',
    TASK_TOKEN: 'tt1.job.1.1.secret',
    ANTHROPIC_API_KEY: 'sk-ant-real',
    ANTHROPIC_AUTH_TOKEN: 'tok',
    ANTHROPIC_BASE_URL: 'https://api.anthropic.com',
    ANTHROPIC_MODEL: 'claude-sonnet-5',
    CLAUDE_CODE_USE_BEDROCK: '1',
    CLAUDE_CODE_OAUTH_TOKEN: 'oauth',
    AWS_ACCESS_KEY_ID: 'AKIA',
    AWS_SECRET_ACCESS_KEY: 'secret',
    AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: '/v2/credentials/x',
    GIT_TOKEN: 'ghp',
  };

  it('through the gateway: the task token is the only model credential, the gateway the only endpoint', () => {
    const out = claudeEnv(env, '/work/a/repo', { base_url: 'http://127.0.0.1:8000/gateway' });
    expect(out.ANTHROPIC_BASE_URL).toBe('http://127.0.0.1:8000/gateway');
    expect(out.ANTHROPIC_API_KEY).toBe(env.TASK_TOKEN);
    for (const gone of [
      'ANTHROPIC_AUTH_TOKEN',
      'CLAUDE_CODE_USE_BEDROCK',
      'CLAUDE_CODE_OAUTH_TOKEN',
      'AWS_ACCESS_KEY_ID',
      'AWS_SECRET_ACCESS_KEY',
      'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI',
      'GIT_TOKEN',
    ])
      expect(out[gone], gone).toBeUndefined();
    expect(Object.values(out)).not.toContain('sk-ant-real');
    // Choosing a model is no credential.
    expect(out.ANTHROPIC_MODEL).toBe('claude-sonnet-5');
    expect(isModelCredential('ANTHROPIC_DEFAULT_OPUS_MODEL')).toBe(false);
  });

  it("takes a gateway path as below the worker's API_URL (a deployment does not know its own URL)", () => {
    const out = claudeEnv({ ...env, API_URL: 'https://api.example/v1/' }, '/w/a', { base_url: '/gateway' });
    expect(out.ANTHROPIC_BASE_URL).toBe('https://api.example/v1/gateway');
    expect(gatewayBaseUrl({ apiUrl: '', gateway: undefined })).toBe('/gateway');
  });

  it('the CLI is told to make no connection of its own (telemetry, updates, side requests), unless set on purpose', () => {
    const out = claudeEnv(env, '/work/a/repo', { base_url: 'http://127.0.0.1:8000/gateway' });
    for (const name of [
      'CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC',
      'DISABLE_AUTOUPDATER',
      'DISABLE_TELEMETRY',
      'DISABLE_ERROR_REPORTING',
    ])
      expect(out[name], name).toBe('1');
    expect(claudeEnv({ ...env, DISABLE_TELEMETRY: '0' }, '/w/a').DISABLE_TELEMETRY).toBe('0');
  });

  it('without the gateway: the environment is passed on as before, repository tokens aside', () => {
    const out = claudeEnv(env, '/work/a/repo');
    expect(out.ANTHROPIC_API_KEY).toBe('sk-ant-real');
    expect(out.GIT_TOKEN).toBeUndefined();
  });
});

describe('the dispatch reservation without the gateway', () => {
  const budget = (committedUsd: number, maxSpendUsd = 25): RootBudget => ({
    maxTasks: 100,
    maxSpendUsd,
    maxDepth: 0,
    reservedTasks: 8,
    committedUsd,
    spentUsd: 0,
  });

  it('shares what is left among the free slots, so max_workers attempts all fit at once', () => {
    let committed = 0;
    const grants: number[] = [];
    for (let running = 0; running < 8; running++) {
      const usd = attemptBudget(budget(committed), 5, 8 - running);
      grants.push(usd);
      committed += usd;
    }
    expect(grants.every((g) => g > 0)).toBe(true);
    expect(grants[0]).toBe(3.125);
    expect(committed).toBeLessThanOrEqual(25);
  });

  it('keeps the per-attempt cap, and nothing when the tree has nothing left', () => {
    expect(attemptBudget(budget(0), 5, 2)).toBe(5);
    expect(attemptBudget(budget(24.995), 5, 3)).toBe(0);
    expect(attemptBudget(budget(24.98), 5, 8)).toBe(0.01);
  });

  it('shares among the tasks still to start when they are fewer than the free slots', () => {
    const job = makeJob({ config: { ...makeJob().config, maxWorkers: 5 }, totalTasks: 2, finishedTasks: [] });
    expect(spendShares({ ...job, runningTasks: 0 })).toBe(2);
    expect(spendShares({ ...job, runningTasks: 1 })).toBe(1);
    expect(spendShares({ ...job, totalTasks: 8, runningTasks: 2 })).toBe(3);
    // Planning, or a step after the work: one share, never zero.
    expect(spendShares({ ...job, totalTasks: 0 })).toBe(1);
    expect(attemptBudget(budget(0, 0.05), 5, spendShares(job))).toBe(0.025);
  });
});
