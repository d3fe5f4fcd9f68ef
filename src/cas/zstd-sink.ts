// The upload sink of a compressed-blobs/zstd Write: it decodes the compressed stream as it arrives
// and feeds the uncompressed bytes to an ordinary sink, which hashes, verifies and commits them
// exactly as it does for a plain upload. A stream that does not decode, decodes past the digest's
// size or ends inside a frame is INVALID_ARGUMENT, and nothing is committed.
//
// Offsets count compressed bytes. REAPI v2 says the first message's write_offset is an offset in
// the uncompressed blob and each later one the first plus the compressed bytes sent before; a
// fresh upload starts at 0, so both readings agree, and a resume (the client sends from the
// committed_size QueryWriteStatus reported) continues in the compressed stream.
//
// LIMITATION: the decoder's state lives in this process, so a compressed upload resumes only on
// the replica that received its beginning, and its inner sink is always a spool file (the blob is
// written to S3 at finish_write, not part by part). Clients that need cross-replica resumption of
// very large blobs can upload them uncompressed.
import { formatDigest } from './digest.ts';
import { invalidArgument } from './errors.ts';
import { OffsetMismatchError, type UploadSink } from './upload-sink.ts';
import { maxCompressedBytes, ZstdDecoder } from './zstd.ts';

export class ZstdUploadSink implements UploadSink {
  readonly #inner: UploadSink;
  readonly #decoder: ZstdDecoder;
  readonly #what: string;
  readonly #maxCompressed: number;
  #compressed = 0;

  constructor(inner: UploadSink) {
    this.#inner = inner;
    this.#what = `compressed-blobs/zstd upload of ${formatDigest(inner.digest)}`;
    this.#decoder = new ZstdDecoder(inner.digest.size, this.#what);
    this.#maxCompressed = maxCompressedBytes(inner.digest.size);
  }

  get digest() {
    return this.#inner.digest;
  }

  /** Compressed bytes received: what the Write's offsets and committed_size count. */
  get received(): number {
    return this.#compressed;
  }

  get resumeOffset(): number {
    return this.#compressed;
  }

  async append(offset: number, chunk: Uint8Array): Promise<void> {
    if (!Number.isSafeInteger(offset) || offset < 0 || offset > this.#compressed) {
      throw new OffsetMismatchError(
        `write offset ${offset} does not continue the ${this.#what}, which has ` +
          `${this.#compressed} compressed bytes; resume at ${this.#compressed}`,
      );
    }
    const end = offset + chunk.length;
    if (end <= this.#compressed) return;
    if (end > this.#maxCompressed) {
      throw invalidArgument(
        `${this.#what} would reach ${end} compressed bytes, more than any zstd encoding of ` +
          `${this.digest.size} bytes needs (${this.#maxCompressed})`,
      );
    }
    const fresh = chunk.subarray(this.#compressed - offset);
    this.#compressed = end;
    for (const piece of this.#decoder.write(fresh)) {
      await this.#inner.append(this.#inner.received, piece);
    }
  }

  async finish(): Promise<void> {
    try {
      this.#decoder.end();
    } catch (error) {
      await this.#inner.abandon();
      throw error;
    }
    await this.#inner.finish();
  }

  abandon(): Promise<void> {
    return this.#inner.abandon();
  }
}
