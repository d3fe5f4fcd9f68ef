// The embedded store: committed blobs and action results in one local directory, for running
// Tessera with no other service.
//
// Layout under the data directory:
//   cas/{fn}/{hash[0..2]}/{hash}          a committed blob (its size must equal the digest's)
//   ac/{sha256(instance)}/{fn}/{hash}-{size}   an encoded ActionResult
//   staging/                              spool files (see staging/spool.ts); same filesystem
//
// Commit protocol: the staged file is fsynced by the spool, renamed to its final path, and the
// directory fsynced; the final path existing is the commit. A crash before the rename leaves only a
// spool file (swept at the next start); after it, the blob is whole. Action results go through a
// temp file, fsync, rename and directory fsync the same way.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { mapConcurrently } from '../cas/concurrency.ts';
import type { Digest } from '../cas/digest.ts';
import { diskError, notFound } from '../cas/errors.ts';
import type { ActionCacheStore, Backend, BlobStore } from '../cas/store.ts';
import type { StagedBlob } from '../staging/spool.ts';
import { ensureDir, syncDir, writeFileDurably } from './durable-file.ts';

const LOOKUP_CONCURRENCY = 64;

export class DirectoryStore implements BlobStore, ActionCacheStore, Backend {
  readonly durableStaging = true;
  readonly maxBlobSizeBytes = Number.MAX_SAFE_INTEGER;
  readonly blobs = this;
  readonly actions = this;
  readonly description: string;
  readonly #root: string;

  constructor(root: string) {
    this.#root = root;
    this.description = `embedded store in ${root}`;
  }

  lookup(digests: readonly Digest[]): Promise<(number | undefined)[]> {
    return mapConcurrently(digests, LOOKUP_CONCURRENCY, (digest) => this.#committedSize(digest));
  }

  async commit(staged: StagedBlob): Promise<void> {
    const target = this.#blobPath(staged.digest);
    try {
      await ensureDir(dirname(target));
      await rename(staged.path, target);
      await syncDir(dirname(target));
    } catch (error) {
      await rm(staged.path, { force: true });
      throw diskError(error, 'cannot commit the blob to the data directory');
    }
  }

  async forget(digest: Digest): Promise<void> {
    try {
      await rm(this.#blobPath(digest), { force: true });
    } catch (error) {
      throw diskError(error, 'cannot remove a corrupt blob from the data directory');
    }
  }

  async read(
    digest: Digest,
    offset: number,
    length: number,
  ): Promise<AsyncIterable<Uint8Array> | Iterable<Uint8Array>> {
    const path = this.#blobPath(digest);
    const size = await this.#committedSize(digest);
    if (size === undefined)
      throw notFound(`blob ${digest.hash}/${digest.size} is not in the cache`);
    if (length === 0) return [];
    return createReadStream(path, {
      start: offset,
      end: offset + length - 1,
      highWaterMark: 256 * 1024,
    });
  }

  async getActionResult(instance: string, action: Digest): Promise<Buffer | undefined> {
    try {
      return await readFile(this.#actionPath(instance, action));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw diskError(error, 'cannot read action result');
    }
  }

  async putActionResult(instance: string, action: Digest, encoded: Uint8Array): Promise<void> {
    await writeFileDurably(this.#actionPath(instance, action), encoded, 'the action result');
  }

  async close(): Promise<void> {}

  async #committedSize(digest: Digest): Promise<number | undefined> {
    try {
      const info = await stat(this.#blobPath(digest));
      return info.size === digest.size ? info.size : undefined;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw diskError(error, 'cannot look up blob');
    }
  }

  #blobPath(digest: Digest): string {
    const fn = digest.fn.toLowerCase();
    return join(this.#root, 'cas', fn, digest.hash.slice(0, 2), digest.hash);
  }

  #actionPath(instance: string, action: Digest): string {
    const space = createHash('sha256').update(instance).digest('hex');
    const fn = action.fn.toLowerCase();
    return join(this.#root, 'ac', space, fn, `${action.hash}-${action.size}`);
  }
}
