/**
 * One snapshot of the default template, so a review sees every change to the
 * infrastructure. Asset hashes, S3 keys, image digests and bootstrap asset
 * locations are masked: the snapshot changes when the infrastructure does,
 * not when a handler's code does. The assertions in stack.test.ts carry the meaning.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { removeSyntheses, SYNTH_TIMEOUT_MS, type SynthesizedStack, synthesize } from './synthesized-stack.ts';

let built: SynthesizedStack;
beforeAll(() => {
  built = synthesize('');
}, SYNTH_TIMEOUT_MS);
afterAll(removeSyntheses);

/** The template with everything that depends on file contents or the bootstrap replaced by placeholders. */
function masked(template: unknown): unknown {
  const text = JSON.stringify(template)
    .replace(/[a-f0-9]{64}/g, '[asset-hash]')
    .replace(/cdk-hnb659fds-[A-Za-z0-9-]*(\$\{[A-Za-z:]+\}[A-Za-z0-9-]*)*/g, '[bootstrap-asset-location]');
  return JSON.parse(text);
}

it('the default template matches the snapshot (asset hashes masked)', () => {
  expect(masked(built.json)).toMatchSnapshot();
});
