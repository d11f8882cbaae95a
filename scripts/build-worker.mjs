#!/usr/bin/env node
// Bundles the worker for the container image into dist/worker (container/Dockerfile copies it to
// /opt/worker). Local mode builds the same bundle by itself, with the same options, when its sources
// change: see functions/local/worker-bundle.ts.
import { rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { tsImport } from 'tsx/esm/api';

const { buildWorkerBundle, workerBuildOptions } = await tsImport(
  '../functions/local/worker-bundle.ts',
  import.meta.url,
);
const outdir = fileURLToPath(new URL('../dist/worker', import.meta.url));
// Chunk names carry hashes: an old build's chunks would otherwise stay next to the new ones.
await rm(outdir, { recursive: true, force: true });
await buildWorkerBundle(outdir, { ...workerBuildOptions(), logLevel: 'info' });
