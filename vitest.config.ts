import { defineConfig } from 'vitest/config';
import { AttackTableReporter } from './test/security/attack-table-reporter.ts';
import { isEmulatorClosedError } from './test/support/emulator-closed.ts';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // End-to-end tests start emulators and child processes; give them room without hiding hangs.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Most test files wait on child processes (workers, git, the CLI) rather than compute: on 2 cores
    // three files at a time keep both busy (vitest's default would run one file at a time there).
    maxWorkers: 3,
    // The security suite's attack -> outcome table, printed before vitest's own summary.
    reporters: [new AttackTableReporter(), 'default'],
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    // The fault suite's fast variant restarts the emulators: dynalite then throws from a callback
    // under an in-flight request ("Database is closed", or a query's "Iterator is not open"). That is
    // the emulator being killed, and the request fails and is retried like any lost call; every other
    // unhandled error still fails the run.
    onUnhandledError: (error) => !isEmulatorClosedError(error),
  },
});
