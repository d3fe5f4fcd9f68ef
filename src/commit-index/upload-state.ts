// Checkpoints of resumable multipart uploads, in Redis, so an upload broken off on one replica
// continues on any other.
//
// Keys:
//   {prefix}upload:{sha256(instance, upload id, digest)} -> hash { owner, checkpoint, marker }
//     owner       token of the one session allowed to advance the upload
//     checkpoint  JSON: the S3 key and multipart upload id, the part size, the parts stored so far
//                 (1..n, each exactly one part size) with their ETags, and the hasher's state
//                 after those n parts
//     marker      the name of the key below
//   {prefix}mpu:{s3 multipart upload id} -> the upload's key: tells the janitor
//     (storage/janitor.ts) that a live upload owns this multipart upload
// Both expire after the upload idle timeout; every checkpoint and take-over renews them.
// LIMITATION: take-over and remove reach the marker through the hash rather than through KEYS, so
// the scripts assume one Redis, not a cluster that shards those two keys apart.
//
// Invariant: a checkpoint only lists parts S3 has confirmed, and its hash state covers exactly
// their bytes, so `n × part size` is a safe `committed_size` to report on any replica. Each
// script checks ownership atomically (lua/*.lua): after a take-over, the old owner can neither
// save nor remove, and finds out at its next attempt.
//
// A crash leaves the key and the incomplete multipart upload behind: the key expires, and the
// bucket's lifecycle rule (or the janitor) reclaims the parts.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { digestKey } from '../cas/digest.ts';
import { unavailable } from '../cas/errors.ts';
import type { UploadIdentity } from '../cas/upload-sink.ts';
import type { CompletedPart } from '../storage/s3-multipart.ts';

export interface UploadCheckpoint {
  readonly objectKey: string;
  readonly s3UploadId: string;
  readonly partSize: number;
  readonly parts: readonly CompletedPart[];
  /** Base64 of the hasher's saved state after `parts.length × partSize` bytes. */
  readonly hashState: string;
}

/** Script file and number of keys. */
const SCRIPTS = {
  createUpload: ['create-upload-2.lua', 2],
  saveCheckpoint: ['save-checkpoint-2.lua', 2],
  takeOverUpload: ['take-over-upload-1.lua', 1],
  removeUpload: ['remove-upload-1.lua', 1],
} as const;

/** Script names carry a version, so a rolling upgrade never runs a new body under an old name. */
const SCRIPT_VERSION = 'v2';

type ScriptedRedis = Redis & {
  [K in `tessera_${keyof typeof SCRIPTS}_${typeof SCRIPT_VERSION}`]: (
    ...keysThenArgs: (string | number)[]
  ) => Promise<unknown>;
};

export class UploadStateStore {
  readonly #redis: ScriptedRedis;
  readonly #prefix: string;
  readonly #lifetimeMs: number;

  constructor(redis: Redis, prefix: string, lifetimeMs: number) {
    for (const [name, [file, numberOfKeys]] of Object.entries(SCRIPTS)) {
      const lua = readFileSync(new URL(`./lua/${file}`, import.meta.url), 'utf8');
      redis.defineCommand(`tessera_${name}_${SCRIPT_VERSION}`, { numberOfKeys, lua });
    }
    this.#redis = redis as ScriptedRedis;
    this.#prefix = prefix;
    this.#lifetimeMs = lifetimeMs;
  }

  keyOf(upload: UploadIdentity): string {
    const id = createHash('sha256')
      .update(`${upload.instance}\u0000${upload.uploadId}\u0000${digestKey(upload.digest)}`)
      .digest('hex');
    return `${this.#prefix}upload:${id}`;
  }

  /** Marks a multipart upload as belonging to a live checkpoint; the janitor spares it. */
  markerOf(s3UploadId: string): string {
    return `${this.#prefix}mpu:${s3UploadId}`;
  }

  /** The recorded checkpoint, without taking the upload over. */
  async peek(upload: UploadIdentity): Promise<UploadCheckpoint | undefined> {
    const text = await this.#run('read an upload checkpoint', () =>
      this.#redis.hget(this.keyOf(upload), 'checkpoint'),
    );
    return text ? decode(text) : undefined;
  }

  /** Records a new upload; false when one was recorded meanwhile (take it over instead). */
  async create(upload: UploadIdentity, owner: string, checkpoint: UploadCheckpoint) {
    const created = await this.#run('record an upload', () =>
      this.#redis.tessera_createUpload_v2(
        this.keyOf(upload),
        this.markerOf(checkpoint.s3UploadId),
        owner,
        JSON.stringify(checkpoint),
        this.#lifetimeMs,
      ),
    );
    return created === 1;
  }

  /** Saves progress; false when another session owns the upload now. */
  async save(upload: UploadIdentity, owner: string, checkpoint: UploadCheckpoint) {
    const saved = await this.#run('save an upload checkpoint', () =>
      this.#redis.tessera_saveCheckpoint_v2(
        this.keyOf(upload),
        this.markerOf(checkpoint.s3UploadId),
        owner,
        JSON.stringify(checkpoint),
        this.#lifetimeMs,
      ),
    );
    return saved === 1;
  }

  /** Becomes the owner and returns the checkpoint, or undefined when nothing is recorded. */
  async takeOver(upload: UploadIdentity, owner: string): Promise<UploadCheckpoint | undefined> {
    const text = await this.#run('take over an upload', () =>
      this.#redis.tessera_takeOverUpload_v2(this.keyOf(upload), owner, this.#lifetimeMs),
    );
    return typeof text === 'string' ? decode(text) : undefined;
  }

  /** Forgets the upload if `owner` still owns it. */
  async remove(upload: UploadIdentity, owner: string): Promise<boolean> {
    const removed = await this.#run('remove an upload checkpoint', () =>
      this.#redis.tessera_removeUpload_v2(this.keyOf(upload), owner),
    );
    return removed === 1;
  }

  async #run<T>(what: string, command: () => Promise<T>): Promise<T> {
    try {
      return await command();
    } catch (error) {
      throw unavailable(
        `commit index unavailable: cannot ${what}: ${(error as Error).message}`,
        error,
      );
    }
  }
}

function decode(text: string): UploadCheckpoint {
  return JSON.parse(text) as UploadCheckpoint;
}
