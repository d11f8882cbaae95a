/**
 * The configuration file: documented defaults, the shipped template, errors that
 * name the option and the reason, and environment overrides.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../functions/core/config.ts';

const TEMPLATE_PATH = fileURLToPath(new URL('../../config.template.yaml', import.meta.url));

/** Parses and returns the ConfigError it must throw. */
function configError(yamlText: string | undefined, env: Record<string, string> = {}): ConfigError {
  try {
    parseConfig(yamlText, env, 'config.yaml');
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected parseConfig to throw a ConfigError');
}

describe('parseConfig defaults', () => {
  it.each([
    ['undefined', undefined],
    ['empty', ''],
    ['blank', '  \n\n'],
    ['a comment only', '# nothing configured\n'],
  ])('gives the documented defaults for %s input', (_label, text) => {
    const config = parseConfig(text);
    expect(config.orchestrator).toEqual({
      workspace_root: './workspace',
      claude_command: 'claude',
      model: null,
      launcher: 'local',
      permission_mode: 'bypassPermissions',
      max_turns: null,
      sandbox: 'auto',
      worker_env: [],
    });
    expect(config.gateway).toEqual({ enabled: 'auto', upstream_url: null, prices: {} });
    expect(config.workers).toEqual({
      max_workers: 5,
      default_timeout: 600,
      max_retries: 2,
      max_running: 50,
      progress_interval_ms: 2000,
      heartbeat_timeout: 300,
    });
    expect(config.recursion).toEqual({ enable: false, max_depth: 2 });
    expect(config.api).toEqual({ host: '127.0.0.1', port: 8000, keys: [] });
    expect(config.logging).toEqual({ level: 'INFO', enable_structured: true, log_dir: null });
    expect(config.limits.max_workers_per_job).toBe(20);
    expect(config.aws.region).toBe('us-east-1');
    expect(config.aws.max_receive_count).toBe(5);
    expect(config.limits.max_source_mb).toBe(500);
    expect(config.limits.max_commit_file_mb).toBe(10);
    expect(config.git).toEqual({ allow_http: false, push_results: false, token_username: 'x-access-token' });
    expect(config.deploy.git).toEqual({ token_secret_name: null });
  });

  it('fills the options a file leaves out of a section it names', () => {
    const config = parseConfig('workers:\n  max_workers: 3\n');
    expect(config.workers).toEqual({
      max_workers: 3,
      default_timeout: 600,
      max_retries: 2,
      max_running: 50,
      progress_interval_ms: 2000,
      heartbeat_timeout: 300,
    });
  });

  it.runIf(existsSync(TEMPLATE_PATH))('parses the shipped config.template.yaml', () => {
    const config = parseConfig(readFileSync(TEMPLATE_PATH, 'utf8'), {}, 'config.template.yaml');
    expect(config.workers.max_workers).toBeGreaterThanOrEqual(1);
    expect(['local', 'ecs']).toContain(config.orchestrator.launcher);
  });
});

describe('parseConfig errors', () => {
  it('names workers.max_workers and the bound when it is 0', () => {
    const err = configError('workers: {max_workers: 0}');
    expect(err.issues).toEqual([{ path: 'workers.max_workers', message: expect.stringMatching(/>=\s*1/) }]);
    expect(err.message).toContain('config.yaml');
    expect(err.message).toMatch(/workers\.max_workers: .*>=\s*1/);
  });

  it('names orchestrator.launcher and the allowed values for launcher: k8s', () => {
    const err = configError('orchestrator: {launcher: k8s}');
    expect(err.issues.map((i) => i.path)).toEqual(['orchestrator.launcher']);
    expect(err.message).toMatch(/orchestrator\.launcher: .*"local".*"ecs"/);
  });

  it('names the misspelt key in its section', () => {
    const err = configError('workers: {max_wrkers: 3}');
    expect(err.issues).toHaveLength(1);
    expect(err.issues[0]?.path).toBe('workers');
    expect(err.issues[0]?.message).toMatch(/unknown field.*max_wrkers/);
    expect(err.message).toContain('max_wrkers');
  });

  it('refuses an unknown section', () => {
    const err = configError('wrokers: {max_workers: 3}');
    expect(err.message).toMatch(/unknown field.*wrokers/);
  });

  it('reports invalid YAML as a file error', () => {
    const err = configError('workers: [1\n');
    expect(err.issues).toHaveLength(1);
    expect(err.issues[0]?.path).toBe('(file)');
    expect(err.issues[0]?.message).toMatch(/not valid YAML/);
  });

  it.each([
    ['a top-level list', '- workers\n- api\n'],
    ['a scalar', 'just text\n'],
  ])('refuses %s at the root', (_label, text) => {
    const err = configError(text);
    expect(err.issues).toEqual([{ path: '(root)', message: expect.stringMatching(/mapping/) }]);
  });

  it('names every bad option at once', () => {
    const err = configError('workers: {max_workers: 0, max_retries: -1}\nlogging: {level: LOUD}\n');
    expect(err.issues.map((i) => i.path).sort()).toEqual([
      'logging.level',
      'workers.max_retries',
      'workers.max_workers',
    ]);
  });

  it('names the array index of a bad API key entry', () => {
    const err = configError('api:\n  keys:\n    - {name: ci, tenant: acme, sha256: NOTHEX}\n');
    expect(err.issues.map((i) => i.path)).toEqual(['api.keys[0].sha256']);
  });
});

describe('parseConfig environment overrides', () => {
  const FILE = [
    'orchestrator:',
    '  claude_command: /usr/local/bin/claude',
    'workers:',
    '  max_workers: 3',
    'recursion:',
    '  enable: false',
  ].join('\n');

  it('lets CLAUDE_COMMAND, MAX_WORKERS and ENABLE_RECURSION win over the file, typed', () => {
    const config = parseConfig(FILE, {
      CLAUDE_COMMAND: 'node test/support/claude-double.mjs',
      MAX_WORKERS: '8',
      ENABLE_RECURSION: 'true',
    });
    expect(config.orchestrator.claude_command).toBe('node test/support/claude-double.mjs');
    expect(config.workers.max_workers).toBe(8);
    expect(config.recursion.enable).toBe(true);
    // Options the environment does not name keep the file's or the default value.
    expect(config.workers.default_timeout).toBe(600);
  });

  it('keeps the file values when the variables are unset or empty', () => {
    const config = parseConfig(FILE, { MAX_WORKERS: '', CLAUDE_COMMAND: undefined });
    expect(config.workers.max_workers).toBe(3);
    expect(config.orchestrator.claude_command).toBe('/usr/local/bin/claude');
  });

  it('applies overrides to sections the file does not mention', () => {
    const config = parseConfig('', { MAX_RECURSION_DEPTH: '4', LOG_LEVEL: 'DEBUG' });
    expect(config.recursion.max_depth).toBe(4);
    expect(config.logging.level).toBe('DEBUG');
  });

  it('does not change the parsed file object it was given (env goes into a copy)', () => {
    const first = parseConfig(FILE, { MAX_WORKERS: '8' });
    const second = parseConfig(FILE);
    expect(first.workers.max_workers).toBe(8);
    expect(second.workers.max_workers).toBe(3);
  });

  it('reports MAX_WORKERS=lots with the option path it overrides', () => {
    const err = configError(FILE, { MAX_WORKERS: 'lots' });
    expect(err.issues.map((i) => i.path)).toEqual(['workers.max_workers']);
    expect(err.message).toMatch(
      /workers\.max_workers: .*number.*\(set by the environment: MAX_WORKERS="lots"\)/,
    );
    // Only the environment set it: the error says so rather than naming the file.
    expect(err.source).toBe('the environment');
  });

  it('reports an out-of-range override like a file value', () => {
    const err = configError('', { MAX_WORKERS: '0' });
    expect(err.issues.map((i) => i.path)).toEqual(['workers.max_workers']);
  });

  it('still refuses an invalid file section that an override also targets', () => {
    // `workers: 5` is not a mapping; setting MAX_WORKERS must not make the file's mistake vanish.
    const err = configError('workers: 5\n', { MAX_WORKERS: '8' });
    expect(err.issues.map((i) => i.path)).toContain('workers');
  });

  it('takes string-valued overrides verbatim rather than as YAML', () => {
    // A shell value is not YAML: ` #` must not start a comment, `: ` must not make a mapping.
    const command = '/opt/tools #2/claude';
    expect(parseConfig('', { CLAUDE_COMMAND: command }).orchestrator.claude_command).toBe(command);
    const workspace = '/data/runs: march';
    expect(parseConfig('', { ORCHESTRATOR_WORKSPACE: workspace }).orchestrator.workspace_root).toBe(
      workspace,
    );
  });
});
