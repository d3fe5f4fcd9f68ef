// The scrubber: re-hashes committed blobs and quarantines the ones whose object no longer matches
// its digest (or is missing or of another size). Runs as `tessera scrub` (one pass) and, with
// scrubBytesPerSecond set, in the background of `serve` (one replica at a time, under
// {prefix}scrub:lock), at that many bytes per second.
//
// Quarantine of a blob, and what a crash after each step leaves:
//   1. copy the object to {s3 prefix}quarantine/{fn}/{hash} (for an operator to examine) -> a copy;
//      the blob is still committed and will be found again by the next pass.
//   2. condemn it like the collector does, whatever its lease (condemn-6.lua with '*'): its entry
//      and lease go and a tombstone bars commits -> it reads as missing; writers wait for the
//      tombstone; the object is a later orphan. Refused while the blob is being written again.
//   3. DELETE the object under the tombstone and release it (deleteUnderTombstone) -> as for the
//      collector: the tombstone expires.
// The next upload of the digest writes good bytes and commits them as usual.
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { CopyObjectCommand } from '@aws-sdk/client-s3';
import { DIGEST_FUNCTION_SEGMENTS, type Digest, toDigest } from '../cas/digest.ts';
import { escapeRedisGlob, type RedisCommitIndex } from '../commit-index/redis-commit-index.ts';
import { deleteUnderTombstone } from '../gc/collector.ts';
import type { MaintenanceMetrics } from '../gc/gc-metrics.ts';
import type { Logger } from '../observability/logger.ts';

import type { S3ObjectStore } from '../storage/s3-object-store.ts';
import { type Verdict, verifyObject } from './verify-object.ts';

export interface ScrubSettings {
  /** Re-hash at most this many bytes per second; 0: as fast as S3 answers. */
  readonly bytesPerSecond: number;
  readonly tombstoneMs: number;
}

export interface Quarantined {
  readonly member: string;
  readonly reason: 'missing' | 'size' | 'mismatch';
  readonly detail: string;
}

export interface ScrubReport {
  checked: number;
  bytes: number;
  readonly quarantined: Quarantined[];
  /** Found bad but being written again meanwhile, or gone already: left to the writer. */
  skipped: number;
}

const SCAN_COUNT = 500;

export class Scrubber {
  readonly #index: RedisCommitIndex;
  readonly #objects: S3ObjectStore;
  readonly #settings: ScrubSettings;
  readonly #log: Logger;
  readonly #metrics: MaintenanceMetrics | undefined;

  constructor(
    index: RedisCommitIndex,
    objects: S3ObjectStore,
    settings: ScrubSettings,
    log: Logger,
    metrics?: MaintenanceMetrics,
  ) {
    this.#index = index;
    this.#objects = objects;
    this.#settings = settings;
    this.#log = log.child({ component: 'scrub' });
    this.#metrics = metrics;
  }

  /**
   * One pass over every commit entry. `keepGoing` is asked after each blob (the background
   * scrubber renews its lock there); false ends the pass early. `signal` cuts a rate-limit wait.
   */
  async pass(
    keepGoing: () => Promise<boolean> = async () => true,
    signal?: AbortSignal,
  ): Promise<ScrubReport> {
    const report: ScrubReport = { checked: 0, bytes: 0, quarantined: [], skipped: 0 };
    const started = Date.now();
    const entryPrefix = this.#index.entryKeyOf('');
    let cursor = '0';
    do {
      const [next, keys] = await this.#index.redis.scan(
        cursor,
        'MATCH',
        `${escapeRedisGlob(entryPrefix)}*`,
        'COUNT',
        SCAN_COUNT,
      );
      cursor = next;
      for (const key of keys) {
        const member = key.slice(entryPrefix.length);
        const size = await this.#index.redis.get(key);
        const digest = size === null ? undefined : digestOfMember(member, Number(size));
        if (!digest) continue;
        const verdict = await verifyObject(this.#objects, digest);
        report.checked += 1;
        report.bytes += digest.size;
        this.#metrics?.scrubbedBlobs.inc();
        this.#metrics?.scrubbedBytes.inc(digest.size);
        if (!verdict.ok) await this.#quarantine(member, digest, verdict, report);
        if (!(await keepGoing())) return report;
        await this.#keepPace(started, report.bytes, signal);
      }
    } while (cursor !== '0');
    this.#log.info(
      { checked: report.checked, bytes: report.bytes, quarantined: report.quarantined.length },
      'scrub pass finished',
    );
    return report;
  }

  async #quarantine(
    member: string,
    digest: Digest,
    verdict: Exclude<Verdict, { ok: true }>,
    report: ScrubReport,
  ): Promise<void> {
    const key = this.#objects.keyOf(digest);
    if (verdict.reason !== 'missing') {
      await this.#objects.client.send(
        new CopyObjectCommand({
          Bucket: this.#objects.settings.bucket,
          Key: quarantineKeyOf(this.#objects.settings.prefix, member),
          CopySource: encodeURI(`${this.#objects.settings.bucket}/${key}`),
        }),
      );
    }
    const tombstone = randomUUID();
    const condemnedAt = Date.now();
    const [condemned] = (await this.#index.script(
      'condemn',
      this.#index.entryKeyOf(member),
      this.#index.leaseKey,
      this.#index.bytesKey,
      this.#index.intentKeyOf(member),
      this.#index.tombstoneKeyOf(member),
      `${this.#index.prefix}gc:lock`,
      member,
      '*',
      tombstone,
      this.#settings.tombstoneMs,
      '',
      0,
    )) as [number, number];
    if (condemned !== 1) {
      report.skipped += 1;
      return;
    }
    if (verdict.reason !== 'missing') {
      const deleted = await deleteUnderTombstone(
        this.#index,
        this.#objects,
        member,
        tombstone,
        condemnedAt,
        this.#settings.tombstoneMs,
      );
      if (deleted) {
        this.#metrics?.deletedObjects.inc({ reason: 'corrupt' });
        this.#metrics?.deletedBytes.inc({ reason: 'corrupt' }, digest.size);
      }
    } else {
      await this.#index.script('releaseIfOwner', this.#index.tombstoneKeyOf(member), tombstone);
    }
    report.quarantined.push({ member, reason: verdict.reason, detail: verdict.detail });
    this.#metrics?.quarantined.inc({ reason: verdict.reason });
    this.#log.error(
      { digest: member, key, reason: verdict.reason, detail: verdict.detail },
      'stored blob is corrupt; its commit was removed and the object quarantined',
    );
  }

  async #keepPace(started: number, bytes: number, signal?: AbortSignal): Promise<void> {
    if (this.#settings.bytesPerSecond <= 0) return;
    const aheadMs = (bytes / this.#settings.bytesPerSecond) * 1000 - (Date.now() - started);
    if (aheadMs > 0) await sleep(aheadMs, undefined, { signal });
  }
}

/** `{s3 prefix}quarantine/{fn}/{hash}`: where the scrubber keeps a corrupt object's bytes. */
export function quarantineKeyOf(s3Prefix: string, member: string): string {
  return `${s3Prefix}quarantine/${member.replace(':', '/')}`;
}

function digestOfMember(member: string, size: number): Digest | undefined {
  const [segment, hash, ...rest] = member.split(':');
  const fn = DIGEST_FUNCTION_SEGMENTS.get(segment ?? '');
  if (!fn || rest.length > 0 || !Number.isSafeInteger(size)) return undefined;
  try {
    return toDigest(fn, hash, size);
  } catch {
    return undefined;
  }
}
