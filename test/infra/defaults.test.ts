/**
 * The shared defaults of infra/defaults.ts: the bundles target the Node.js
 * version of the runtime they run on, and a Lambda's asset is index.mjs with
 * the chunks it imports. (The stack tests synthesize without bundling, so
 * these are checked here.)
 */
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duration } from 'aws-cdk-lib';
import { Runtime } from 'aws-cdk-lib/aws-lambda';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';
import {
  esbuildTarget,
  LAMBDA_ESBUILD_OPTIONS,
  LAMBDA_RUNTIME,
  lambdaBuildOptions,
  REPO_ROOT,
  VISIBILITY_TIMEOUT_FACTOR,
  visibilityTimeoutFor,
} from '../../infra/defaults.ts';

describe('Lambda bundling', () => {
  it('targets the Node.js version of the runtime', () => {
    const version = LAMBDA_RUNTIME.name.match(/^nodejs(\d+)\.x$/)?.[1];
    expect(version).toBeDefined();
    expect(LAMBDA_ESBUILD_OPTIONS.target).toBe(`node${version}`);
  });

  it('derives the esbuild target from any Node.js runtime, and refuses others', () => {
    expect(esbuildTarget(Runtime.NODEJS_22_X)).toBe('node22');
    expect(esbuildTarget(Runtime.NODEJS_24_X)).toBe('node24');
    expect(() => esbuildTarget(Runtime.PYTHON_3_13)).toThrow(/not a Node.js Lambda runtime/);
  });

  it('bundles an entry point into index.mjs, with what it imports lazily in chunks beside it', async () => {
    const out = await mkdtemp(join(tmpdir(), 'lambda-bundle-'));
    try {
      const entry = join(REPO_ROOT, 'functions/handlers/lambda/reconciler.ts');
      const options = lambdaBuildOptions(entry, out);
      expect(options).toMatchObject({ format: 'esm', bundle: true, splitting: true, outdir: out });
      await build({ ...options, logLevel: 'error' });
      expect(existsSync(join(out, 'index.mjs'))).toBe(true);
      // The ECS client is imported on first use, so it is a chunk of its own.
      expect(readdirSync(out).some((f) => /^ecs-.*\.mjs$/.test(f))).toBe(true);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });
});

describe('queues', () => {
  it(`hide a message for ${VISIBILITY_TIMEOUT_FACTOR}x its consumer's timeout`, () => {
    expect(visibilityTimeoutFor(Duration.seconds(60)).toSeconds()).toBe(60 * VISIBILITY_TIMEOUT_FACTOR);
    expect(visibilityTimeoutFor(Duration.minutes(2)).toSeconds()).toBe(120 * VISIBILITY_TIMEOUT_FACTOR);
  });
});
