#!/usr/bin/env node
// Builds `claude-fleet/client` (package.json `exports`): one ESM file for any
// Node 20+ or browser runtime, and its type declarations. The client imports
// server modules for their types only, so the bundle is the client alone.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';

const out = 'dist/client';
rmSync(out, { recursive: true, force: true });
await build({
  entryPoints: { index: 'functions/client/index.ts' },
  outdir: out,
  bundle: true,
  platform: 'neutral',
  target: 'es2022',
  format: 'esm',
  sourcemap: 'linked',
  logLevel: 'warning',
});
execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.client.json'], {
  stdio: 'inherit',
});
// The sources import each other as `./x.ts`; declarations are read as `./x.js` -> `./x.d.ts`.
for (const file of walk(join(out, 'types'))) {
  const text = readFileSync(file, 'utf8');
  writeFileSync(file, text.replace(/(from\s+['"]\.{1,2}\/[^'"]+)\.ts(['"])/g, '$1.js$2'));
}
process.stdout.write(`built ${out}/index.js and its types\n`);

function* walk(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* walk(path);
    else if (path.endsWith('.d.ts')) yield path;
  }
}
