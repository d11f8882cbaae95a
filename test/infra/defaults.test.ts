/**
 * The shared defaults of infra/defaults.ts: the bundles target the Node.js
 * version of the runtime they run on, and CDK and esbuild get the same options.
 * (The stack tests synthesize without bundling, so these are checked here.)
 */
import { Duration } from 'aws-cdk-lib';
import { Runtime } from 'aws-cdk-lib/aws-lambda';
import { describe, expect, it } from 'vitest';
import {
  esbuildTarget,
  LAMBDA_BUNDLING,
  LAMBDA_ESBUILD_OPTIONS,
  LAMBDA_RUNTIME,
  VISIBILITY_TIMEOUT_FACTOR,
  visibilityTimeoutFor,
} from '../../infra/defaults.ts';

describe('Lambda bundling', () => {
  it('targets the Node.js version of the runtime', () => {
    const version = LAMBDA_RUNTIME.name.match(/^nodejs(\d+)\.x$/)?.[1];
    expect(version).toBeDefined();
    expect(LAMBDA_BUNDLING.target).toBe(`node${version}`);
    expect(LAMBDA_ESBUILD_OPTIONS.target).toBe(`node${version}`);
  });

  it('derives the esbuild target from any Node.js runtime, and refuses others', () => {
    expect(esbuildTarget(Runtime.NODEJS_22_X)).toBe('node22');
    expect(esbuildTarget(Runtime.NODEJS_24_X)).toBe('node24');
    expect(() => esbuildTarget(Runtime.PYTHON_3_13)).toThrow(/not a Node.js Lambda runtime/);
  });

  it('gives CDK the same options as esbuild (bench/bench.ts measures what is deployed)', () => {
    const esbuild = LAMBDA_ESBUILD_OPTIONS;
    expect(esbuild.format).toBe('esm');
    expect(LAMBDA_BUNDLING).toMatchObject({
      format: 'esm',
      minify: esbuild.minify,
      sourceMap: esbuild.sourcemap,
      sourcesContent: esbuild.sourcesContent,
      mainFields: esbuild.mainFields,
      externalModules: esbuild.external,
      banner: (esbuild.banner as { js: string }).js,
      forceDockerBundling: false,
    });
  });
});

describe('queues', () => {
  it(`hide a message for ${VISIBILITY_TIMEOUT_FACTOR}x its consumer's timeout`, () => {
    expect(visibilityTimeoutFor(Duration.seconds(60)).toSeconds()).toBe(60 * VISIBILITY_TIMEOUT_FACTOR);
    expect(visibilityTimeoutFor(Duration.minutes(2)).toSeconds()).toBe(120 * VISIBILITY_TIMEOUT_FACTOR);
  });
});
