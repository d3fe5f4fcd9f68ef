// The Remote Asset API (build.bazel.remote.asset.v1): Push records that URIs with qualifiers name
// content already committed to the CAS; Fetch hands the digest back. Tessera never downloads
// anything: a Fetch is answered from what was pushed, or NOT_FOUND.
//
// Rules:
// - A Push whose content (the blob, or the root Directory and its whole tree, plus everything in
//   `references_blobs` and `references_directories`) is not all committed is refused with
//   FAILED_PRECONDITION naming the first missing digest.
// - A Fetch serves a mapping only while it is unexpired (`expire_at` from the push,
//   `oldest_content_accepted` from the fetch) and all of that content is still committed; the
//   check runs on every fetch and renews the content's leases. Otherwise NOT_FOUND.
// - The qualifiers are part of the name: a fetch must present exactly the pushed set, in any
//   order. Mappings are namespaced by instance name, like the action cache.
// - A request with no URIs is INVALID_ARGUMENT; BuildStream probes for the service that way.
import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Cas } from '../cas/cas.ts';
import {
  type Digest,
  type DigestFunction,
  formatDigest,
  fromWireDigest,
  resolveDigestFunction,
  toWireDigest,
} from '../cas/digest.ts';
import { CasError, invalidArgument, notFound } from '../cas/errors.ts';
import { type RpcContext, route, unary } from '../grpc/handlers.ts';
import type {
  FetchBlobRequest,
  FetchBlobResponse,
  FetchDirectoryRequest,
  FetchDirectoryResponse,
  PartialMessage,
  PushBlobRequest,
  PushDirectoryRequest,
  Timestamp,
} from '../grpc/messages.ts';
import { parseInstanceName } from '../grpc/resource-name.ts';
import { OK_STATUS } from '../grpc/status.ts';
import type { Logger } from '../observability/logger.ts';
import { findMissingContent } from './asset-content.ts';
import {
  type AssetKind,
  type AssetRecord,
  assertUri,
  assetKey,
  canonicalQualifiers,
  decodeAssetRecord,
  encodeAssetRecord,
  type Qualifier,
  recordNames,
  shorten,
} from './asset-record.ts';
import type { AssetStore } from './asset-store.ts';

/** Why a mapping was withheld although it exists; logged at info, as data loss is news. */
const CONTENT_GONE = 'names content that is no longer in the cache';
/** One push may name this many URIs; each becomes its own record. */
const MAX_URIS = 100;
/** References are kept in the record and checked on every fetch. */
const MAX_REFERENCES = 10_000;

type FetchRequest = FetchBlobRequest | FetchDirectoryRequest;
type PushRequest = PushBlobRequest | PushDirectoryRequest;

interface Hit {
  readonly uri: string;
  readonly qualifiers: readonly Qualifier[];
  readonly record: AssetRecord;
}

export function createFetchService(
  cas: Cas,
  assets: AssetStore,
  rpc: RpcContext,
): UntypedServiceImplementation {
  const fetch = async (kind: AssetKind, request: FetchRequest, rpcLog: Logger): Promise<Hit> => {
    const method = kind === 'blob' ? 'FetchBlob' : 'FetchDirectory';
    const instance = parseInstanceName(request.instanceName);
    const uris = checkUris(method, request.uris);
    const qualifiers = canonicalQualifiers(request.qualifiers);
    const wanted = requestedFunction(request.digestFunction);
    const oldestMs = toMillis(request.oldestContentAccepted, 'oldest_content_accepted');

    const misses: string[] = [];
    for (const uri of uris) {
      const encoded = await assets.get(instance, assetKey(kind, uri, qualifiers));
      const record = encoded === undefined ? undefined : decodeAssetRecord(encoded);
      const miss = await whyNotServed(record, kind, uri, qualifiers, wanted, oldestMs);
      if (miss === undefined && record) return { uri, qualifiers, record };
      const uriLog = rpcLog.child({ instance, uri: shorten(uri) });
      if (miss?.startsWith(CONTENT_GONE)) uriLog.info(miss);
      else uriLog.debug({ miss }, 'asset not served');
      misses.push(`"${shorten(uri)}" ${miss}`);
    }
    throw notFound(
      `no ${kind} to serve for ${misses.slice(0, 3).join('; ')}` +
        `${misses.length > 3 ? `; and ${misses.length - 3} more uris` : ''} ` +
        `(with ${qualifiers.length} qualifier(s)); Tessera never fetches from the internet: ` +
        `it serves only what was pushed with exactly these qualifiers`,
    );
  };

  const whyNotServed = async (
    record: AssetRecord | undefined,
    kind: AssetKind,
    uri: string,
    qualifiers: readonly Qualifier[],
    wanted: DigestFunction | undefined,
    oldestMs: number | undefined,
  ): Promise<string | undefined> => {
    if (!record || !recordNames(record, kind, uri, qualifiers)) return 'was never pushed';
    if (wanted !== undefined && record.target.fn !== wanted) {
      return `was pushed with digest function ${record.target.fn}, not ${wanted}`;
    }
    const now = Date.now();
    if (record.expiresAtMs !== undefined && record.expiresAtMs <= now) {
      return `expired at ${new Date(record.expiresAtMs).toISOString()}`;
    }
    if (oldestMs !== undefined && record.pushedAtMs < oldestMs) {
      return (
        `was pushed at ${new Date(record.pushedAtMs).toISOString()}, before ` +
        `oldest_content_accepted ${new Date(oldestMs).toISOString()}`
      );
    }
    const missing = await findMissingContent(cas, record);
    if (missing) {
      return `${CONTENT_GONE}: ${formatDigest(missing.digest)} in ${missing.where}`;
    }
    return undefined;
  };

  const reply = (hit: Hit) => ({
    status: OK_STATUS,
    uri: hit.uri,
    qualifiers: hit.qualifiers.map((q) => ({ name: q.name, value: q.value })),
    expiresAt: hit.record.expiresAtMs === undefined ? null : toTimestamp(hit.record.expiresAtMs),
    digestFunction: hit.record.target.fn,
  });

  return {
    FetchBlob: unary(
      rpc,
      route('FetchBlob', 'read'),
      async (
        request: FetchBlobRequest,
        _call,
        rpcLog,
      ): Promise<PartialMessage<FetchBlobResponse>> => {
        const hit = await fetch('blob', request, rpcLog);
        return { ...reply(hit), blobDigest: toWireDigest(hit.record.target) };
      },
    ),
    FetchDirectory: unary(
      rpc,
      route('FetchDirectory', 'read'),
      async (
        request: FetchDirectoryRequest,
        _call,
        rpcLog,
      ): Promise<PartialMessage<FetchDirectoryResponse>> => {
        const hit = await fetch('directory', request, rpcLog);
        return { ...reply(hit), rootDirectoryDigest: toWireDigest(hit.record.target) };
      },
    ),
  };
}

export function createPushService(
  cas: Cas,
  assets: AssetStore,
  rpc: RpcContext,
): UntypedServiceImplementation {
  const push = async (
    kind: AssetKind,
    request: PushRequest,
    wireTarget: { hash: string; sizeBytes: number } | null,
    rpcLog: Logger,
  ): Promise<Record<string, never>> => {
    const method = kind === 'blob' ? 'PushBlob' : 'PushDirectory';
    const targetField = kind === 'blob' ? 'blob_digest' : 'root_directory_digest';
    const instance = parseInstanceName(request.instanceName);
    const uris = checkUris(method, request.uris);
    const qualifiers = canonicalQualifiers(request.qualifiers);
    const target = digestField(wireTarget, request.digestFunction, targetField);
    const referencedBlobs = references(request.referencesBlobs, target, 'references_blobs');
    const referencedDirectories = references(
      request.referencesDirectories,
      target,
      'references_directories',
    );
    const expiresAtMs = toMillis(request.expireAt, 'expire_at');

    const content = { kind, target, referencedBlobs, referencedDirectories };
    const missing = await findMissingContent(cas, content);
    if (missing) {
      throw new CasError(
        'failed_precondition',
        `${method}: ${formatDigest(missing.digest)} (in ${missing.where}) is not in the cache: ` +
          'upload all of the content before pushing its name',
      );
    }

    const pushedAtMs = Date.now();
    const writes = await Promise.allSettled(
      uris.map((uri) => {
        const record = { ...content, uri, qualifiers, pushedAtMs, expiresAtMs };
        const key = assetKey(kind, uri, qualifiers);
        return assets.put(instance, key, encodeAssetRecord(record), expiresAtMs);
      }),
    );
    const failed = writes.find((write) => write.status === 'rejected');
    if (failed) throw failed.reason;
    rpcLog.debug(
      { instance, uris: uris.length, digest: formatDigest(target), kind },
      'asset pushed',
    );
    return {};
  };

  return {
    PushBlob: unary(rpc, route('PushBlob', 'write'), (request: PushBlobRequest, _call, rpcLog) =>
      push('blob', request, request.blobDigest, rpcLog),
    ),
    PushDirectory: unary(
      rpc,
      route('PushDirectory', 'write'),
      (request: PushDirectoryRequest, _call, rpcLog) =>
        push('directory', request, request.rootDirectoryDigest, rpcLog),
    ),
  };
}

function checkUris(method: string, uris: readonly string[]): readonly string[] {
  if (uris.length === 0) throw invalidArgument(`${method} names no uris; give at least one`);
  if (uris.length > MAX_URIS) {
    throw invalidArgument(`${method} names ${uris.length} uris; the limit is ${MAX_URIS}`);
  }
  for (const uri of uris) assertUri(uri);
  return uris;
}

/** The digest function a fetch asks for, or undefined when it names none (any will do). */
function requestedFunction(value: unknown): DigestFunction | undefined {
  if (value === undefined || value === 'UNKNOWN' || value === 0 || value === '') return undefined;
  return resolveDigestFunction(value, '');
}

function digestField(
  wire: { hash: string; sizeBytes: number } | null,
  fn: unknown,
  field: string,
): Digest {
  try {
    return fromWireDigest(wire, fn);
  } catch (error) {
    if (error instanceof CasError) throw invalidArgument(`${field}: ${error.message}`);
    throw error;
  }
}

/** Referenced digests, read with the target's digest function. */
function references(wire: readonly WireDigest[], target: Digest, field: string): Digest[] {
  if (wire.length > MAX_REFERENCES) {
    throw invalidArgument(`${field} holds ${wire.length} digests; the limit is ${MAX_REFERENCES}`);
  }
  return wire.map((digest) => digestField(digest, target.fn, field));
}

type WireDigest = { hash: string; sizeBytes: number };

/**
 * Epoch milliseconds of a Timestamp field; undefined when the field is unset or holds the zero
 * Timestamp, which some clients send for "unset" and which is never a meaningful bound.
 */
function toMillis(timestamp: Timestamp | null, field: string): number | undefined {
  if (!timestamp) return undefined;
  const { seconds, nanos } = timestamp;
  if (seconds === 0 && nanos === 0) return undefined;
  if (
    !Number.isSafeInteger(seconds) ||
    !Number.isInteger(nanos) ||
    nanos < 0 ||
    nanos > 999_999_999
  ) {
    throw invalidArgument(
      `${field} {seconds: ${seconds}, nanos: ${nanos}} is not a valid timestamp`,
    );
  }
  const ms = seconds * 1000 + Math.floor(nanos / 1_000_000);
  if (!Number.isSafeInteger(ms))
    throw invalidArgument(`${field} seconds ${seconds} is out of range`);
  return ms;
}

function toTimestamp(ms: number): Timestamp {
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanos: (ms - seconds * 1000) * 1_000_000 };
}
