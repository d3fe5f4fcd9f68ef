// Asset names and the records stored under them.
//
// An asset name is a kind ("blob" or "directory"), one URI and a set of qualifiers. Its storage
// key is the SHA-256, in hex, of a canonical serialisation: the JSON array
//   ["tessera-asset/1", kind, uri, [[name, value], ...]]
// with the qualifier pairs sorted by name (UTF-16 code unit order; names are unique, so the order
// is total). JSON escapes every string, so two different names never serialise alike, and the
// order in which a client lists its qualifiers does not matter. The instance name is not part of
// the key: stores namespace by instance themselves. The version tag changes if this format does.
//
// A record is a small JSON document naming the content (one digest), the content it keeps alive
// (`references_blobs`, `references_directories`), when it was pushed and when it expires. It also
// repeats the name, so a lookup can confirm it found the record it asked for.
import { createHash } from 'node:crypto';
import { z } from 'zod';
import {
  DIGEST_FUNCTION_SEGMENTS,
  type Digest,
  type DigestFunction,
  toDigest,
} from '../cas/digest.ts';
import { CasError, invalidArgument } from '../cas/errors.ts';

export type AssetKind = 'blob' | 'directory';

export interface Qualifier {
  readonly name: string;
  readonly value: string;
}

export interface AssetRecord {
  readonly kind: AssetKind;
  readonly uri: string;
  /** Canonical order (see canonicalQualifiers). */
  readonly qualifiers: readonly Qualifier[];
  /** The blob, or the root Directory. */
  readonly target: Digest;
  readonly referencedBlobs: readonly Digest[];
  readonly referencedDirectories: readonly Digest[];
  readonly pushedAtMs: number;
  /** Epoch milliseconds after which the record is not served; undefined: no expiry. */
  readonly expiresAtMs: number | undefined;
}

const KEY_VERSION = 'tessera-asset/1';
const RECORD_VERSION = 1;
/** Long enough for any real URL or URN; keeps keys and records small. */
export const MAX_URI_LENGTH = 8192;
export const MAX_QUALIFIERS = 64;
export const MAX_QUALIFIER_LENGTH = 4096;

/** Validates qualifiers (no empty or repeated names) and returns them in canonical order. */
export function canonicalQualifiers(
  qualifiers: readonly { name?: unknown; value?: unknown }[],
): Qualifier[] {
  if (qualifiers.length > MAX_QUALIFIERS) {
    throw invalidArgument(`${qualifiers.length} qualifiers given; the limit is ${MAX_QUALIFIERS}`);
  }
  const byName = new Map<string, Qualifier>();
  for (const qualifier of qualifiers) {
    const name = typeof qualifier.name === 'string' ? qualifier.name : '';
    const value = typeof qualifier.value === 'string' ? qualifier.value : '';
    if (name === '') throw invalidArgument('a qualifier has an empty name');
    if (name.length + value.length > MAX_QUALIFIER_LENGTH) {
      throw invalidArgument(
        `qualifier "${shorten(name)}" is ${name.length + value.length} characters long; the ` +
          `limit is ${MAX_QUALIFIER_LENGTH}`,
      );
    }
    if (byName.has(name)) {
      throw invalidArgument(`qualifier "${shorten(name)}" is given twice; names must be unique`);
    }
    byName.set(name, { name, value });
  }
  return [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Throws INVALID_ARGUMENT unless `uri` can name an asset. */
export function assertUri(uri: unknown): asserts uri is string {
  if (typeof uri !== 'string' || uri === '') throw invalidArgument('a uri is empty');
  if (uri.length > MAX_URI_LENGTH) {
    throw invalidArgument(
      `uri "${shorten(uri)}" is ${uri.length} characters long; the limit is ${MAX_URI_LENGTH}`,
    );
  }
}

/** The storage key of an asset name: hex SHA-256 of its canonical serialisation. */
export function assetKey(kind: AssetKind, uri: string, qualifiers: readonly Qualifier[]): string {
  const canonical = JSON.stringify([KEY_VERSION, kind, uri, qualifiers.map(pairOf)]);
  return createHash('sha256').update(canonical, 'utf8').digest('hex');
}

/** Whether a record was stored under exactly this name. */
export function recordNames(
  record: AssetRecord,
  kind: AssetKind,
  uri: string,
  qualifiers: readonly Qualifier[],
): boolean {
  return (
    record.kind === kind &&
    record.uri === uri &&
    JSON.stringify(record.qualifiers.map(pairOf)) === JSON.stringify(qualifiers.map(pairOf))
  );
}

export function encodeAssetRecord(record: AssetRecord): Buffer {
  const wire: WireRecord = {
    v: RECORD_VERSION,
    kind: record.kind,
    uri: record.uri,
    qualifiers: record.qualifiers.map(pairOf),
    fn: record.target.fn.toLowerCase(),
    target: digestText(record.target),
    blobs: record.referencedBlobs.map(digestText),
    directories: record.referencedDirectories.map(digestText),
    pushedAt: record.pushedAtMs,
    expiresAt: record.expiresAtMs ?? null,
  };
  return Buffer.from(JSON.stringify(wire), 'utf8');
}

/** Decodes a stored record; a record this build cannot read is an internal error. */
export function decodeAssetRecord(encoded: Uint8Array): AssetRecord {
  let wire: WireRecord;
  try {
    wire = wireRecord.parse(JSON.parse(Buffer.from(encoded).toString('utf8')));
  } catch (error) {
    throw new CasError('internal', 'stored asset record cannot be read', { cause: error });
  }
  const fn = DIGEST_FUNCTION_SEGMENTS.get(wire.fn) as DigestFunction;
  const digest = (text: string) => {
    const [hash, size] = text.split('/');
    return toDigest(fn, hash, Number(size));
  };
  return {
    kind: wire.kind,
    uri: wire.uri,
    qualifiers: wire.qualifiers.map(([name, value]) => ({ name, value })),
    target: digest(wire.target),
    referencedBlobs: wire.blobs.map(digest),
    referencedDirectories: wire.directories.map(digest),
    pushedAtMs: wire.pushedAt,
    expiresAtMs: wire.expiresAt ?? undefined,
  };
}

const digestPattern = /^[0-9a-f]+\/(0|[1-9][0-9]*)$/;
const wireRecord = z.object({
  v: z.literal(RECORD_VERSION),
  kind: z.enum(['blob', 'directory']),
  uri: z.string(),
  qualifiers: z.array(z.tuple([z.string(), z.string()])),
  fn: z.string().refine((fn) => DIGEST_FUNCTION_SEGMENTS.has(fn)),
  target: z.string().regex(digestPattern),
  blobs: z.array(z.string().regex(digestPattern)),
  directories: z.array(z.string().regex(digestPattern)),
  pushedAt: z.number().int().nonnegative(),
  expiresAt: z.number().int().nullable(),
});
type WireRecord = z.infer<typeof wireRecord>;

function pairOf(qualifier: Qualifier): [string, string] {
  return [qualifier.name, qualifier.value];
}

function digestText(digest: Digest): string {
  return `${digest.hash}/${digest.size}`;
}

/** A value cut for an error message. */
export function shorten(text: string): string {
  return text.length > 120 ? `${text.slice(0, 120)}…` : text;
}
