// The contract between the CAS logic and a place that keeps committed blobs. Two implementations:
// the S3 + Redis store (cloud mode) and the directory store (embedded mode). Both pass one
// conformance suite (test/conformance).
//
// The rule every implementation keeps: a blob is visible (findMissing, read) only once it is
// committed, and it is committed only once the whole, verified content is durable.

import type { StagedBlob } from '../staging/spool.ts';
import type { Digest } from './digest.ts';
import type { ResumableUploads } from './upload-sink.ts';

export interface BlobStore {
  /** fsync staging files before `commit`: true where commit is a rename of the staging file. */
  readonly durableStaging: boolean;

  /** Largest blob the store can hold; larger uploads are refused before a byte is stored. */
  readonly maxBlobSizeBytes: number;

  /** Large uploads that any replica can continue, where the store supports them. */
  readonly resumable?: ResumableUploads;

  /**
   * The committed size of each digest, or undefined when it is not committed (or committed with a
   * different size). Refreshes the lease of each one found. One backend round trip for the batch.
   */
  lookup(digests: readonly Digest[]): Promise<(number | undefined)[]>;

  /**
   * Makes a verified staged blob durable and committed. Consumes the staged file: it is gone when
   * this returns or throws.
   */
  commit(staged: StagedBlob): Promise<void>;

  /**
   * The committed bytes [offset, offset + length). Throws `not_found` when the blob is not
   * committed, or when its content has vanished from the backend (the stale entry is dropped).
   * The caller verifies that exactly `length` bytes arrive.
   */
  read(
    digest: Digest,
    offset: number,
    length: number,
  ): Promise<AsyncIterable<Uint8Array> | Iterable<Uint8Array>>;

  /**
   * Drops the commit of a blob whose stored bytes turned out not to match its digest, so the next
   * upload of it writes it again. Idempotent.
   */
  forget(digest: Digest): Promise<void>;

  close(): Promise<void>;
}

export interface ActionCacheStore {
  /** The stored, encoded ActionResult, refreshing its lease; undefined on a miss. */
  getActionResult(instance: string, action: Digest): Promise<Buffer | undefined>;
  putActionResult(instance: string, action: Digest, encoded: Uint8Array): Promise<void>;
}

export interface Backend {
  readonly blobs: BlobStore;
  readonly actions: ActionCacheStore;
  /** A short description for the startup log line. */
  readonly description: string;
  close(): Promise<void>;
}
