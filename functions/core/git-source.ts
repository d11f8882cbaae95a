/**
 * Repository rules that need no git binary: reading a bundle's header, which
 * URLs and refs a job may name, and how worker and merge commits are written
 * (identity, message, trailers). Pure, so the API (which has no git), the
 * worker container and the CLI share one definition.
 */

/** A full object id: SHA-1 (40 hex) or SHA-256 (64 hex) repositories. */
export const OBJECT_ID = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

export interface BundleHeader {
  version: 2 | 3;
  /** Commits the receiver must already have; a base bundle must have none. */
  prerequisites: string[];
  refs: { oid: string; name: string }[];
}

/** Bytes of a bundle's start that are enough to read its header (refs are a line each). */
export const BUNDLE_HEADER_BYTES = 64 * 1024;

/**
 * Parses the text header of a git bundle (gitformat-bundle): signature line,
 * v3 capabilities, `-<oid>` prerequisites, `<oid> <ref>` lines, blank line.
 * Throws with a reason a caller can act on when it is not a bundle.
 */
export function parseBundleHeader(start: Uint8Array): BundleHeader {
  const text = Buffer.from(start).toString('latin1');
  const end = text.indexOf('\n\n');
  if (end < 0) {
    throw new Error(
      start.length >= BUNDLE_HEADER_BYTES
        ? `the bundle header is longer than ${BUNDLE_HEADER_BYTES} bytes (too many refs)`
        : 'not a git bundle (no header)',
    );
  }
  const [signature, ...lines] = text.slice(0, end).split('\n');
  const version = signature === '# v2 git bundle' ? 2 : signature === '# v3 git bundle' ? 3 : undefined;
  if (!version) throw new Error('not a git bundle (create it with `git bundle create`)');
  const header: BundleHeader = { version, prerequisites: [], refs: [] };
  for (const line of lines) {
    if (version === 3 && line.startsWith('@')) {
      if (line.startsWith('@filter')) throw new Error('partial (filtered) bundles are not supported');
      continue;
    }
    const prerequisite = /^-([0-9a-f]{40,64})(?: .*)?$/.exec(line);
    if (prerequisite) {
      header.prerequisites.push(prerequisite[1] as string);
      continue;
    }
    const ref = /^([0-9a-f]{40,64}) (\S+)$/.exec(line);
    if (!ref || !OBJECT_ID.test(ref[1] as string))
      throw new Error(`unreadable bundle header line: ${line.slice(0, 80)}`);
    header.refs.push({ oid: ref[1] as string, name: ref[2] as string });
  }
  if (header.refs.length === 0) throw new Error('the bundle names no refs');
  return header;
}

/**
 * The commit a base bundle stands for: the ref asked for, else the only ref,
 * else HEAD, main or master. The bundle must be complete (no prerequisites).
 */
export function bundleBase(header: BundleHeader, wanted?: string): { oid: string; ref: string } {
  if (header.prerequisites.length > 0) {
    throw new Error(
      'the bundle needs commits it does not contain; bundle the whole history (`git bundle create repo.bundle HEAD`)',
    );
  }
  const byName = (name: string) =>
    header.refs.find(
      (r) => r.name === name || r.name === `refs/heads/${name}` || r.name === `refs/tags/${name}`,
    );
  if (wanted !== undefined) {
    const hit = byName(wanted);
    if (!hit)
      throw new Error(
        `the bundle has no ref ${wanted} (it has ${header.refs.map((r) => r.name).join(', ')})`,
      );
    return { oid: hit.oid, ref: hit.name };
  }
  const only = header.refs.length === 1 ? header.refs[0] : undefined;
  const hit = only ?? byName('HEAD') ?? byName('main') ?? byName('master');
  if (!hit) {
    throw new Error(
      `the bundle has several refs (${header.refs.map((r) => r.name).join(', ')}); name one with source.ref`,
    );
  }
  return { oid: hit.oid, ref: hit.name };
}

/**
 * A ref a caller may name: what `git check-ref-format` accepts, without a
 * leading `-` (it would read as an option) and bounded.
 */
export function refNameProblem(ref: string): string | undefined {
  if (ref.length === 0 || ref.length > 200) return 'must be 1-200 characters';
  if (ref.startsWith('-')) return 'must not start with -';
  // Control characters, space and the characters git forbids in ref names.
  if ([...ref].some((c) => c.charCodeAt(0) <= 0x20 || c.charCodeAt(0) === 0x7f) || /[~^:?*[\\]/.test(ref))
    return 'contains a character git does not allow in a ref';
  if (ref.includes('..') || ref.includes('@{') || ref.includes('//')) return 'is not a valid git ref';
  if (ref.startsWith('/') || ref.endsWith('/') || ref.endsWith('.') || ref.endsWith('.lock') || ref === '@')
    return 'is not a valid git ref';
  if (ref.split('/').some((part) => part.startsWith('.') || part.endsWith('.lock')))
    return 'is not a valid git ref';
  return undefined;
}

/**
 * A remote a job may be fetched from: https (http only where the deployment
 * allows it, e.g. tests on loopback), no credentials in the URL (they belong
 * in the deployment's secret), nothing git would treat as a command (`ext::`).
 */
export function gitUrlProblem(url: string, allowHttp: boolean): string | undefined {
  if (url.length > 2000) return 'must be at most 2000 characters';
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'must be an absolute https:// URL';
  }
  if (parsed.protocol !== 'https:' && !(allowHttp && parsed.protocol === 'http:'))
    return allowHttp ? 'must be an http:// or https:// URL' : 'must be an https:// URL';
  // URL() quietly repairs `https:host/x` and `https:///x`; git gets the text as written.
  if (!/^https?:\/\/[^/]/i.test(url)) return 'must be an absolute https:// URL';
  if (parsed.username || parsed.password)
    return "must not carry credentials; the deployment's git token is used for private repositories";
  if (!parsed.hostname) return 'must name a host';
  if (/[\s'"\\]/.test(url)) return 'must not contain spaces, quotes or backslashes';
  return undefined;
}

export interface CommitIdentity {
  name: string;
  email: string;
}

/** Author and committer of a worker's commit: `worker_2 (claude-fleet)`. */
export function workerIdentity(workerId: string): CommitIdentity {
  return { name: `${workerId} (claude-fleet)`, email: `${workerId}@claude-fleet.invalid` };
}

/** Author and committer of merge commits. */
export const MERGE_IDENTITY: CommitIdentity = {
  name: 'merge (claude-fleet)',
  email: 'merge@claude-fleet.invalid',
};

/** How much of Claude's summary goes into a commit message. */
export const COMMIT_SUMMARY_CHARS = 2_000;

export interface CommitTrailers {
  jobId: string;
  workerId: string;
  depth: number;
  attempt: number;
}

/**
 * The subtask title, Claude's short summary, then the trailers that trace a
 * line back to its worker (`git log --format='%(trailers)'`).
 */
export function workerCommitMessage(title: string, summary: string, t: CommitTrailers): string {
  const subject = oneLine(title).slice(0, 200) || t.workerId;
  const body = summary.trim().slice(0, COMMIT_SUMMARY_CHARS).trim();
  return [
    subject,
    '',
    ...(body ? [body, ''] : []),
    `Fleet-Job: ${t.jobId}`,
    `Fleet-Worker: ${t.workerId}`,
    `Fleet-Depth: ${t.depth}`,
    `Fleet-Attempt: ${t.attempt}`,
    '',
  ].join('\n');
}

/** The merge commit of one worker into the job's branch; a resolved conflict names every worker involved. */
export function mergeCommitMessage(input: {
  branch: string;
  jobId: string;
  workerId: string;
  title: string;
  conflictWith?: string[] | undefined;
  files?: string[] | undefined;
}): string {
  const subject = `Merge ${input.workerId} into ${input.branch}: ${oneLine(input.title)}`.slice(0, 200);
  const lines = [subject, ''];
  if (input.conflictWith && input.conflictWith.length > 0) {
    lines.push(
      `Conflicts with ${input.conflictWith.join(', ')} in ${(input.files ?? []).join(', ')} were resolved by a Claude session.`,
      '',
    );
  }
  lines.push(
    `Fleet-Job: ${input.jobId}`,
    `Fleet-Merge: ${[...(input.conflictWith ?? []), input.workerId].join(', ')}`,
    '',
  );
  return lines.join('\n');
}

/** The marker line lets tools (and the test double) recognise a merge session. */
export const MERGE_MARKER = 'ORCHESTRATOR-MERGE';

export interface ConflictSide {
  workerId: string;
  title: string;
  prompt: string;
}

/** The prompt of a conflict-resolution session, run in the checkout with the conflict in progress. */
export function mergeConflictPrompt(input: {
  branch: string;
  ours: ConflictSide[];
  theirs: ConflictSide;
  files: string[];
}): string {
  const side = (s: ConflictSide) => [`### ${s.workerId}: ${oneLine(s.title)}`, s.prompt.slice(0, 4_000), ''];
  return [
    MERGE_MARKER,
    `You are resolving a git merge conflict in the current directory, on branch ${input.branch}.`,
    `The change of ${input.theirs.workerId} is being merged on top of work by ${input.ours.map((o) => o.workerId).join(', ')}.`,
    'Edit the conflicting files so that both changes are kept where they are compatible and the result is',
    'correct; remove every conflict marker (<<<<<<<, =======, >>>>>>>). Do not run git commit, git merge',
    'or git reset: the merge is committed for you once no markers remain.',
    '',
    'Conflicting files:',
    ...input.files.map((f) => `- ${f}`),
    '',
    '## The work already on the branch',
    '',
    ...input.ours.flatMap(side),
    '## The work being merged',
    '',
    ...side(input.theirs),
  ].join('\n');
}

function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, ' ').trim();
}
