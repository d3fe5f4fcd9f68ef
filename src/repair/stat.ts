// `tessera stat`: what the store holds and how long it will keep it, for one digest, one instance's
// action results, or the whole prefix. Reads only; touches no lease.
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import type { Digest } from '../cas/digest.ts';
import { escapeRedisGlob, type RedisCommitIndex } from '../commit-index/redis-commit-index.ts';

import type { S3ObjectStore } from '../storage/s3-object-store.ts';
import { quarantineKeyOf } from './scrub.ts';

export interface StoreStat {
  /** Blobs with a lease, and their bytes (what the budget is compared with). */
  readonly blobs: number;
  readonly bytes: number;
  readonly leastRecentlyUsedAt: string | null;
  readonly mostRecentlyUsedAt: string | null;
  readonly indexBeganAt: string | null;
  readonly collectorRunning: boolean;
}

export interface DigestStat {
  readonly digest: string;
  readonly committed: boolean;
  /** The size the commit entry records. */
  readonly committedSize: number | null;
  readonly lastUsedAt: string | null;
  /** When the collector may delete it if nothing uses it meanwhile; null: never. */
  readonly leaseExpiresAt: string | null;
  /** An entry from before leases were tracked: its Redis TTL. */
  readonly legacyTtlMs: number | null;
  readonly object: { readonly size: number; readonly lastModified: string | null } | null;
  readonly writesInProgress: number;
  readonly beingDeleted: boolean;
  readonly quarantined: boolean;
}

export interface InstanceStat {
  readonly instance: string;
  readonly actionResults: number;
  readonly bytes: number;
  /** Earliest and latest expiry of the results' leases; null when none or kept forever. */
  readonly firstExpiryAt: string | null;
  readonly lastExpiryAt: string | null;
}

const SCAN_COUNT = 1000;

export async function statStore(index: RedisCommitIndex): Promise<StoreStat> {
  const redis = index.redis;
  const [blobs, bytes, oldest, newest, born, lock] = await Promise.all([
    redis.zcard(index.leaseKey),
    redis.get(index.bytesKey),
    redis.zrange(index.leaseKey, 0, 0, 'WITHSCORES'),
    redis.zrange(index.leaseKey, -1, -1, 'WITHSCORES'),
    redis.get(index.bornKey),
    redis.exists(`${index.prefix}gc:lock`),
  ]);
  return {
    blobs,
    bytes: Number(bytes ?? 0),
    leastRecentlyUsedAt: isoOf(oldest[1]),
    mostRecentlyUsedAt: isoOf(newest[1]),
    indexBeganAt: isoOf(born ?? undefined),
    collectorRunning: lock === 1,
  };
}

export async function statDigest(
  index: RedisCommitIndex,
  objects: S3ObjectStore,
  digest: Digest,
  leaseMs: number,
): Promise<DigestStat> {
  const member = index.memberOf(digest);
  const redis = index.redis;
  const [entry, score, ttl, intents, tombstone] = await Promise.all([
    redis.get(index.entryKeyOf(member)),
    redis.zscore(index.leaseKey, member),
    redis.pttl(index.entryKeyOf(member)),
    redis.zcount(index.intentKeyOf(member), Date.now(), '+inf'),
    redis.exists(index.tombstoneKeyOf(member)),
  ]);
  const [object, quarantined] = await Promise.all([
    head(objects, objects.keyOf(digest)),
    head(objects, quarantineKeyOf(objects.settings.prefix, member)),
  ]);
  const touched = score === null ? undefined : Number(score);
  return {
    digest: `${digest.hash}/${digest.size}`,
    committed: entry !== null && Number(entry) === digest.size,
    committedSize: entry === null ? null : Number(entry),
    lastUsedAt: isoOf(touched),
    leaseExpiresAt: touched !== undefined && leaseMs > 0 ? isoOf(touched + leaseMs) : null,
    legacyTtlMs: ttl > 0 ? ttl : null,
    object,
    writesInProgress: intents,
    beingDeleted: tombstone === 1,
    quarantined: quarantined !== null,
  };
}

export async function statInstance(
  index: RedisCommitIndex,
  instance: string,
): Promise<InstanceStat> {
  const redis = index.redis;
  const base = `${index.prefix}ac:${instance}:`;
  const pattern = `${escapeRedisGlob(base)}*`;
  let results = 0;
  let bytes = 0;
  let first: number | undefined;
  let last: number | undefined;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', SCAN_COUNT);
    cursor = next;
    // An instance name may hold ':', so `ac:team:` also matches `ac:team:sub:…`: keep only keys
    // whose remainder is exactly {fn}:{hash}:{size}.
    const mine = keys.filter((key) => key.slice(base.length).split(':').length === 3);
    if (mine.length === 0) continue;
    const pipeline = redis.pipeline();
    for (const key of mine) pipeline.strlen(key).pttl(key);
    const replies = (await pipeline.exec()) ?? [];
    for (let i = 0; i < mine.length; i++) {
      const size = Number(replies[2 * i]?.[1] ?? 0);
      const ttl = Number(replies[2 * i + 1]?.[1] ?? -2);
      if (ttl === -2) continue;
      results += 1;
      bytes += size;
      if (ttl > 0) {
        const expiry = Date.now() + ttl;
        first = Math.min(first ?? expiry, expiry);
        last = Math.max(last ?? expiry, expiry);
      }
    }
  } while (cursor !== '0');
  return {
    instance,
    actionResults: results,
    bytes,
    firstExpiryAt: isoOf(first),
    lastExpiryAt: isoOf(last),
  };
}

async function head(
  objects: S3ObjectStore,
  key: string,
): Promise<{ size: number; lastModified: string | null } | null> {
  try {
    const answer = await objects.client.send(
      new HeadObjectCommand({ Bucket: objects.settings.bucket, Key: key }),
    );
    return {
      size: answer.ContentLength ?? 0,
      lastModified: answer.LastModified?.toISOString() ?? null,
    };
  } catch (error) {
    if ((error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) {
      return null;
    }
    throw error;
  }
}

function isoOf(ms: number | string | undefined): string | null {
  if (ms === undefined) return null;
  const value = Number(ms);
  return Number.isFinite(value) ? new Date(value).toISOString() : null;
}
