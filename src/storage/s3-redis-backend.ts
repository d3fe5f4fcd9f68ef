// S3 mode: blob content in S3, commits and action results in Redis.
//
// Commit sequence for a verified staged blob, and what a crash after each step leaves:
//   1-2. one script (begin-put-4): already committed -> its lease renewed, the staged file
//      dropped, done; otherwise a write intent (it waits while a collector deletes this digest's
//      object) -> crash: an intent that expires after an hour; until then the collector spares
//      the digest.
//   3. PutObject / multipart upload of the staged file -> crash: a staging file (swept at start)
//      and possibly an object or an incomplete multipart upload with no commit entry: invisible,
//      reclaimed by the collector's orphan sweep, rewritten by the next upload of that digest.
//   4. multipart only: HEAD checks the stored size.
//   5. commit-put: the commit entry and its lease, only if the intent is still live -> from here
//      the blob is visible on every replica. Refused (the collector may have deleted the object
//      after step 3): back to step 1, at most three times.
//   6. remove the staged file -> crash before: an orphan staging file, swept at start.
// The client is answered only after step 5.
import { type Digest, formatDigest } from '../cas/digest.ts';
import { notFound, unavailable } from '../cas/errors.ts';
import { PartHashers } from '../cas/part-hashers.ts';
import type { ActionCacheStore, Backend, BlobStore } from '../cas/store.ts';
import type { CommitGate, ResumableUploads } from '../cas/upload-sink.ts';
import type { RedisCommitIndex } from '../commit-index/redis-commit-index.ts';
import { UploadStateStore } from '../commit-index/upload-state.ts';
import { crashPoint } from '../observability/crash-points.ts';
import type { Logger } from '../observability/logger.ts';
import type { ReadCache } from '../read-cache/read-cache.ts';
import { removeStagedFile, type StagedBlob } from '../staging/spool.ts';
import { partSizeFor } from './s3-multipart.ts';
import { ObjectMissingError, type S3ObjectStore } from './s3-object-store.ts';
import { S3StreamingUpload, type StreamingUploadContext } from './s3-streaming-upload.ts';

/** Settings for uploads that stream to S3 as they arrive and can resume on any replica. */
export interface ResumableUploadSettings {
  readonly stagingDir: string;
  /** How long a broken-off upload's checkpoint is kept for a resume. */
  readonly idleTimeoutMs: number;
  /**
   * Checkpoint the hasher's state with every part, so any replica can continue an upload (a
   * WebAssembly hash in a worker). Off: a native hash on the event loop, several times cheaper,
   * and a broken-off upload resumes only on the replica that holds it.
   */
  readonly acrossReplicas: boolean;
}

/** Writes of one staged blob before giving up when a collector keeps deleting it meanwhile. */
const PUT_ATTEMPTS = 3;

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
  readonly #readCache: ReadCache | undefined;

  constructor(
    objects: S3ObjectStore,
    index: RedisCommitIndex,
    log: Logger,
    description: string,
    resumable?: ResumableUploadSettings,
    readCache?: ReadCache,
  ) {
    this.#readCache = readCache;
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
      resumeAnywhere: settings.acrossReplicas,
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
        if (!checkpoint) return undefined;
        // Without a hash state only the replica holding the upload can go on; here it starts over.
        return checkpoint.hashState === '' ? 0 : checkpoint.parts.length * checkpoint.partSize;
      },
    };
  }

  lookup(digests: readonly Digest[]): Promise<(number | undefined)[]> {
    return this.#index.lookup(digests);
  }

  async commit(staged: StagedBlob): Promise<void> {
    try {
      for (let attempt = 1; attempt <= PUT_ATTEMPTS; attempt++) {
        if (await this.#putAndCommit(staged)) return;
        this.#log.warn(
          { digest: formatDigest(staged.digest), attempt },
          'the collector may have deleted the object while it was written; writing it again',
        );
      }
      throw unavailable(
        `could not commit ${formatDigest(staged.digest)}: the collector deleted it ` +
          `${PUT_ATTEMPTS} times while it was written; upload it again`,
      );
    } finally {
      await removeStagedFile(staged.path);
    }
  }

  /**
   * Writes the object under a write intent and commits it; false when the commit was refused.
   * True at once, writing nothing, when the blob is committed already.
   */
  async #putAndCommit(staged: StagedBlob): Promise<boolean> {
    const digest = staged.digest;
    const token = await this.#index.beginPutUnlessCommitted(digest, (tombstoneMs) =>
      this.#log.debug(
        { digest: formatDigest(digest), tombstoneMs },
        'waiting for the collector to finish deleting this blob',
      ),
    );
    if (token === undefined) return true;
    try {
      await this.#objects.put(digest, staged.path, staged.bytes);
    } catch (error) {
      await this.#index.abandonPut(digest, token).catch(() => undefined);
      throw error;
    }
    crashPoint('s3-complete');
    const committed = await this.#index.commitPut(digest, token);
    if (committed) crashPoint('committed');
    return committed;
  }

  async read(
    digest: Digest,
    offset: number,
    length: number,
  ): Promise<AsyncIterable<Uint8Array> | Iterable<Uint8Array>> {
    const [size] = await this.#index.lookup([digest]);
    if (size === undefined) {
      // A local copy outlives its commit only until the next read of it notices.
      await this.#readCache?.remove(digest);
      throw notFound(`blob ${formatDigest(digest)} is not in the cache`);
    }
    if (length === 0) return [];
    const local = await this.#readCache?.read(digest, offset, length);
    if (local) return local;
    this.#readCache?.noteRemoteRead(digest, () => this.#objects.get(digest, 0, digest.size));
    try {
      return await this.#objects.get(digest, offset, length);
    } catch (error) {
      if (!(error instanceof ObjectMissingError)) throw error;
      this.#log.warn(
        { digest: formatDigest(digest), key: this.#objects.keyOf(digest) },
        'commit entry points at a missing object; dropping the entry',
      );
      await this.#index.forget(digest);
      await this.#readCache?.remove(digest);
      throw notFound(`blob ${formatDigest(digest)} is not in the cache`);
    }
  }

  async forget(digest: Digest): Promise<void> {
    await this.#readCache?.remove(digest);
    await this.#index.forget(digest);
  }

  getActionResult(instance: string, action: Digest): Promise<Buffer | undefined> {
    return this.#index.getActionResult(instance, action);
  }

  putActionResult(instance: string, action: Digest, encoded: Uint8Array): Promise<void> {
    return this.#index.putActionResult(instance, action, encoded);
  }

  async close(): Promise<void> {
    await this.#readCache?.close();
    await this.#index.close();
    this.#objects.close();
    await this.#hashers.close();
  }
}
