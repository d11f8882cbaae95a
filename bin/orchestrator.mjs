#!/usr/bin/env node
// Runs the TypeScript CLI through tsx, so a fresh clone needs no build step.
import { register } from 'tsx/esm/api';

// On Node 20 the AWS SDK prints a nine-line notice that Node 22 is coming; the README says which
// Node versions are supported, so the CLI's users do not need it on every command.
if (Number(process.versions.node.split('.')[0]) < 22)
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

register();
const { main } = await import('../functions/local/cli.ts');
await main(process.argv);
