// The local staging tier. Every incoming blob is written here, hashed as it arrives, and verified
// before any store sees it.
//
// Files: `{stagingDir}/{random}.spool`, one per upload in progress, owned by this process.
// Invariant: a spool file is never read by a client; it is either handed to a store's commit (which
// consumes it) or removed. A crash leaves orphan `.spool` files, which `sweepStaging` removes at
// the next start (the staging directory belongs to one process at a time).
import { randomBytes } from 'node:crypto';
import { type FileHandle, mkdir, open, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import {
  assertMatches,
  createHasher,
  type Digest,
  formatDigest,
  type Hasher,
} from '../cas/digest.ts';
import { CasError, diskError } from '../cas/errors.ts';
import { newBytes } from '../cas/upload-sink.ts';
import { crashPoint } from '../observability/crash-points.ts';

const SPOOL_SUFFIX = '.spool';
/**
 * Blobs up to this size are also kept in memory until committed, so the store can send them from
 * there instead of reading the file back: for a small blob those reads were half the file system
 * calls of its upload. At most one such blob per upload session and batch entry is held.
 */
export const RETAINED_MAX_BYTES = 256 * 1024;

/** A verified blob in the staging directory, ready to be committed. */
export interface StagedBlob {
  readonly digest: Digest;
  readonly path: string;
  /** The same bytes as the file, in order, for blobs of at most RETAINED_MAX_BYTES. */
  readonly bytes?: readonly Uint8Array[];
}

export interface SpoolOptions {
  readonly dir: string;
  /** fsync the file before handing it over (the embedded store commits by rename). */
  readonly durable: boolean;
}

export class Spool {
  readonly digest: Digest;
  readonly path: string;
  #file: FileHandle | undefined;
  #hasher: Hasher;
  #size = 0;
  #retained: Uint8Array[] | undefined;
  #durable: boolean;
  #closed = false;
  #tail: Promise<unknown> = Promise.resolve();

  private constructor(
    digest: Digest,
    path: string,
    file: FileHandle,
    hasher: Hasher,
    durable: boolean,
  ) {
    this.digest = digest;
    this.path = path;
    this.#file = file;
    this.#hasher = hasher;
    this.#durable = durable;
    this.#retained = digest.size <= RETAINED_MAX_BYTES ? [] : undefined;
  }

  static async create(digest: Digest, options: SpoolOptions): Promise<Spool> {
    const hasher = await createHasher(digest.fn);
    const path = join(options.dir, `${randomBytes(12).toString('hex')}${SPOOL_SUFFIX}`);
    let file: FileHandle;
    try {
      file = await open(path, 'wx', 0o600);
    } catch (error) {
      throw diskError(error, 'cannot create a staging file');
    }
    return new Spool(digest, path, file, hasher, options.durable);
  }

  /** Bytes received so far. */
  get size(): number {
    return this.#size;
  }

  /**
   * Appends the bytes a client sent at `offset`. Offsets must continue exactly where the last write
   * ended; the total may not pass the digest's size. Calls run one after another, in call order.
   */
  append(offset: number, chunk: Uint8Array): Promise<void> {
    return this.#serialize(() => this.#append(offset, chunk));
  }

  /**
   * Verifies size and hash and closes the file. On a mismatch the file is removed and
   * INVALID_ARGUMENT thrown; on success the caller owns the staged file.
   */
  finish(): Promise<StagedBlob> {
    return this.#serialize(() => this.#finish());
  }

  /** Closes and removes the file, after any append in progress. Safe to call more than once. */
  discard(): Promise<void> {
    return this.#serialize(() => this.#discard());
  }

  #serialize<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(work);
    this.#tail = run.catch(() => undefined);
    return run;
  }

  async #append(offset: number, chunk: Uint8Array): Promise<void> {
    const file = this.#open();
    const fresh = newBytes(this.digest, this.#size, offset, chunk);
    if (fresh.length === 0) return;
    try {
      await file.write(fresh);
    } catch (error) {
      throw diskError(error, 'cannot write to the staging file');
    }
    this.#hasher.update(fresh);
    this.#retained?.push(fresh);
    this.#size += fresh.length;
    crashPoint('spool-write');
  }

  async #finish(): Promise<StagedBlob> {
    const file = this.#open();
    try {
      assertMatches(this.digest, this.#size, this.#hasher.digest());
      if (this.#durable) await file.sync();
      await this.#close();
    } catch (error) {
      await this.#discard();
      throw error instanceof CasError ? error : diskError(error, 'cannot close the staging file');
    }
    const retained = this.#retained;
    this.#retained = undefined;
    return retained
      ? { digest: this.digest, path: this.path, bytes: retained }
      : { digest: this.digest, path: this.path };
  }

  async #discard(): Promise<void> {
    this.#retained = undefined;
    await this.#close().catch(() => undefined);
    await removeStagedFile(this.path);
  }

  #open(): FileHandle {
    if (this.#closed || !this.#file) {
      throw new CasError('failed_precondition', `upload of ${formatDigest(this.digest)} is closed`);
    }
    return this.#file;
  }

  async #close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#file?.close();
    this.#file = undefined;
  }
}

/** Writes a whole in-memory blob through the same spool, for the batch RPCs. */
export async function spoolBuffer(
  digest: Digest,
  data: Uint8Array,
  options: SpoolOptions,
): Promise<StagedBlob> {
  const spool = await Spool.create(digest, options);
  try {
    await spool.append(0, data);
  } catch (error) {
    await spool.discard();
    throw error;
  }
  return spool.finish();
}

/**
 * Removes a staging file, if it is still there. One `unlink`: `rm` with `force` checks the path
 * with `lstat` twice first, which for a small blob's upload was as many file system calls again
 * as writing it.
 */
export async function removeStagedFile(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}

export async function prepareStagingDir(dir: string): Promise<number> {
  await mkdir(dir, { recursive: true });
  return sweepStaging(dir);
}

/** Removes spool files a previous process left behind. Returns how many. */
export async function sweepStaging(dir: string): Promise<number> {
  const names = await readdir(dir);
  const orphans = names.filter((name) => name.endsWith(SPOOL_SUFFIX));
  await Promise.all(orphans.map((name) => removeStagedFile(join(dir, name))));
  return orphans.length;
}
