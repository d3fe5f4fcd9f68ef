// Where the bytes of one upload go while they arrive. Two kinds: a spool file that is committed
// whole at the end (small blobs, and every blob in embedded mode), and, in S3 mode, a multipart
// upload whose parts go to S3 as they fill and whose progress is checkpointed in Redis so any
// replica can continue it (storage/s3-streaming-upload.ts).
import { type Digest, formatDigest } from './digest.ts';
import { CasError, invalidArgument } from './errors.ts';

/** One upload: the blob it is for, and the client's name for it. */
export interface UploadIdentity {
  readonly instance: string;
  readonly uploadId: string;
  readonly digest: Digest;
  /** How the client encodes the bytes it sends; identity when absent. */
  readonly compressor?: string;
}

/** Runs a final commit unless this process is already committing the digest (see Cas). */
export type CommitGate = (
  digest: Digest,
  work: () => Promise<void>,
  onShared: () => Promise<void>,
) => Promise<void>;

/** Uploads that another replica can continue, offered by stores that support them. */
export interface ResumableUploads {
  /** Whether an upload of this blob should be resumable (large enough to be worth it). */
  handles(digest: Digest): boolean;
  /** The most staging space an upload of this blob holds at once (its part files). */
  stagingBytes(digest: Digest): number;
  /** Continues the recorded upload, or starts one. */
  open(upload: UploadIdentity, commitOnce: CommitGate): Promise<UploadSink>;
  /** The recorded resume offset, or undefined when no replica has the upload. */
  progress(upload: UploadIdentity): Promise<number | undefined>;
}

export interface UploadSink {
  readonly digest: Digest;
  /** Bytes received so far: a write must start at or before this offset. */
  readonly received: number;
  /**
   * What QueryWriteStatus reports: where a client may resume. For uploads checkpointed in Redis
   * this is the checkpoint, so every replica reports the same offset.
   */
  readonly resumeOffset: number;
  /** Writes `chunk`, which the client sent at `offset`. Calls run one after another. */
  append(offset: number, chunk: Uint8Array): Promise<void>;
  /** Verifies size and hash and commits. The sink is spent afterwards, whatever the outcome. */
  finish(): Promise<void>;
  /** Drops everything this sink holds (files, and the multipart upload if it still owns it). */
  abandon(): Promise<void>;
  /**
   * For sinks other replicas can continue: lets go of the upload (this replica is stopping) but
   * leaves it resumable elsewhere. Sinks without it are abandoned at shutdown.
   */
  detach?(): Promise<void>;
  /**
   * For sinks other replicas can continue: makes this one the owner again for a new Write here.
   * False when another replica advanced the upload meanwhile; the sink is then spent.
   */
  reclaim?(): Promise<boolean>;
}

/** A write offset past the bytes received; the upload stays resumable. */
export class OffsetMismatchError extends CasError {
  constructor(message: string) {
    super('invalid_argument', message);
  }
}

/**
 * The part of `chunk` that is new, given that `received` bytes are already in. A write may start
 * before `received` (a client resending from an older `committed_size`): the overlap is skipped,
 * which is safe because the hash is computed over the bytes actually kept and checked at the end.
 * A write may not start after `received`, nor reach past the digest's size.
 */
export function newBytes(
  digest: Digest,
  received: number,
  offset: number,
  chunk: Uint8Array,
): Uint8Array {
  if (!Number.isSafeInteger(offset) || offset < 0 || offset > received) {
    throw new OffsetMismatchError(
      `write offset ${offset} does not continue the upload of ${formatDigest(digest)}, ` +
        `which has ${received} bytes; resume at ${received}`,
    );
  }
  const end = offset + chunk.length;
  if (end > digest.size) {
    throw invalidArgument(
      `upload of ${formatDigest(digest)} would reach ${end} bytes, ` +
        `more than the digest size ${digest.size}`,
    );
  }
  return end <= received ? chunk.subarray(0, 0) : chunk.subarray(received - offset);
}
