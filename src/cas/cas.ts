// The CAS as the services see it: lookups, verified writes through the staging tier, and reads
// that deliver exactly the committed bytes or fail. It holds the rules both storage modes share:
// the empty blob is always present; concurrent commits of one digest on this server share one
// backend write; a read that ends short is an error, never a clean end of stream; with
// `verifyReads: 'always'`, a whole read whose bytes do not hash to the digest is an error too.
import type { Logger } from '../observability/logger.ts';
import type { ReadThrough } from '../regions/read-through.ts';
import type { StagingBudget } from '../staging/budget.ts';
import { removeStagedFile, Spool, type StagedBlob, spoolBuffer } from '../staging/spool.ts';
import {
  createHasher,
  type Digest,
  digestKey,
  formatDigest,
  type Hasher,
  isEmptyDigest,
} from './digest.ts';
import { CasError, invalidArgument, notFound, outOfRange, unavailable } from './errors.ts';
import { ReservedSink } from './reserved-sink.ts';
import { SpoolSink } from './spool-sink.ts';
import type { BlobStore } from './store.ts';
import type { UploadIdentity, UploadSink } from './upload-sink.ts';
import { ZstdUploadSink } from './zstd-sink.ts';

export interface CasOptions {
  readonly stagingDir: string;
  /** Largest chunk handed to a reader; ByteStream messages carry one each. */
  readonly readChunkBytes: number;
  /** Space in the staging directory; every upload reserves its worst case before it starts. */
  readonly stagingBudget?: StagingBudget;
  /**
   * `always`: hash every whole read (offset 0, no limit short of the end) and fail it on a
   * mismatch. Ranged reads are never verified: a range cannot be checked against the digest.
   */
  readonly verifyReads?: 'never' | 'always';
  /** Where a corrupt stored blob is reported. */
  readonly log?: Logger;
  /**
   * Peer regions asked on a local miss (src/regions/read-through.ts). A blob they supply is
   * verified and committed here before it is reported present or read.
   */
  readonly readThrough?: ReadThrough;
}

export class Cas {
  readonly store: BlobStore;
  readonly #options: CasOptions;
  readonly #inflight = new Map<string, Promise<void>>();

  constructor(store: BlobStore, options: CasOptions) {
    this.store = store;
    this.#options = options;
  }

  /** The digests that are not committed, each reported once. Refreshes leases of the others. */
  async findMissing(digests: readonly Digest[]): Promise<Digest[]> {
    const unique = new Map<string, Digest>();
    for (const digest of digests) {
      if (!isEmptyDigest(digest)) unique.set(digestKey(digest), digest);
    }
    const candidates = [...unique.values()];
    const sizes = await this.store.lookup(candidates);
    const missing = candidates.filter((_, i) => sizes[i] === undefined);
    const readThrough = this.#options.readThrough;
    if (missing.length === 0 || !readThrough?.enabled) return missing;
    const filled = await readThrough.fill(missing, 'lookup');
    return missing.filter((digest) => !filled.has(digestKey(digest)));
  }

  async isCommitted(digest: Digest): Promise<boolean> {
    if (isEmptyDigest(digest)) return true;
    const [size] = await this.store.lookup([digest]);
    return size !== undefined;
  }

  /** A new spool in the staging directory, for a streamed upload. */
  createSpool(digest: Digest): Promise<Spool> {
    return Spool.create(digest, {
      dir: this.#options.stagingDir,
      durable: this.store.durableStaging,
    });
  }

  /**
   * Where the bytes of a streamed upload go: a resumable upload when the store offers one for this
   * blob (unless `whole` asks for a spool file), otherwise a spool file committed at the end.
   */
  async openSink(upload: UploadIdentity, whole = false): Promise<UploadSink> {
    this.assertStorable(upload.digest);
    if (upload.compressor === 'zstd') {
      // Decoded here, then spooled and verified like a plain upload (see cas/zstd-sink.ts).
      return new ZstdUploadSink(await this.openSink({ ...upload, compressor: 'identity' }, true));
    }
    const resumable = this.store.resumable;
    const streaming = resumable?.handles(upload.digest) === true && !whole;
    const bytes = streaming ? resumable.stagingBytes(upload.digest) : upload.digest.size;
    const reservation = this.#reserve(bytes, upload.digest);
    try {
      const sink = streaming
        ? await resumable.open(upload, (digest, work, onShared) =>
            this.commitOnce(digest, work, onShared),
          )
        : new SpoolSink(await this.createSpool(upload.digest), this);
      return new ReservedSink(sink, reservation);
    } catch (error) {
      reservation.release();
      throw error;
    }
  }

  #reserve(bytes: number, digest: Digest) {
    const what = `the upload of ${formatDigest(digest)}`;
    return this.#options.stagingBudget?.reserve(bytes, what) ?? { bytes, release: () => {} };
  }

  /** Refuses a blob larger than the store can hold, as the protocol asks: INVALID_ARGUMENT. */
  assertStorable(digest: Digest): void {
    if (digest.size > this.store.maxBlobSizeBytes) {
      throw invalidArgument(
        `blob ${formatDigest(digest)} is larger than ${this.store.maxBlobSizeBytes} bytes, the ` +
          'largest this cache stores (max_cas_blob_size_bytes)',
      );
    }
  }

  /** The resume offset another replica recorded for this upload, if any. */
  async recordedProgress(upload: UploadIdentity): Promise<number | undefined> {
    // Compressed uploads are never recorded: their offsets count compressed bytes.
    if (upload.compressor !== undefined && upload.compressor !== 'identity') return undefined;
    return this.store.resumable?.progress(upload);
  }

  /** Verifies and commits a whole in-memory blob (the batch RPCs). */
  async putBuffer(digest: Digest, data: Uint8Array): Promise<void> {
    if (data.length !== digest.size) {
      throw invalidArgument(
        `digest size ${digest.size} does not match ${data.length} bytes received for ` +
          formatDigest(digest),
      );
    }
    if (isEmptyDigest(digest)) return;
    const reservation = this.#reserve(digest.size, digest);
    try {
      const staged = await spoolBuffer(digest, data, {
        dir: this.#options.stagingDir,
        durable: this.store.durableStaging,
      });
      await this.commit(staged);
    } finally {
      reservation.release();
    }
  }

  /** Commits a verified staged blob, consuming its file (see `commitOnce`). */
  async commit(staged: StagedBlob): Promise<void> {
    if (isEmptyDigest(staged.digest)) {
      await removeStagedFile(staged.path);
      return;
    }
    await this.commitOnce(
      staged.digest,
      () => this.store.commit(staged),
      () => removeStagedFile(staged.path),
    );
  }

  /**
   * Runs `work`, the commit of a verified blob, unless a commit of the same digest is already
   * running in this process: then it waits for that one and, if it succeeded, runs `onShared`
   * (to drop its own copy) instead of writing the backend again. If it failed, it runs `work`.
   */
  async commitOnce(
    digest: Digest,
    work: () => Promise<void>,
    onShared: () => Promise<void>,
  ): Promise<void> {
    const key = digestKey(digest);
    for (;;) {
      const running = this.#inflight.get(key);
      if (!running) break;
      const succeeded = await running.then(
        () => true,
        () => false,
      );
      if (succeeded) {
        await onShared();
        return;
      }
    }
    const commit = work();
    this.#inflight.set(key, commit);
    try {
      await commit;
    } finally {
      if (this.#inflight.get(key) === commit) this.#inflight.delete(key);
    }
  }

  /**
   * The committed bytes of `digest` from `offset`, at most `limit` of them (0: no limit), in chunks
   * of at most `readChunkBytes`. Throws (between chunks, if need be) unless exactly the expected
   * number of bytes arrives. When whole reads are verified, each chunk is held back until the next
   * one arrives, so the last is sent only once the hash matched: a client never receives every
   * byte of a corrupt blob, and a blob of one chunk is refused before anything is sent.
   */
  async *read(digest: Digest, offset = 0, limit = 0): AsyncGenerator<Buffer> {
    for await (const pieces of this.readPieces(digest, offset, limit)) {
      yield pieces.length === 1 ? (pieces[0] as Buffer) : Buffer.concat(pieces);
    }
  }

  /**
   * `read`, with each chunk left as the pieces the store delivered, for a caller that copies them
   * into a message of its own anyway (ByteStream Read): joining them first would copy every byte
   * once more, and allocate as much again for the garbage collector to reclaim.
   */
  async *readPieces(digest: Digest, offset = 0, limit = 0): AsyncGenerator<Buffer[]> {
    if (!Number.isSafeInteger(offset) || offset < 0 || offset > digest.size) {
      throw outOfRange(`read offset ${offset} is outside blob ${formatDigest(digest)}`);
    }
    // A limit past the end of the blob, however large, reads to the end.
    if (Number.isNaN(limit) || limit < 0) {
      throw invalidArgument(`read_limit ${limit} is negative; 0 means no limit`);
    }
    const remaining = digest.size - offset;
    const length = limit > 0 ? Math.min(limit, remaining) : remaining;
    if (isEmptyDigest(digest)) return;

    const source = await this.#openRead(digest, offset, length);
    const verify = this.#options.verifyReads === 'always' && length === digest.size;
    const hasher = verify ? await createHasher(digest.fn) : undefined;
    const chunkBytes = this.#options.readChunkBytes;
    let delivered = 0;
    let held: Buffer[] | undefined;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    try {
      for await (const piece of source) {
        if (delivered + pendingBytes + piece.length > length) {
          throw unavailable(
            `object store returned more than the ${length} bytes requested of ` +
              formatDigest(digest),
          );
        }
        let chunk = Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
        hasher?.update(chunk);
        while (pendingBytes + chunk.length >= chunkBytes) {
          const take = chunkBytes - pendingBytes;
          pending.push(chunk.subarray(0, take));
          chunk = chunk.subarray(take);
          const out = pending;
          pending = [];
          pendingBytes = 0;
          delivered += chunkBytes;
          if (hasher) {
            if (held) yield held;
            held = out;
          } else {
            yield out;
          }
        }
        if (chunk.length > 0) {
          pending.push(chunk);
          pendingBytes += chunk.length;
        }
      }
    } catch (error) {
      if (error instanceof CasError) throw error;
      throw unavailable(
        `reading ${formatDigest(digest)} from the store failed after ${delivered} bytes`,
        error,
      );
    }
    if (delivered + pendingBytes !== length) {
      throw unavailable(
        `object store ended ${formatDigest(digest)} after ${delivered + pendingBytes} of ` +
          `${length} bytes`,
      );
    }
    if (hasher) await this.#assertIntact(digest, hasher);
    if (held) yield held;
    if (pendingBytes > 0) yield pending;
  }

  /** The store's read, or on a miss a read-through from peer regions and then the store's read. */
  async #openRead(digest: Digest, offset: number, length: number) {
    try {
      return await this.store.read(digest, offset, length);
    } catch (error) {
      const readThrough = this.#options.readThrough;
      const miss = error instanceof CasError && error.code === 'not_found';
      if (!miss || !readThrough?.enabled) throw error;
      const filled = await readThrough.fill([digest], 'read');
      if (!filled.has(digestKey(digest))) throw error;
    }
    return this.store.read(digest, offset, length);
  }

  /**
   * Verifies and commits a blob whose bytes `source` yields (a read-through from a peer region),
   * through the same staging and commit as an upload. Throws INVALID_ARGUMENT, with nothing
   * committed, when the bytes do not match the digest.
   */
  async putStream(digest: Digest, source: AsyncIterable<Uint8Array>): Promise<void> {
    this.assertStorable(digest);
    if (isEmptyDigest(digest)) return;
    const reservation = this.#reserve(digest.size, digest);
    try {
      const spool = await this.createSpool(digest);
      try {
        for await (const chunk of source) await spool.append(spool.size, chunk);
      } catch (error) {
        await spool.discard();
        throw error;
      }
      await this.commit(await spool.finish());
    } finally {
      reservation.release();
    }
  }

  /**
   * Fails a whole read whose bytes do not hash to the digest: the stored object was changed or
   * damaged behind Tessera's back. The commit is dropped, so the blob reads as missing and the
   * next upload writes it again; the client gets NOT_FOUND, which makes a build re-upload it.
   */
  async #assertIntact(digest: Digest, hasher: Hasher): Promise<void> {
    const actual = hasher.digest();
    if (actual === digest.hash) return;
    const log = this.#options.log?.child({ digest: formatDigest(digest) });
    log?.error(
      { actualHash: actual },
      'stored bytes do not match the digest; dropping the commit so the next upload replaces them',
    );
    try {
      await this.store.forget(digest);
    } catch (error) {
      log?.error({ err: error }, 'could not drop the commit of a corrupt blob');
    }
    throw notFound(
      `blob ${formatDigest(digest)} is not in the cache (its stored copy was corrupt); upload it ` +
        'again',
    );
  }

  /** A whole committed blob in memory; for blobs the caller has bounded (batches, trees). */
  async readAll(digest: Digest): Promise<Buffer> {
    if (digest.size > MAX_IN_MEMORY_BYTES) {
      throw new CasError(
        'resource_exhausted',
        `blob ${formatDigest(digest)} is larger than ${MAX_IN_MEMORY_BYTES} bytes; read it with ` +
          'ByteStream',
      );
    }
    const parts: Buffer[] = [];
    for await (const part of this.read(digest)) parts.push(part);
    return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, digest.size);
  }
}

/** Largest blob `readAll` holds in memory. */
export const MAX_IN_MEMORY_BYTES = 64 * 1024 * 1024;
