// Digests: which hash functions Tessera accepts, how a digest function is inferred from a hash's
// length, and incremental hashers. Node's crypto covers MD5, SHA-1 and SHA-2; BLAKE3 comes from
// hash-wasm, which runs the reference algorithm in WebAssembly.
import { createHash } from 'node:crypto';
import {
  createBLAKE3,
  createMD5,
  createSHA1,
  createSHA256,
  createSHA384,
  createSHA512,
  type IHasher,
} from 'hash-wasm';
import { invalidArgument } from './errors.ts';

/** The digest functions Tessera serves, by their REAPI enum names. */
export const DIGEST_FUNCTIONS = ['SHA256', 'SHA1', 'MD5', 'SHA384', 'SHA512', 'BLAKE3'] as const;
export type DigestFunction = (typeof DIGEST_FUNCTIONS)[number];

/** Lower-case names, as they appear in resource names and storage keys. */
export const DIGEST_FUNCTION_SEGMENTS: ReadonlyMap<string, DigestFunction> = new Map(
  DIGEST_FUNCTIONS.map((name) => [name.toLowerCase(), name]),
);

const HEX_LENGTH: Record<DigestFunction, number> = {
  SHA256: 64,
  SHA1: 40,
  MD5: 32,
  SHA384: 96,
  SHA512: 128,
  BLAKE3: 64,
};

/**
 * Functions whose resource names carry no digest-function segment: the server tells them apart by
 * the hash length. A 64-digit hash without a segment is SHA-256.
 */
const INFERRED_BY_LENGTH: ReadonlyMap<number, DigestFunction> = new Map([
  [32, 'MD5'],
  [40, 'SHA1'],
  [64, 'SHA256'],
  [96, 'SHA384'],
  [128, 'SHA512'],
]);

/** Largest blob size Tessera accepts: sizes are carried in JS numbers, exact up to 2^53. */
export const MAX_BLOB_SIZE_BYTES = Number.MAX_SAFE_INTEGER;

export interface Digest {
  readonly fn: DigestFunction;
  /** Lower-case hex. */
  readonly hash: string;
  readonly size: number;
}

const HEX_RE = /^[0-9a-f]+$/;

export function isDigestFunction(value: unknown): value is DigestFunction {
  return typeof value === 'string' && (DIGEST_FUNCTIONS as readonly string[]).includes(value);
}

/**
 * The function a request names, or, when it names none (UNKNOWN or absent, as every pre-2.3 client
 * sends), the one implied by the hash length.
 */
export function resolveDigestFunction(requested: unknown, hash: string): DigestFunction {
  if (requested === undefined || requested === 'UNKNOWN' || requested === 0 || requested === '') {
    const inferred = INFERRED_BY_LENGTH.get(hash.length);
    if (!inferred) {
      throw invalidArgument(
        `hash "${truncate(hash)}" has ${hash.length} hex digits, which matches no digest ` +
          'function ' +
          `(expected 32, 40, 64, 96 or 128)`,
      );
    }
    return inferred;
  }
  if (!isDigestFunction(requested)) {
    throw invalidArgument(
      `digest function ${String(requested)} is not supported; supported: ` +
        DIGEST_FUNCTIONS.join(', '),
    );
  }
  return requested;
}

/** Validates a hash and size for `fn` and returns the digest. */
export function toDigest(fn: DigestFunction, hash: unknown, size: unknown): Digest {
  if (typeof hash !== 'string' || !HEX_RE.test(hash)) {
    throw invalidArgument(`hash "${truncate(String(hash))}" is not lower-case hexadecimal`);
  }
  const expected = HEX_LENGTH[fn];
  if (hash.length !== expected) {
    throw invalidArgument(
      `hash "${truncate(hash)}" has ${hash.length} hex digits; ${fn} needs ${expected}`,
    );
  }
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw invalidArgument(
      `digest size ${String(size)} is not a whole number between 0 and ${MAX_BLOB_SIZE_BYTES}`,
    );
  }
  return { fn, hash, size };
}

/** A wire Digest message ({hash, sizeBytes}) validated against the request's function. */
export function fromWireDigest(
  wire: { hash?: unknown; sizeBytes?: unknown } | null | undefined,
  requestedFn: unknown,
): Digest {
  if (!wire) throw invalidArgument('digest is missing');
  const hash = typeof wire.hash === 'string' ? wire.hash : '';
  if (hash === '') throw invalidArgument('digest hash is empty');
  const fn = resolveDigestFunction(requestedFn, hash);
  return toDigest(fn, hash, wire.sizeBytes);
}

export function toWireDigest(digest: Digest): {
  hash: string;
  sizeBytes: number;
} {
  return { hash: digest.hash, sizeBytes: digest.size };
}

/** `fn/hash/size`, for logs and messages. */
export function formatDigest(digest: Digest): string {
  return `${digest.fn.toLowerCase()}/${digest.hash}/${digest.size}`;
}

/** Identity of a blob for maps and locks. */
export function digestKey(digest: Digest): string {
  return `${digest.fn}:${digest.hash}:${digest.size}`;
}

export interface Hasher {
  update(chunk: Uint8Array): void;
  /** Lower-case hex. The hasher cannot be used afterwards. */
  digest(): string;
}

export async function createHasher(fn: DigestFunction): Promise<Hasher> {
  if (fn === 'BLAKE3') {
    const wasm: IHasher = await createBLAKE3();
    wasm.init();
    return {
      update: (chunk) => void wasm.update(chunk),
      digest: () => wasm.digest('hex'),
    };
  }
  const hash = createHash(fn === 'SHA1' ? 'sha1' : fn.toLowerCase());
  return {
    update: (chunk) => void hash.update(chunk),
    digest: () => hash.digest('hex'),
  };
}

/** A hasher whose state can be saved and restored in another process. */
export interface ResumableHasher extends Hasher {
  save(): Uint8Array;
}

const WASM_HASHERS: Record<DigestFunction, () => Promise<IHasher>> = {
  SHA256: createSHA256,
  SHA1: createSHA1,
  MD5: createMD5,
  SHA384: createSHA384,
  SHA512: createSHA512,
  BLAKE3: () => createBLAKE3(),
};

/**
 * A WebAssembly hasher (hash-wasm) that can checkpoint its state, for uploads that may continue
 * on another replica. Node's native hashers are faster but cannot export their state, so they
 * serve every other upload. `state` resumes from a checkpoint that `save()` produced.
 */
export async function createResumableHasher(
  fn: DigestFunction,
  state?: Uint8Array,
): Promise<ResumableHasher> {
  const wasm = await WASM_HASHERS[fn]();
  if (state) wasm.load(state);
  else wasm.init();
  return {
    update: (chunk) => void wasm.update(chunk),
    digest: () => wasm.digest('hex'),
    save: () => wasm.save(),
  };
}

export async function hashBytes(fn: DigestFunction, bytes: Uint8Array): Promise<string> {
  const hasher = await createHasher(fn);
  hasher.update(bytes);
  return hasher.digest();
}

/** Hashes of the empty blob, which is always present. BLAKE3's is a published constant. */
const EMPTY_HASH: Record<DigestFunction, string> = {
  SHA256: createHash('sha256').digest('hex'),
  SHA1: createHash('sha1').digest('hex'),
  MD5: createHash('md5').digest('hex'),
  SHA384: createHash('sha384').digest('hex'),
  SHA512: createHash('sha512').digest('hex'),
  BLAKE3: 'af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262',
};

export function emptyDigest(fn: DigestFunction): Digest {
  return { fn, hash: EMPTY_HASH[fn], size: 0 };
}

/** True for the one digest every server must report present without storing anything. */
export function isEmptyDigest(digest: Digest): boolean {
  return digest.size === 0 && digest.hash === EMPTY_HASH[digest.fn];
}

/** Throws INVALID_ARGUMENT unless the bytes received match the digest. */
export function assertMatches(digest: Digest, receivedSize: number, receivedHash: string): void {
  if (receivedSize !== digest.size) {
    throw invalidArgument(
      `digest size ${digest.size} does not match ${receivedSize} bytes received for ` +
        formatDigest(digest),
    );
  }
  if (receivedHash !== digest.hash) {
    throw invalidArgument(
      `data hashes to ${receivedHash}, not to ${digest.hash} (${digest.fn.toLowerCase()})`,
    );
  }
}

function truncate(text: string): string {
  return text.length > 140 ? `${text.slice(0, 140)}…` : text;
}
