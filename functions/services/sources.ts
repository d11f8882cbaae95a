/**
 * A job's repository. Callers upload a git bundle through a presigned URL
 * (`POST /sources`) and name it on submit, or name a git URL that a step
 * without AI fetches. The API has no git: it reads a bundle's header to learn
 * the base commit, and copies the bundle under the job so the caller can no
 * longer change what the workers start from.
 */
import type { SourceBody } from '../core/api-schemas.ts';
import { badRequest, HttpError } from '../core/errors.ts';
import {
  BUNDLE_HEADER_BYTES,
  bundleBase,
  gitUrlProblem,
  parseBundleHeader,
  refNameProblem,
} from '../core/git-source.ts';
import { baseBundleKey, sourceUploadKey } from '../core/layout.ts';
import type { JobSource } from '../core/model.ts';
import { sha256Hex } from '../core/tokens.ts';
import type { Deps } from './deps.ts';

export interface SourceUpload {
  bundle_id: string;
  upload: { method: 'PUT'; url: string; headers: Record<string, string> };
  expires_in: number;
  max_bytes: number;
}

/** Tenants never share upload keys, so one tenant cannot name another's bundle. */
function tenantDigest(tenant: string): string {
  return sha256Hex(`tenant\n${tenant}`).slice(0, 16);
}

function tooLarge(sizeBytes: number, maxBytes: number): HttpError {
  return new HttpError(
    413,
    `the bundle is ${sizeBytes} bytes; limits.max_source_mb allows ${maxBytes} bytes (${Math.round(maxBytes / 1024 / 1024)} MB)`,
    [{ path: 'size_bytes', message: `at most ${maxBytes}` }],
    'too_large',
    { limit: 'max_source_mb', allowed: maxBytes, requested: sizeBytes },
  );
}

/** A presigned PUT for one bundle of exactly `sizeBytes` bytes (the size is signed). */
export async function createSourceUpload(
  deps: Deps,
  tenant: string,
  sizeBytes: number,
): Promise<SourceUpload> {
  const max = deps.settings.limits.maxSourceBytes;
  if (sizeBytes > max) throw tooLarge(sizeBytes, max);
  const bundleId = `src_${deps.randomBytes(16).toString('hex')}`;
  const expires = deps.settings.presignExpirySec;
  const url = await deps.artifacts.presignPut(
    sourceUploadKey(tenantDigest(tenant), bundleId),
    expires,
    sizeBytes,
  );
  deps.log.info('source upload created', { tenant, bundleId, sizeBytes });
  return {
    bundle_id: bundleId,
    upload: { method: 'PUT', url, headers: { 'content-length': String(sizeBytes) } },
    expires_in: expires,
    max_bytes: max,
  };
}

/** Checks a submission's source and turns it into the job's; uploaded bundles are copied under the job. */
export async function resolveJobSource(
  deps: Deps,
  tenant: string,
  rootJobId: string,
  source: SourceBody,
): Promise<JobSource> {
  if (source.git) {
    const urlProblem = gitUrlProblem(source.git.url, deps.settings.git.allowHttp);
    if (urlProblem)
      throw badRequest('source.git.url is invalid', [{ path: 'source.git.url', message: urlProblem }]);
    const refProblem = source.git.ref === undefined ? undefined : refNameProblem(source.git.ref);
    if (refProblem)
      throw badRequest('source.git.ref is invalid', [{ path: 'source.git.ref', message: refProblem }]);
    return {
      kind: 'git',
      url: source.git.url,
      ...(source.git.ref !== undefined ? { ref: source.git.ref } : {}),
      bundles: [],
      push: deps.settings.git.pushResults,
    };
  }
  const bundleId = source.bundle_id as string;
  if (source.ref !== undefined) {
    const refProblem = refNameProblem(source.ref);
    if (refProblem) throw badRequest('source.ref is invalid', [{ path: 'source.ref', message: refProblem }]);
  }
  const uploaded = sourceUploadKey(tenantDigest(tenant), bundleId);
  const stored = await deps.artifacts.head(uploaded);
  if (stored === undefined) {
    throw badRequest('source.bundle_id names no uploaded bundle', [
      {
        path: 'source.bundle_id',
        message:
          'nothing was uploaded under this id (upload to the URL POST /api/v1/sources returned, before it expires)',
      },
    ]);
  }
  const max = deps.settings.limits.maxSourceBytes;
  if (stored.size > max) throw tooLarge(stored.size, max);
  // Checked before anything is copied, and copied only if it is still the version that was checked
  // (If-Match), so a refused bundle leaves nothing behind and a later upload cannot slip in.
  const start = await deps.artifacts.getStart(uploaded, BUNDLE_HEADER_BYTES, stored.etag);
  let base: { oid: string; ref: string };
  try {
    base = bundleBase(parseBundleHeader(start ?? new Uint8Array()), source.ref);
  } catch (err) {
    throw badRequest('source.bundle_id is not a usable git bundle', [
      { path: source.ref !== undefined ? 'source.ref' : 'source.bundle_id', message: (err as Error).message },
    ]);
  }
  const key = baseBundleKey(rootJobId);
  await deps.artifacts.copy(uploaded, key, stored.etag);
  return { kind: 'bundle', ref: base.ref, baseCommit: base.oid, bundles: [key] };
}
