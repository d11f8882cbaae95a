#!/usr/bin/env node
// Bundles the worker entrypoint into one ESM file for the container image.
// Local mode runs the TypeScript source directly; this is only for `docker build`.
import { build } from 'esbuild';

await build({
  // The worker, and `orchestrator spawn` that Claude runs inside it.
  entryPoints: { worker: 'container/worker.ts', spawn: 'container/spawn.ts' },
  outdir: 'dist/worker',
  outExtension: { '.js': '.mjs' },
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
