// A large upload streamed to S3 as it arrives: bytes go to a part file in the staging directory
// (written a MiB at a time, however small the client's messages); each full part is uploaded,
// and hashed, while the next one fills. At most `concurrency` parts are in flight, which is what
// slows a client that sends faster than S3 takes or the hasher keeps up with. A part that is both
// confirmed by S3 and hashed goes into the checkpoint in Redis.
//
// How it is hashed (upload-hash.ts) is chosen when it begins: natively by default, and then only
// this replica, which holds the hasher, can continue it (another one that is asked to drops it and
// starts again from 0); or resumably (`resumeAnywhere`), with the hasher's state in every
// checkpoint, so that another replica can continue it after this one dies.
//
// Order at finish, and what a crash after each step leaves:
//   1. size checked against the digest            -> mismatch: abort, INVALID_ARGUMENT
//   2. last part uploaded and hashed, all parts   -> crash: incomplete multipart upload and its
//      confirmed                                     checkpoint
//   3. hash verified over every byte kept         -> mismatch: abort, INVALID_ARGUMENT
//   4. CompleteMultipartUpload, HEAD checks size  -> crash: a whole object without commit
//                                                    (invisible)
//   5. commit entry written                       -> visible everywhere; the client is answered
//   6. checkpoint removed                         -> crash before: it expires on its own
// The object key is content-addressed, so completing over an object another upload already wrote
// replaces it with the same bytes; step 1 guarantees they are the same.
import { randomBytes, randomUUID } from 'node:crypto';
import { type FileHandle, open } from 'node:fs/promises';
import { join } from 'node:path';
import { type Digest, formatDigest } from '../cas/digest.ts';
import { CasError, diskError, invalidArgument, unavailable } from '../cas/errors.ts';
import type { PartHashers } from '../cas/part-hashers.ts';
import {
  type CommitGate,
  newBytes,
  type UploadIdentity,
  type UploadSink,
} from '../cas/upload-sink.ts';
import type { RedisCommitIndex } from '../commit-index/redis-commit-index.ts';
import type { UploadCheckpoint, UploadStateStore } from '../commit-index/upload-state.ts';
import { crashPoint } from '../observability/crash-points.ts';
import type { Logger } from '../observability/logger.ts';
import { removeStagedFile } from '../staging/spool.ts';
import { type CompletedPart, partSizeFor, type S3Multipart } from './s3-multipart.ts';
import type { S3ObjectStore } from './s3-object-store.ts';
import { initialHashState, type UploadHash, uploadHash } from './upload-hash.ts';

export interface StreamingUploadContext {
  readonly multipart: S3Multipart;
  readonly objects: S3ObjectStore;
  readonly index: RedisCommitIndex;
  readonly states: UploadStateStore;
  readonly stagingDir: string;
  readonly partSizeBytes: number;
  readonly concurrency: number;
  readonly hashers: PartHashers;
  /** Hash with a hasher whose state goes into every checkpoint, for a resume on any replica. */
  readonly resumeAnywhere: boolean;
  readonly commitOnce: CommitGate;
  readonly log: Logger;
}

/**
 * Received bytes are gathered up to this much before one write to the part file: Bazel sends
 * 16 KiB messages, and a write per message cost more CPU than the copy-free gathering.
 */
const WRITE_BATCH_BYTES = 1024 * 1024;

export class S3StreamingUpload implements UploadSink {
  readonly digest: Digest;
  readonly #ctx: StreamingUploadContext;
  readonly #identity: UploadIdentity;
  readonly #owner: string;
  readonly #objectKey: string;
  readonly #s3UploadId: string;
  readonly #partSize: number;
  readonly #hash: UploadHash;
  /** The digest of every byte received, once the last part is hashed. */
  #finalHash: Promise<string> | undefined;
  /** Parts S3 confirmed, by number; the checkpoint is their contiguous prefix. */
  readonly #confirmed = new Map<number, CompletedPart>();
  /** Hasher state at the end of each sealed part that is not yet in a checkpoint. */
  readonly #hashStates = new Map<number, string>();
  readonly #inflight = new Map<number, Promise<void>>();
  #checkpointed: number;
  #received: number;
  #partNumber: number;
  #partFile: FileHandle | undefined;
  #partPath = '';
  #partBytes = 0;
  /** Received bytes not yet written to the part file (at most WRITE_BATCH_BYTES). */
  #unwritten: Uint8Array[] = [];
  #unwrittenBytes = 0;
  #failure: CasError | undefined;
  #detached = false;
  #tail: Promise<unknown> = Promise.resolve();
  #saving: Promise<unknown> = Promise.resolve();

  private constructor(
    ctx: StreamingUploadContext,
    identity: UploadIdentity,
    checkpoint: UploadCheckpoint,
    owner: string,
  ) {
    this.#ctx = ctx;
    this.#owner = owner;
    this.#identity = identity;
    this.digest = identity.digest;
    this.#objectKey = checkpoint.objectKey;
    this.#s3UploadId = checkpoint.s3UploadId;
    this.#partSize = checkpoint.partSize;
    // A native hash is never continued from a checkpoint (see resume): it starts at 0 here.
    this.#hash = uploadHash(identity.digest.fn, checkpoint.hashState, ctx.hashers);
    for (const part of checkpoint.parts) this.#confirmed.set(part.partNumber, part);
    this.#checkpointed = checkpoint.parts.length;
    this.#received = this.#checkpointed * this.#partSize;
    this.#partNumber = this.#checkpointed + 1;
  }

  /** Starts a new multipart upload and records it, or takes over one recorded meanwhile. */
  static async begin(ctx: StreamingUploadContext, identity: UploadIdentity) {
    const objectKey = ctx.objects.keyOf(identity.digest);
    const s3UploadId = await ctx.multipart.create(objectKey);
    const checkpoint: UploadCheckpoint = {
      objectKey,
      s3UploadId,
      partSize: partSizeFor(identity.digest.size, ctx.partSizeBytes),
      parts: [],
      hashState: await initialHashState(identity.digest.fn, ctx.resumeAnywhere),
    };
    const upload = new S3StreamingUpload(ctx, identity, checkpoint, randomUUID());
    if (await ctx.states.create(identity, upload.#owner, checkpoint)) return upload;
    await ctx.multipart.abort(objectKey, s3UploadId);
    const resumed = await S3StreamingUpload.resume(ctx, identity);
    if (!resumed) throw unavailable(`upload of ${formatDigest(identity.digest)} vanished`);
    return resumed;
  }

  /**
   * Continues an upload recorded by any replica; undefined when none is recorded, or when the
   * one recorded was hashed natively: its hash lives only in the process that began it, so it is
   * dropped here and the caller begins again.
   */
  static async resume(ctx: StreamingUploadContext, identity: UploadIdentity) {
    const owner = randomUUID();
    const checkpoint = await ctx.states.takeOver(identity, owner);
    if (!checkpoint) return undefined;
    if (checkpoint.hashState === '') {
      ctx.log.info(
        { digest: formatDigest(identity.digest), parts: checkpoint.parts.length },
        'an upload begun with a native hash cannot resume on another replica; starting again',
      );
      if (await ctx.states.remove(identity, owner).catch(() => true)) {
        await ctx.multipart.abort(checkpoint.objectKey, checkpoint.s3UploadId);
      }
      return undefined;
    }
    const upload = new S3StreamingUpload(ctx, identity, checkpoint, owner);
    ctx.log.info(
      { digest: formatDigest(identity.digest), resumedAt: upload.#received },
      'resuming an upload from its checkpoint',
    );
    return upload;
  }

  get received(): number {
    return this.#received;
  }

  /** Bytes in the last checkpoint: what every replica can resume from. */
  get resumeOffset(): number {
    return this.#checkpointed * this.#partSize;
  }

  append(offset: number, chunk: Uint8Array): Promise<void> {
    return this.#serialize(async () => {
      this.#throwIfFailed();
      let fresh = newBytes(this.digest, this.#received, offset, chunk);
      while (fresh.length > 0) {
        const room = this.#partSize - this.#partBytes;
        const piece = fresh.subarray(0, room);
        fresh = fresh.subarray(piece.length);
        await this.#writePiece(piece);
        if (this.#partBytes === this.#partSize) await this.#sealPart(false);
      }
    });
  }

  finish(): Promise<void> {
    return this.#serialize(async () => {
      this.#throwIfFailed();
      if (this.#received !== this.digest.size) {
        await this.abandonNow();
        throw invalidArgument(
          `digest size ${this.digest.size} does not match ${this.#received} bytes received for ` +
            formatDigest(this.digest),
        );
      }
      try {
        if (this.#partBytes > 0 || this.#partNumber === 1) await this.#sealPart(true);
        else {
          this.#finalHash = this.#hash.finish('', 0);
          // Awaited below unless a part failed first; that failure is the one reported.
          this.#finalHash.catch(() => undefined);
        }
        await Promise.all(this.#inflight.values());
        this.#throwIfFailed();
        const hash = await this.#finalHash?.catch((error: unknown) => {
          throw diskError(error, 'cannot hash the staging file');
        });
        if (hash !== this.digest.hash) {
          throw invalidArgument(
            `data hashes to ${hash}, not to ${this.digest.hash} (${this.digest.fn.toLowerCase()})`,
          );
        }
        await this.#ctx.commitOnce(
          this.digest,
          () => this.#completeAndCommit(),
          () => this.abandonNow(),
        );
      } catch (error) {
        await this.abandonNow();
        throw error;
      }
    });
  }

  abandon(): Promise<void> {
    return this.#serialize(() => this.abandonNow());
  }

  /**
   * Re-claims this upload for a new Write on this replica. False when another replica advanced it
   * meanwhile; this sink is then detached and the caller resumes from the shared checkpoint.
   */
  reclaim(): Promise<boolean> {
    return this.#serialize(async () => {
      // Parts still uploading from the broken-off Write may advance the checkpoint, and its save
      // may not have reached Redis yet: let both finish, or the stored checkpoint would trail the
      // one this sink reported (QueryWriteStatus), look like another replica's, and the upload
      // would start over under a client resuming at the reported offset.
      await Promise.allSettled(this.#inflight.values());
      await this.#saving;
      const checkpoint = await this.#ctx.states.takeOver(this.#identity, this.#owner);
      if (checkpoint && checkpoint.parts.length === this.#checkpointed && !this.#failure) {
        return true;
      }
      this.#failure ??= superseded(this.digest);
      await this.#removeLocalFiles();
      return false;
    });
  }

  /**
   * Lets go of the upload without ending it, for a replica that shuts down: parts in flight are
   * allowed to finish and be checkpointed, local files are removed, and the upload stays in S3 and
   * Redis for another replica to resume (or for the janitor, once its checkpoint expires). A
   * natively hashed upload cannot be resumed elsewhere, so it is ended instead.
   */
  detach(): Promise<void> {
    return this.#serialize(async () => {
      if (!this.#hash.resumable) {
        // Its hash lives only in this process: no other replica could continue it.
        this.#failure ??= new CasError(
          'unavailable',
          'this replica let go of the upload (shutting down, or out of upload sessions); ' +
            'upload it again',
        );
        await this.abandonNow();
        return;
      }
      this.#failure ??= new CasError(
        'unavailable',
        'this replica is shutting down; resume elsewhere',
      );
      await Promise.allSettled(this.#inflight.values());
      await this.#saving;
      await this.#removeLocalFiles();
    });
  }

  /** Drops local files and, if this sink still owns the upload, the upload itself. */
  async abandonNow(): Promise<void> {
    this.#failure ??= new CasError('aborted', `upload of ${formatDigest(this.digest)} was dropped`);
    await Promise.allSettled(this.#inflight.values());
    await this.#removeLocalFiles();
    // A detached upload belongs to whichever replica resumes it; it is not this one's to end.
    if (this.#detached) return;
    const owned = await this.#ctx.states.remove(this.#identity, this.#owner).catch(() => true);
    if (owned) await this.#ctx.multipart.abort(this.#objectKey, this.#s3UploadId);
  }

  /** Takes `piece` into the current part; it reaches the file in the next batch write. */
  async #writePiece(piece: Uint8Array): Promise<void> {
    this.#hash.take(piece);
    this.#unwritten.push(piece);
    this.#unwrittenBytes += piece.length;
    this.#partBytes += piece.length;
    this.#received += piece.length;
    if (this.#unwrittenBytes >= WRITE_BATCH_BYTES) await this.#flushWrites();
  }

  /** Writes the gathered pieces to the part file, in one call when the kernel takes them all. */
  async #flushWrites(): Promise<void> {
    if (this.#unwrittenBytes === 0) return;
    let pieces = this.#unwritten;
    this.#unwritten = [];
    this.#unwrittenBytes = 0;
    try {
      if (!this.#partFile) {
        this.#partPath = join(this.#ctx.stagingDir, `${randomBytes(12).toString('hex')}.spool`);
        this.#partFile = await open(this.#partPath, 'wx', 0o600);
      }
      while (pieces.length > 0) {
        const { bytesWritten } = await this.#partFile.writev(pieces);
        if (bytesWritten === 0) throw new Error('the staging file took no bytes');
        pieces = unwrittenAfter(pieces, bytesWritten);
      }
    } catch (error) {
      throw diskError(error, 'cannot write to the staging file');
    }
    crashPoint('spool-write');
  }

  /**
   * Closes the current part and starts its upload and its hash, waiting first if too many parts
   * are in flight. The hasher's state after the part is kept for its checkpoint, except after the
   * last part (`final`), whose hash is the digest that finish checks.
   */
  async #sealPart(final: boolean): Promise<void> {
    await this.#flushWrites();
    const partNumber = this.#partNumber;
    const path = this.#partPath;
    const length = this.#partBytes;
    await this.#partFile?.close();
    this.#partFile = undefined;
    this.#partPath = '';
    this.#partBytes = 0;
    this.#partNumber += 1;

    while (this.#inflight.size >= this.#ctx.concurrency) {
      await Promise.race(this.#inflight.values());
    }
    this.#throwIfFailed();
    let hashed: Promise<unknown>;
    if (final) {
      this.#finalHash = this.#hash.finish(path, length);
      hashed = this.#finalHash;
    } else {
      hashed = this.#hash.afterPart(path, length).then((state) => {
        this.#hashStates.set(partNumber, state);
      });
    }
    const source = { path, start: 0, length };
    const uploaded = this.#ctx.multipart
      .uploadPart(this.#objectKey, this.#s3UploadId, partNumber, source)
      .then((part) => {
        this.#confirmed.set(partNumber, part);
      });
    const done = Promise.all([
      uploaded.catch((error: unknown) => {
        this.#failure ??= error instanceof CasError ? error : unavailable('part upload failed');
      }),
      hashed.catch((error: unknown) => {
        this.#failure ??= diskError(error, 'cannot hash the staging file');
      }),
    ])
      .then(() => {
        if (this.#failure) return;
        this.#advanceCheckpoint();
        crashPoint('part-confirmed');
      })
      .finally(() => {
        this.#inflight.delete(partNumber);
        if (path) void removeStagedFile(path).catch(() => undefined);
      });
    this.#inflight.set(partNumber, done);
  }

  /** Saves the longest run of confirmed and hashed parts from part 1, one save at a time. */
  #advanceCheckpoint(): void {
    let next = this.#checkpointed;
    while (this.#confirmed.has(next + 1) && this.#hashStates.has(next + 1)) next += 1;
    // The last part may be short; it never goes into a checkpoint, which only holds whole parts.
    if (next * this.#partSize > this.digest.size) next -= 1;
    const hashState = this.#hashStates.get(next);
    if (next === this.#checkpointed || hashState === undefined) return;
    const checkpoint: UploadCheckpoint = {
      objectKey: this.#objectKey,
      s3UploadId: this.#s3UploadId,
      partSize: this.#partSize,
      parts: [...Array(next).keys()].map((i) => this.#confirmed.get(i + 1) as CompletedPart),
      hashState,
    };
    this.#checkpointed = next;
    for (const n of this.#hashStates.keys()) if (n <= next) this.#hashStates.delete(n);
    this.#saving = this.#saving.then(async () => {
      try {
        const saved = await this.#ctx.states.save(this.#identity, this.#owner, checkpoint);
        if (!saved) this.#failure ??= superseded(this.digest);
      } catch (error) {
        // A lost checkpoint only costs a longer resend after a crash; the upload goes on.
        this.#ctx.log.warn(
          { err: error, digest: formatDigest(this.digest) },
          'checkpoint not saved',
        );
      }
    });
  }

  async #completeAndCommit(): Promise<void> {
    // The object appears at CompleteMultipartUpload: that is the write the intent must cover.
    const token = await this.#ctx.index.beginPutUnlessCommitted(this.digest);
    if (token === undefined) {
      await this.abandonNow();
      return;
    }
    const parts = [...this.#confirmed.values()];
    try {
      await this.#ctx.multipart.complete(this.#objectKey, this.#s3UploadId, parts);
      const stored = await this.#ctx.objects.head(this.digest);
      if (stored !== this.digest.size) {
        throw unavailable(
          `object store holds ${stored ?? 'no'} bytes for ${this.#objectKey} after upload, ` +
            `expected ${this.digest.size}`,
        );
      }
    } catch (error) {
      await this.#ctx.index.abandonPut(this.digest, token).catch(() => undefined);
      throw error;
    }
    crashPoint('s3-complete');
    if (!(await this.#ctx.index.commitPut(this.digest, token))) {
      // The parts are gone once completed, so the object cannot be written again from here.
      throw unavailable(
        `the collector deleted ${formatDigest(this.digest)} while its upload completed; ` +
          'upload it again',
      );
    }
    crashPoint('committed');
    await this.#saving;
    await this.#ctx.states.remove(this.#identity, this.#owner).catch(() => false);
  }

  async #removeLocalFiles(): Promise<void> {
    this.#unwritten = [];
    this.#unwrittenBytes = 0;
    await this.#partFile?.close().catch(() => undefined);
    this.#partFile = undefined;
    if (this.#partPath) await removeStagedFile(this.#partPath);
  }

  #throwIfFailed(): void {
    if (this.#failure) throw this.#failure;
  }

  #serialize<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(work);
    this.#tail = run.catch(() => undefined);
    return run;
  }
}

/** What is left of `pieces` once their first `written` bytes are in the file. */
function unwrittenAfter(pieces: readonly Uint8Array[], written: number): Uint8Array[] {
  const left: Uint8Array[] = [];
  let skip = written;
  for (const piece of pieces) {
    if (skip >= piece.length) {
      skip -= piece.length;
      continue;
    }
    left.push(skip > 0 ? piece.subarray(skip) : piece);
    skip = 0;
  }
  return left;
}

function superseded(digest: Digest): CasError {
  return new CasError(
    'aborted',
    `upload of ${formatDigest(digest)} was taken over by another Write; resume there`,
  );
}
