// The commit index in Redis: the single source of truth for "this blob is committed" in S3 mode,
// and the home of the action cache.
//
// Keys (all under the configured prefix, default "tessera:"):
//   cas:{fn}:{hash}                     -> decimal size; written only after S3 holds the whole,
//                                          verified object. Expires after the lease unless a
//                                          lookup, read or action-cache hit refreshes it.
//   ac:{instance}:{fn}:{hash}:{size}    -> encoded ActionResult, with the same lease.
// The fn, hash and size segments hold no ':', so distinct (instance, digest) pairs never share a
// key.
//
// Losing entries (a Redis restart without persistence, a failover to a lagging replica) is safe:
// the blob only looks missing and is uploaded again. The one unsafe state, an entry whose object is
// gone, is caught on read (NOT_FOUND and the entry dropped).
import { Redis } from 'ioredis';
import type { Digest } from '../cas/digest.ts';
import { unavailable } from '../cas/errors.ts';

export interface RedisCommitIndexSettings {
  readonly url: string;
  readonly prefix: string;
  /** 0 keeps entries forever. */
  readonly leaseSeconds: number;
}

const CONNECT_TIMEOUT_MS = 3_000;
const COMMAND_TIMEOUT_MS = 5_000;
const MAX_RECONNECT_DELAY_MS = 2_000;

export class RedisCommitIndex {
  readonly redis: Redis;
  readonly prefix: string;
  readonly #leaseMs: number;

  constructor(settings: RedisCommitIndexSettings) {
    this.prefix = settings.prefix;
    this.#leaseMs = settings.leaseSeconds * 1000;
    this.redis = new Redis(settings.url, {
      lazyConnect: true,
      // Fail commands at once while disconnected: the client gets UNAVAILABLE and retries, instead
      // of an RPC that hangs on a queue.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectTimeout: CONNECT_TIMEOUT_MS,
      commandTimeout: COMMAND_TIMEOUT_MS,
      retryStrategy: (attempt) => Math.min(attempt * 100, MAX_RECONNECT_DELAY_MS),
    });
    // Connection errors surface on commands; without a listener ioredis would print them.
    this.redis.on('error', () => undefined);
  }

  /** Connects, or keeps retrying in the background and resolves false after `timeoutMs`. */
  async connect(timeoutMs: number): Promise<boolean> {
    const ready = new Promise<boolean>((resolve) => {
      this.redis.once('ready', () => resolve(true));
      setTimeout(() => resolve(false), timeoutMs).unref();
    });
    this.redis.connect().catch(() => undefined);
    return ready;
  }

  blobKey(digest: Digest): string {
    return `${this.prefix}cas:${digest.fn.toLowerCase()}:${digest.hash}`;
  }

  actionKey(instance: string, action: Digest): string {
    return `${this.prefix}ac:${instance}:${action.fn.toLowerCase()}:${action.hash}:${action.size}`;
  }

  /** Committed sizes, refreshing leases, in one pipelined round trip. */
  async lookup(digests: readonly Digest[]): Promise<(number | undefined)[]> {
    if (digests.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const digest of digests) {
      const key = this.blobKey(digest);
      if (this.#leaseMs > 0) pipeline.getex(key, 'PX', this.#leaseMs);
      else pipeline.get(key);
    }
    const replies = await this.#run('look up commits', () => pipeline.exec());
    return digests.map((digest, i) => {
      const [error, value] = replies?.[i] ?? [new Error('no reply'), null];
      if (error) throw unavailable(`commit index lookup failed: ${error.message}`, error);
      if (typeof value !== 'string') return undefined;
      const size = Number(value);
      return size === digest.size ? size : undefined;
    });
  }

  async markCommitted(digest: Digest): Promise<void> {
    const key = this.blobKey(digest);
    const size = String(digest.size);
    await this.#run('write commit entry', () =>
      this.#leaseMs > 0
        ? this.redis.set(key, size, 'PX', this.#leaseMs)
        : this.redis.set(key, size),
    );
  }

  async forget(digest: Digest): Promise<void> {
    await this.#run('drop commit entry', () => this.redis.del(this.blobKey(digest)));
  }

  async getActionResult(instance: string, action: Digest): Promise<Buffer | undefined> {
    const key = this.actionKey(instance, action);
    const value = await this.#run('read action result', () =>
      this.#leaseMs > 0
        ? this.redis.getexBuffer(key, 'PX', this.#leaseMs)
        : this.redis.getBuffer(key),
    );
    return value ?? undefined;
  }

  async putActionResult(instance: string, action: Digest, encoded: Uint8Array): Promise<void> {
    const key = this.actionKey(instance, action);
    const value = Buffer.from(encoded.buffer, encoded.byteOffset, encoded.byteLength);
    await this.#run('store action result', () =>
      this.#leaseMs > 0
        ? this.redis.set(key, value, 'PX', this.#leaseMs)
        : this.redis.set(key, value),
    );
  }

  async close(): Promise<void> {
    this.redis.disconnect();
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
