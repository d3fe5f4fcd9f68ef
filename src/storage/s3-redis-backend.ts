// S3 mode: blob content in S3, commits and action results in Redis.
//
// Commit sequence for a verified staged blob, and what a crash after each step leaves:
//   1. look the digest up in Redis; already committed -> drop the staged file, done.
//   2. PutObject / multipart upload of the staged file -> crash: a staging file (swept at start)
//      and possibly an object or an incomplete multipart upload with no commit entry: invisible,
//      reclaimed by lifecycle rules or GC, rewritten by the next upload of that digest.
//   3. multipart only: HEAD checks the stored size.
//   4. SET the commit entry -> from here the blob is visible on every replica.
//   5. remove the staged file -> crash before: an orphan staging file, swept at start.
// The client is answered only after step 4.
import { rm } from 'node:fs/promises';
import { type Digest, formatDigest } from '../cas/digest.ts';
import { notFound } from '../cas/errors.ts';
import { PartHashers } from '../cas/part-hashers.ts';
import type { ActionCacheStore, Backend, BlobStore } from '../cas/store.ts';
import type { CommitGate, ResumableUploads } from '../cas/upload-sink.ts';
import type { RedisCommitIndex } from '../commit-index/redis-commit-index.ts';
import { UploadStateStore } from '../commit-index/upload-state.ts';
import { crashPoint } from '../observability/crash-points.ts';
import type { Logger } from '../observability/logger.ts';
import type { StagedBlob } from '../staging/spool.ts';
import { partSizeFor } from './s3-multipart.ts';
import { ObjectMissingError, type S3ObjectStore } from './s3-object-store.ts';
import { S3StreamingUpload, type StreamingUploadContext } from './s3-streaming-upload.ts';

/** Settings for uploads that stream to S3 as they arrive and can resume on any replica. */
export interface ResumableUploadSettings {
  readonly stagingDir: string;
  /** How long a broken-off upload's checkpoint is kept for a resume. */
  readonly idleTimeoutMs: number;
}

export class S3RedisBackend implements BlobStore, ActionCacheStore, Backend {
  readonly durableStaging = false;
  /** S3's largest object: 5 TiB. */
  readonly maxBlobSizeBytes = 5 * 1024 ** 4;
  readonly resumable: ResumableUploads | undefined;
  readonly blobs = this;
  readonly actions = this;
  readonly description: string;
  readonly #objects: S3ObjectStore;
  readonly #index: RedisCommitIndex;
  readonly #log: Logger;
  readonly #hashers = new PartHashers();

  constructor(
    objects: S3ObjectStore,
    index: RedisCommitIndex,
    log: Logger,
    description: string,
    resumable?: ResumableUploadSettings,
  ) {
    this.#objects = objects;
    this.#index = index;
    this.#log = log;
    this.description = description;
    this.resumable = resumable && this.#resumableUploads(resumable);
  }

  #resumableUploads(settings: ResumableUploadSettings): ResumableUploads {
    const states = new UploadStateStore(
      this.#index.redis,
      this.#index.prefix,
      settings.idleTimeoutMs,
    );
    const s3 = this.#objects.settings;
    const context = (commitOnce: CommitGate): StreamingUploadContext => ({
      multipart: this.#objects.multipart,
      objects: this.#objects,
      index: this.#index,
      states,
      stagingDir: settings.stagingDir,
      partSizeBytes: s3.partSizeBytes,
      concurrency: s3.uploadConcurrency,
      hashers: this.#hashers,
      commitOnce,
      log: this.#log,
    });
    return {
      handles: (digest) => digest.size >= s3.multipartThresholdBytes,
      // Part files are removed once uploaded: `concurrency` in flight plus the one filling.
      stagingBytes: (digest) =>
        Math.min(
          digest.size,
          (s3.uploadConcurrency + 1) * partSizeFor(digest.size, s3.partSizeBytes),
        ),
      open: async (upload, commitOnce) =>
        (await S3StreamingUpload.resume(context(commitOnce), upload)) ??
        S3StreamingUpload.begin(context(commitOnce), upload),
      progress: async (upload) => {
        const checkpoint = await states.peek(upload);
        return checkpoint && checkpoint.parts.length * checkpoint.partSize;
      },
    };
  }

  lookup(digests: readonly Digest[]): Promise<(number | undefined)[]> {
    return this.#index.lookup(digests);
  }

  async commit(staged: StagedBlob): Promise<void> {
    try {
      const [present] = await this.#index.lookup([staged.digest]);
      if (present !== undefined) return;
      await this.#objects.put(staged.digest, staged.path);
      crashPoint('s3-complete');
      await this.#index.markCommitted(staged.digest);
      crashPoint('committed');
    } finally {
      await rm(staged.path, { force: true });
    }
  }

  async read(
    digest: Digest,
    offset: number,
    length: number,
  ): Promise<AsyncIterable<Uint8Array> | Iterable<Uint8Array>> {
    const [size] = await this.#index.lookup([digest]);
    if (size === undefined) throw notFound(`blob ${formatDigest(digest)} is not in the cache`);
    if (length === 0) return [];
    try {
      return await this.#objects.get(digest, offset, length);
    } catch (error) {
      if (!(error instanceof ObjectMissingError)) throw error;
      this.#log.warn(
        { digest: formatDigest(digest), key: this.#objects.keyOf(digest) },
        'commit entry points at a missing object; dropping the entry',
      );
      await this.#index.forget(digest);
      throw notFound(`blob ${formatDigest(digest)} is not in the cache`);
    }
  }

  forget(digest: Digest): Promise<void> {
    return this.#index.forget(digest);
  }

  getActionResult(instance: string, action: Digest): Promise<Buffer | undefined> {
    return this.#index.getActionResult(instance, action);
  }

  putActionResult(instance: string, action: Digest, encoded: Uint8Array): Promise<void> {
    return this.#index.putActionResult(instance, action, encoded);
  }

  async close(): Promise<void> {
    await this.#index.close();
    this.#objects.close();
    await this.#hashers.close();
  }
}
