import { defineConfig } from 'vitest/config';
import { isEmulatorClosedError } from '../support/emulator-closed.ts';

/** The fault suite (`npm run test:faults`): its own include, so the default `npm test` never runs it. */
export default defineConfig({
  test: {
    include: ['test/faults/**/*.faults.ts'],
    testTimeout: 240_000,
    hookTimeout: 60_000,
    pool: 'forks',
    fileParallelism: false,
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    // dynalite throws from a callback when the emulator restart closes its database (or a query's
    // iterator) under an in-flight request. That is the emulator being killed, not the orchestrator:
    // the request fails and is retried like any lost call. Every other unhandled error still fails the run.
    onUnhandledError: (error) => !isEmulatorClosedError(error),
  },
});
