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
import type { ActionCacheStore, Backend, BlobStore } from '../cas/store.ts';
import type { RedisCommitIndex } from '../commit-index/redis-commit-index.ts';
import type { Logger } from '../observability/logger.ts';
import type { StagedBlob } from '../staging/spool.ts';
import { ObjectMissingError, type S3ObjectStore } from './s3-object-store.ts';

export class S3RedisBackend implements BlobStore, ActionCacheStore, Backend {
  readonly durableStaging = false;
  readonly blobs = this;
  readonly actions = this;
  readonly description: string;
  readonly #objects: S3ObjectStore;
  readonly #index: RedisCommitIndex;
  readonly #log: Logger;

  constructor(objects: S3ObjectStore, index: RedisCommitIndex, log: Logger, description: string) {
    this.#objects = objects;
    this.#index = index;
    this.#log = log;
    this.description = description;
  }

  lookup(digests: readonly Digest[]): Promise<(number | undefined)[]> {
    return this.#index.lookup(digests);
  }

  async commit(staged: StagedBlob): Promise<void> {
    try {
      const [present] = await this.#index.lookup([staged.digest]);
      if (present !== undefined) return;
      await this.#objects.put(staged.digest, staged.path);
      await this.#index.markCommitted(staged.digest);
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

  getActionResult(instance: string, action: Digest): Promise<Buffer | undefined> {
    return this.#index.getActionResult(instance, action);
  }

  putActionResult(instance: string, action: Digest, encoded: Uint8Array): Promise<void> {
    return this.#index.putActionResult(instance, action, encoded);
  }

  async close(): Promise<void> {
    await this.#index.close();
    this.#objects.close();
  }
}
