// Conversions between the client's digests and what travels on the wire, and the one check of a
// server's capabilities a client makes before it sends anything.
import { type Digest, type DigestFunction, isDigestFunction, toDigest } from '../cas/digest.ts';
import type { ServerCapabilities } from '../grpc/messages.ts';
import { failure } from './errors.ts';

/** Used when a server advertises 0 (no limit): what Tessera advertises by default. */
export const DEFAULT_MAX_BATCH_BYTES = 4 * 1024 * 1024 - 64 * 1024;

/** A digest the server sent, validated for the connection's function. */
export function fromWire(
  fn: DigestFunction,
  wire: { hash: string; sizeBytes: number } | null,
): Digest {
  if (wire === null) throw failure('server answered with a blob that has no digest');
  try {
    return toDigest(fn, wire.hash, wire.sizeBytes);
  } catch (error) {
    throw failure(`server answered with a malformed digest: ${String(error)}`, error);
  }
}

/** `hash/size`, the way the CLI prints and parses digests. */
export function digestText(digest: { hash: string; sizeBytes: number } | Digest | null): string {
  if (digest === null) return '(no digest)';
  return `${digest.hash}/${'size' in digest ? digest.size : digest.sizeBytes}`;
}

/**
 * Checks that the server has a CAS and supports `fn`, and returns the batch limit to use. An
 * empty digest_functions list is what servers older than REAPI 2.1 send: SHA256 only.
 */
export function checkCapabilities(
  capabilities: ServerCapabilities,
  fn: DigestFunction,
  server: string,
): number {
  const cache = capabilities.cacheCapabilities;
  if (cache === null) throw failure(`server ${server} has no content-addressable storage`);

  const offered = cache.digestFunctions.filter(isDigestFunction);
  const supported = offered.length > 0 ? offered : ['SHA256'];
  if (!supported.includes(fn)) {
    throw failure(
      `server ${server} does not support digest function ${fn.toLowerCase()}; it supports ` +
        supported.map((name) => name.toLowerCase()).join(', '),
    );
  }
  return cache.maxBatchTotalSizeBytes > 0 ? cache.maxBatchTotalSizeBytes : DEFAULT_MAX_BATCH_BYTES;
}
