// Asset mappings in Redis (S3 mode), on the connection the commit index already holds.
//
// Keys (under the configured prefix, default "tessera:"):
//   asset:{instance}:{key}   -> an encoded asset record (src/asset/asset-record.ts); {key} is the
//                               64-digit hex SHA-256 of the canonical asset name. It holds no ':',
//                               so the instance name is everything between "asset:" and the last
//                               ':' and distinct (instance, name) pairs never share a key.
//
// Lifetime: like a commit, a record lives for the CAS lease (`casLeaseSeconds`; 0 keeps it until
// replaced) and every fetch that reads it renews the lease. A push with `expire_at` sooner than
// the lease sets the key's expiry there, so it is reclaimed as soon as it can no longer be served.
// A renewal may carry an expired record past its `expire_at`; the service checks `expire_at` on
// every fetch, so such a record is never served, only kept until its lease runs out or a new push
// replaces it.
//
// Crash behaviour: each put is one SET of the whole record, so a record is either the old one or
// the new one. Losing records (Redis restarted without persistence, failover) only makes assets
// look missing; clients push them again.
import type { Redis } from 'ioredis';
import { unavailable } from '../cas/errors.ts';
import type { AssetStore } from './asset-store.ts';

export interface RedisAssetStoreSettings {
  readonly prefix: string;
  /** 0 keeps records until replaced. */
  readonly leaseSeconds: number;
}

export class RedisAssetStore implements AssetStore {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #leaseMs: number;

  /** `redis` is shared, not owned: the commit index connects and closes it. */
  constructor(redis: Redis, settings: RedisAssetStoreSettings) {
    this.#redis = redis;
    this.#prefix = settings.prefix;
    this.#leaseMs = settings.leaseSeconds * 1000;
  }

  keyOf(instance: string, key: string): string {
    return `${this.#prefix}asset:${instance}:${key}`;
  }

  async get(instance: string, key: string): Promise<Buffer | undefined> {
    const redisKey = this.keyOf(instance, key);
    const value = await this.#run('read asset record', () =>
      this.#leaseMs > 0
        ? this.#redis.getexBuffer(redisKey, 'PX', this.#leaseMs)
        : this.#redis.getBuffer(redisKey),
    );
    return value ?? undefined;
  }

  async put(
    instance: string,
    key: string,
    encoded: Uint8Array,
    expiresAtMs: number | undefined,
  ): Promise<void> {
    const redisKey = this.keyOf(instance, key);
    const value = Buffer.from(encoded.buffer, encoded.byteOffset, encoded.byteLength);
    const ttlMs = this.#ttlMs(expiresAtMs);
    await this.#run('store asset record', () =>
      ttlMs === undefined
        ? this.#redis.set(redisKey, value)
        : this.#redis.set(redisKey, value, 'PX', ttlMs),
    );
  }

  /** The key's time to live: the lease, or less when the record expires sooner. */
  #ttlMs(expiresAtMs: number | undefined): number | undefined {
    const lease = this.#leaseMs > 0 ? this.#leaseMs : undefined;
    if (expiresAtMs === undefined) return lease;
    // An already expired record is still written (it replaces the previous mapping) and lives 1 ms.
    const untilExpiry = Math.max(1, expiresAtMs - Date.now());
    return lease === undefined ? untilExpiry : Math.min(lease, untilExpiry);
  }

  async #run<T>(what: string, command: () => Promise<T>): Promise<T> {
    try {
      return await command();
    } catch (error) {
      throw unavailable(
        `asset store unavailable: cannot ${what}: ${(error as Error).message}`,
        error,
      );
    }
  }
}
