/**
 * The real `claude` CLI (the `@anthropic-ai/claude-code` devDependency) and the
 * environment that makes it talk only to the Messages API stand-in from
 * `messages-api.ts`.
 */
import { fileURLToPath } from 'node:url';

/** Absolute path of `node_modules/.bin/claude`. */
export const REAL_CLAUDE: string = fileURLToPath(new URL('../../node_modules/.bin/claude', import.meta.url));

/**
 * Environment for the real CLI talking to the stand-in at `apiUrl`, with `home` as its (writable) HOME:
 * the CLI keeps its config and session files in `~/.claude` and `~/.claude.json`.
 * Merge it over a minimal base (PATH only); do not pass the developer's environment, which may carry
 * real credentials or a different base URL.
 */
export function realClaudeEnv(apiUrl: string, home: string): Record<string, string> {
  return {
    HOME: home,
    // The stand-in; the key is sent as `x-api-key` and never checked.
    ANTHROPIC_BASE_URL: apiUrl,
    ANTHROPIC_API_KEY: 'sk-ant-standin-not-a-real-key',
    // Tests run as root in dev containers: without this, bypassPermissions is refused as root.
    IS_SANDBOX: '1',
    // Nothing but the stand-in. This one is what matters (checked with strace on 2.1.197): without it the
    // CLI sends a title request to the stand-in and resolves api.anthropic.com (telemetry); with it, the
    // only connections are to the stand-in. DISABLE_TELEMETRY alone still leaves one lookup.
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    // Implied by the switch above; kept explicit in case a version stops implying them.
    DISABLE_AUTOUPDATER: '1',
    DISABLE_TELEMETRY: '1',
    DISABLE_ERROR_REPORTING: '1',
  };
}
