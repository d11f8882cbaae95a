/**
 * Redaction of what workers show live (progress text, logs): credentials
 * have recognisable shapes, and a worker also knows its own secrets by
 * value. Applied by the worker before sending and by the API before serving,
 * so neither a careless worker nor a stored log leaks one.
 */

const MASK = '[redacted]';

/** Shapes of credentials a log may carry, each with what replaces it (names and separators stay, so a reader knows what it was). */
const PATTERNS: readonly (readonly [RegExp, string])[] = [
  // Anthropic API and OAuth keys.
  [/\bsk-ant-[A-Za-z0-9_-]{8,}/g, MASK],
  // This orchestrator's task tokens and API keys.
  [/\btt1\.[A-Za-z0-9_-]{1,64}\.\d{1,6}\.\d{1,4}\.[A-Za-z0-9_-]{32,128}/g, MASK],
  [/\bcok_[A-Za-z0-9_-]{20,}/g, MASK],
  // AWS access key ids, and secret keys where they are named.
  [/\b(?:AKIA|ASIA)[A-Z0-9]{16}\b/g, MASK],
  [/(aws_secret_access_key|aws_session_token)(\s*[=:]\s*)\S+/gi, `$1$2${MASK}`],
  // GitHub and GitLab tokens.
  [/\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{20,}/g, MASK],
  [/\bgithub_pat_[A-Za-z0-9_]{20,}/g, MASK],
  [/\bglpat-[A-Za-z0-9_-]{20,}/g, MASK],
  // Credentials in headers, and passwords in URLs.
  [/(authorization|x-api-key|x-task-token)(\s*[:=]\s*)(?:(?:Bearer|Basic)\s+)?[^\s"',]+/gi, `$1$2${MASK}`],
  [/(\b[a-z][a-z0-9+.-]*:\/\/[^\s/:@]+:)[^\s/@]+@/gi, `$1${MASK}@`],
];

/** Secrets shorter than this are not masked by value: masking `1` would mangle every number. */
const MIN_SECRET_CHARS = 8;

export function redact(text: string, secrets: readonly (string | undefined)[] = []): string {
  let out = text;
  for (const secret of secrets) {
    if (secret && secret.length >= MIN_SECRET_CHARS) out = out.split(secret).join(MASK);
  }
  for (const [pattern, replacement] of PATTERNS) out = out.replace(pattern, replacement);
  return out;
}
