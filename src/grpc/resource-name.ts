// ByteStream resource names, parsed and validated. The layouts (REAPI v2):
//   read:   {instance}/blobs/{fn/}{hash}/{size}
//           {instance}/compressed-blobs/{compressor}/{fn/}{hash}/{size}
//   write:  {instance}/uploads/{uuid}/blobs/{fn/}{hash}/{size}{/metadata…}
//           {instance}/uploads/{uuid}/compressed-blobs/{compressor}/{fn/}{hash}/{size}{/metadata…}
// The instance name may be empty or hold several segments, none of them reserved. The digest
// function segment is present only for functions that cannot be told apart by hash length.
import {
  DIGEST_FUNCTION_SEGMENTS,
  type Digest,
  type DigestFunction,
  resolveDigestFunction,
  toDigest,
} from '../cas/digest.ts';
import { invalidArgument } from '../cas/errors.ts';

export const COMPRESSORS = ['identity', 'zstd', 'deflate', 'brotli'] as const;
export type Compressor = (typeof COMPRESSORS)[number];

/** Segments that may not appear inside an instance name. */
const RESERVED_SEGMENTS = new Set([
  'blobs',
  'uploads',
  'compressed-blobs',
  'actions',
  'actionResults',
  'operations',
  'capabilities',
]);

const MAX_RESOURCE_NAME_LENGTH = 4096;
const MAX_SEGMENT_LENGTH = 1024;
const SIZE_RE = /^(0|[1-9][0-9]{0,15})$/;
const UUID_SEGMENT_RE = /^[A-Za-z0-9._~-]{1,200}$/;

export interface BlobResource {
  readonly instance: string;
  readonly digest: Digest;
  readonly compressor: Compressor;
}

export interface UploadResource extends BlobResource {
  readonly uploadId: string;
}

export function parseReadResourceName(name: unknown): BlobResource {
  const segments = splitName(name);
  const at = segments.findIndex((s) => s === 'blobs' || s === 'compressed-blobs');
  if (at < 0) {
    throw invalidArgument(
      `resource name "${show(name)}" has no "blobs" or "compressed-blobs" segment; expected ` +
        '{instance}/blobs/{hash}/{size}',
    );
  }
  const instance = parseInstance(segments.slice(0, at), name);
  const { digest, compressor, rest } = parseBlobPart(segments.slice(at), name);
  if (rest.length > 0) {
    throw invalidArgument(`resource name "${show(name)}" has extra segments after the size`);
  }
  return { instance, digest, compressor };
}

export function parseWriteResourceName(name: unknown): UploadResource {
  const segments = splitName(name);
  const at = segments.indexOf('uploads');
  if (at < 0) {
    throw invalidArgument(
      `resource name "${show(name)}" has no "uploads" segment; expected ` +
        '{instance}/uploads/{uuid}/blobs/{hash}/{size}',
    );
  }
  const instance = parseInstance(segments.slice(0, at), name);
  const uploadId = segments[at + 1];
  if (uploadId === undefined || !UUID_SEGMENT_RE.test(uploadId)) {
    throw invalidArgument(
      `resource name "${show(name)}" needs an upload id (letters, digits, "-", "_", ".", "~") ` +
        'after "uploads"',
    );
  }
  // Anything after the size is client metadata, which the protocol lets servers ignore.
  const { digest, compressor } = parseBlobPart(segments.slice(at + 2), name);
  return { instance, uploadId, digest, compressor };
}

/** Validates an instance name given in a request message (not a resource name). */
export function parseInstanceName(name: unknown): string {
  if (name === undefined || name === null || name === '') return '';
  if (typeof name !== 'string') throw invalidArgument('instance name must be a string');
  return parseInstance(splitName(name), name);
}

function splitName(name: unknown): string[] {
  if (typeof name !== 'string' || name === '') {
    throw invalidArgument('resource name is empty');
  }
  if (name.length > MAX_RESOURCE_NAME_LENGTH) {
    throw invalidArgument(
      `resource name is ${name.length} characters long; the limit is ${MAX_RESOURCE_NAME_LENGTH}`,
    );
  }
  return name.split('/');
}

function parseInstance(segments: string[], whole: unknown): string {
  for (const segment of segments) {
    if (segment === '' || segment === '.' || segment === '..') {
      throw invalidArgument(`instance name in "${show(whole)}" has an empty, "." or ".." segment`);
    }
    if (segment.length > MAX_SEGMENT_LENGTH) {
      throw invalidArgument(
        `instance name segment of ${segment.length} characters exceeds ${MAX_SEGMENT_LENGTH}`,
      );
    }
    if (RESERVED_SEGMENTS.has(segment)) {
      throw invalidArgument(`instance name in "${show(whole)}" uses reserved word "${segment}"`);
    }
    const control = controlCharacterIn(segment);
    if (control !== undefined) {
      throw invalidArgument(
        `instance name in "${show(whole)}" has a control character (${control})`,
      );
    }
  }
  return segments.join('/');
}

function parseBlobPart(
  segments: string[],
  whole: unknown,
): { digest: Digest; compressor: Compressor; rest: string[] } {
  let i = 0;
  const kind = segments[i++];
  let compressor: Compressor = 'identity';
  if (kind === 'compressed-blobs') {
    const named = segments[i++];
    if (named === undefined || !(COMPRESSORS as readonly string[]).includes(named)) {
      throw invalidArgument(
        `compressor "${named ?? ''}" in "${show(whole)}" is unknown; known: ` +
          COMPRESSORS.join(', '),
      );
    }
    compressor = named as Compressor;
  } else if (kind !== 'blobs') {
    throw invalidArgument(`resource name "${show(whole)}" needs "blobs" after the upload id`);
  }

  let fn: DigestFunction | undefined;
  const maybeFn = segments[i];
  if (maybeFn !== undefined && DIGEST_FUNCTION_SEGMENTS.has(maybeFn)) {
    fn = DIGEST_FUNCTION_SEGMENTS.get(maybeFn);
    i++;
  } else if (maybeFn !== undefined && looksLikeFunction(maybeFn) && segments[i + 2] !== undefined) {
    throw invalidArgument(`digest function "${maybeFn}" in "${show(whole)}" is not supported`);
  }
  const hash = segments[i++];
  const sizeText = segments[i++];
  if (hash === undefined || hash === '' || sizeText === undefined) {
    throw invalidArgument(`resource name "${show(whole)}" lacks a hash and size`);
  }
  if (!SIZE_RE.test(sizeText)) {
    throw invalidArgument(`size "${sizeText}" in "${show(whole)}" is not a non-negative integer`);
  }
  const resolved = fn ?? resolveDigestFunction(undefined, hash);
  const digest = toDigest(resolved, hash, Number(sizeText));
  return { digest, compressor, rest: segments.slice(i) };
}

/**
 * A name such as `vso`, `sha256tree` or `SHA256` rather than a malformed hash: short, with a
 * letter beyond hex. It counts as a function only when a hash and a size follow it.
 */
function looksLikeFunction(segment: string): boolean {
  return /^[A-Za-z][A-Za-z0-9]{0,15}$/.test(segment) && /[g-zG-Z]/.test(segment);
}

/** The first control character in `text` as `U+001B`, or undefined when there is none. */
function controlCharacterIn(text: string): string | undefined {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) {
      return `U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
    }
  }
  return undefined;
}

function show(name: unknown): string {
  const text = String(name);
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}
