#!/usr/bin/env node
// Bundles the worker entrypoint into one ESM file for the container image.
// Local mode runs the TypeScript source directly; this is only for `docker build`.
import { build } from 'esbuild';

await build({
  entryPoints: ['container/worker.ts'],
  outfile: 'dist/worker/worker.mjs',
  bundle: true,
  platform: 'node',
  target: 'node22',
  format: 'esm',
  minify: true,
  sourcemap: 'linked',
  // Some bundled CommonJS dependencies call require(); give ESM output one.
  banner: {
    js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
  },
  logLevel: 'info',
});
