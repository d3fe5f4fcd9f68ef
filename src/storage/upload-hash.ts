// How a streaming upload (s3-streaming-upload.ts) hashes what it receives. Two ways, chosen when
// the upload begins and recorded in its checkpoint:
//   - native: Node's hasher takes the bytes on the event loop as they arrive (about 0.7 ms of CPU
//     per MB here). Its state cannot be exported, so checkpoints carry none (`hashState` '') and
//     only the process holding the hasher can continue the upload.
//   - resumable: each sealed part is hashed from its file by a WebAssembly hasher in a worker
//     thread (cas/part-hashers.ts), chained from the state the previous part ended with; the state
//     after each part goes into the checkpoint, so any replica can continue. Several times the CPU.
// BLAKE3 has no native hasher, so it is always resumable.
import { createHash } from 'node:crypto';
import { createResumableHasher, type DigestFunction } from '../cas/digest.ts';
import type { PartHashers } from '../cas/part-hashers.ts';

export interface UploadHash {
  /** Whether the states this hash returns let another replica continue the upload. */
  readonly resumable: boolean;
  /** The upload's bytes as they arrive, each exactly once and in order. */
  take(bytes: Uint8Array): void;
  /**
   * Hashes a sealed part, the first `length` bytes of the file at `path`, and resolves the state
   * after it for the checkpoint: base64, or '' when not resumable.
   */
  afterPart(path: string, length: number): Promise<string>;
  /** Like afterPart for the last part (`length` 0 for none), resolving the digest in hex. */
  finish(path: string, length: number): Promise<string>;
}

/** The state a new upload's checkpoint starts with: '' for a native hash. */
export async function initialHashState(fn: DigestFunction, resumable: boolean): Promise<string> {
  if (!resumable && fn !== 'BLAKE3') return '';
  return Buffer.from((await createResumableHasher(fn)).save()).toString('base64');
}

/** The hash of an upload whose checkpoint holds `state` (from initialHashState or afterPart). */
export function uploadHash(fn: DigestFunction, state: string, hashers: PartHashers): UploadHash {
  return state === '' ? nativeHash(fn) : resumableHash(fn, state, hashers);
}

function nativeHash(fn: DigestFunction): UploadHash {
  const hash = createHash(fn === 'SHA1' ? 'sha1' : fn.toLowerCase());
  return {
    resumable: false,
    take: (bytes) => void hash.update(bytes),
    // Every byte up to here is already in the hasher.
    afterPart: () => Promise.resolve(''),
    finish: () => Promise.resolve(hash.digest('hex')),
  };
}

function resumableHash(fn: DigestFunction, state: string, hashers: PartHashers): UploadHash {
  let chain: Promise<Uint8Array> = Promise.resolve(Buffer.from(state, 'base64'));
  const job = (from: Uint8Array, path: string, length: number) => ({
    fn,
    state: from,
    path,
    start: 0,
    length,
  });
  return {
    resumable: true,
    take: () => undefined,
    afterPart(path, length) {
      chain = chain.then((from) => hashers.advance(job(from, path, length)));
      return chain.then((after) => Buffer.from(after).toString('base64'));
    },
    finish: (path, length) => chain.then((from) => hashers.finish(job(from, path, length))),
  };
}
