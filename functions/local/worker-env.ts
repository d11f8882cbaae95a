/**
 * What a local worker inherits from the orchestrator's environment: locale, paths,
 * terminal and proxies, nothing else. Keys (ORCHESTRATOR_API_KEY,
 * ANTHROPIC_*, git tokens), AWS settings and Node/test switches stay out;
 * whatever a worker needs beyond this is given on purpose through
 * `options.env` or set by the launcher.
 */
const INHERITED = new Set([
  'PATH',
  'HOME',
  'LANG',
  'LANGUAGE',
  'TZ',
  'TMPDIR',
  'TERM',
  'USER',
  'LOGNAME',
  'SHELL',
  'NODE_EXTRA_CA_CERTS',
  'SSL_CERT_FILE',
  'SSL_CERT_DIR',
  'HTTP_PROXY',
  'HTTPS_PROXY',
  'NO_PROXY',
  'http_proxy',
  'https_proxy',
  'no_proxy',
]);

/** True for a variable a worker inherits from the orchestrator's environment. */
export function inheritedByWorkers(name: string): boolean {
  return INHERITED.has(name) || name.startsWith('LC_');
}
