// The garbage collector: deletes the S3 objects of blobs whose lease expired, evicts the least
// recently used blobs while the bucket holds more than its budget, and removes orphan objects
// (written but never committed, or committed before leases were tracked and since expired).
//
// One collector runs at a time per Redis prefix: it holds {prefix}gc:lock (a fencing token from
// INCR {prefix}gc:epoch) and every condemn checks and renews it, so a collector that stalled past
// its lock and was replaced stops at its next step instead of working beside the new one.
//
// Each blob goes through three steps; what a crash after each leaves behind:
//   1. select: read a candidate and its lease score from {prefix}gc:lease -> nothing changed.
//   2. condemn (condemn-6.lua): only if the score is still the one read (not touched since) and no
//      write intent is live, atomically drop the commit entry and lease and set a tombstone ->
//      the blob reads as missing; its object stays as an orphan (swept by a later run); writers of
//      the digest wait until the tombstone expires (at most its life).
//   3. DELETE the object, then release the tombstone -> a crash before the release leaves the
//      tombstone until it expires; writers wait that long.
// The DELETE is sent only within the first half of the tombstone's life and abandoned after a
// quarter more, so it lands while the tombstone still bars every commit of the digest. When that
// cannot be promised (a stall, a slow S3), the object is left for the orphan sweep and the
// tombstone to expire; it is never released early.
import { randomUUID } from 'node:crypto';
import { DeleteObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import {
  type RedisCommitIndex,
  TOMBSTONE_MAX_LIFE_MS,
} from '../commit-index/redis-commit-index.ts';
import type { Settings } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import type { S3ObjectStore } from '../storage/s3-object-store.ts';
import type { MaintenanceMetrics } from './gc-metrics.ts';

export interface CollectorSettings {
  /** A blob untouched this long is deleted; 0: leases never expire. */
  readonly leaseMs: number;
  /** Evict least recently used blobs while the index holds more bytes; 0: no budget. */
  readonly budgetBytes: number;
  /** Never evict a blob touched more recently than this, whatever the budget. */
  readonly minAgeMs: number;
  /** Delete objects with no commit entry once they are this old; undefined: no orphan sweep. */
  readonly orphanGraceMs: number | undefined;
  readonly tombstoneMs: number;
  readonly lockMs: number;
  /** List what would be deleted, change nothing. */
  readonly dryRun: boolean;
}

export type CollectorStep = 'selected' | 'condemned' | 'deleted';

/**
 * Test-only: called between a blob's steps, the collector waiting for it: after selection, after
 * the condemn, and after the DELETE but before the tombstone is released.
 */
export type CollectorPause = (step: CollectorStep, member: string) => Promise<void>;

export interface CollectorOptions {
  readonly metrics?: MaintenanceMetrics;
  /** Tests only; `serve` and `tessera gc` never pass one. */
  readonly pause?: CollectorPause;
}

export type CandidateReason = 'expired' | 'evicted' | 'orphan';

/** Why condemn-6.lua kept a blob (its reply {0, n}: n = 1, 2, 3). */
export type KeptReason = 'touched' | 'writing' | 'condemned';
const KEPT_REASONS: readonly KeptReason[] = ['touched', 'writing', 'condemned'];

export interface Candidate {
  readonly member: string;
  readonly reason: CandidateReason;
  readonly bytes: number;
  /** Last touch (ms), absent for orphans. */
  readonly touchedAt?: number;
}

export interface CollectionReport {
  readonly dryRun: boolean;
  /** Deleted (or, in a dry run, what would be). */
  readonly deleted: Candidate[];
  /** Chosen but kept: touched since, being written, or already condemned. */
  kept: number;
  /** `kept`, by why. */
  readonly keptBecause: Record<KeptReason, number>;
  /** Condemned, but the object was left for a later sweep (DELETE too late or failed). */
  leftForLater: number;
  bytesDeleted: number;
}

/** Another collector holds the lock. */
export class CollectorBusyError extends Error {
  override readonly name = 'CollectorBusyError';
}

/** This collector lost its lock while it ran. */
export class CollectorFencedError extends Error {
  override readonly name = 'CollectorFencedError';
}

export const DEFAULT_LOCK_MS = 60_000;

/** The collector's slice of the settings. */
export function collectorSettingsFrom(settings: Settings, dryRun: boolean): CollectorSettings {
  return {
    leaseMs: settings.casLeaseSeconds * 1000,
    budgetBytes: settings.gcBudgetBytes,
    minAgeMs: settings.gcMinAgeSeconds * 1000,
    orphanGraceMs:
      settings.gcOrphanGraceSeconds > 0 ? settings.gcOrphanGraceSeconds * 1000 : undefined,
    tombstoneMs: TOMBSTONE_MAX_LIFE_MS,
    lockMs: DEFAULT_LOCK_MS,
    dryRun,
  };
}
const PAGE = 500;

export class Collector {
  readonly #index: RedisCommitIndex;
  readonly #objects: S3ObjectStore;
  readonly #settings: CollectorSettings;
  readonly #log: Logger;
  readonly #options: CollectorOptions;

  constructor(
    index: RedisCommitIndex,
    objects: S3ObjectStore,
    settings: CollectorSettings,
    log: Logger,
    options: CollectorOptions = {},
  ) {
    this.#index = index;
    this.#objects = objects;
    this.#settings = settings;
    this.#log = log.child({ component: 'gc' });
    this.#options = options;
  }

  /** One collection. Throws CollectorBusyError when another collector is running. */
  async collect(): Promise<CollectionReport> {
    const metrics = this.#options.metrics;
    let lock: string;
    try {
      lock = await this.#acquire();
    } catch (error) {
      const outcome = error instanceof CollectorBusyError ? 'busy' : 'failed';
      metrics?.collections.inc({ outcome });
      throw error;
    }
    const started = Date.now();
    const report: CollectionReport = {
      dryRun: this.#settings.dryRun,
      deleted: [],
      kept: 0,
      keptBecause: { touched: 0, writing: 0, condemned: 0 },
      leftForLater: 0,
      bytesDeleted: 0,
    };
    const run = new Run(this.#index, this.#objects, this.#settings, lock, report, this.#options);
    try {
      if (this.#settings.leaseMs > 0) await run.expire(started - this.#settings.leaseMs);
      if (this.#settings.budgetBytes > 0) await run.evict(started - this.#settings.minAgeMs);
      if (this.#settings.orphanGraceMs !== undefined) {
        await run.sweepOrphans(started - this.#settings.orphanGraceMs);
      }
      metrics?.collections.inc({ outcome: 'done' });
    } catch (error) {
      metrics?.collections.inc({ outcome: 'failed' });
      throw error;
    } finally {
      await this.#index.script('releaseIfOwner', this.#lockKey, lock).catch(() => undefined);
    }
    this.#log.info(
      {
        dryRun: report.dryRun,
        deleted: report.deleted.length,
        bytesDeleted: report.bytesDeleted,
        kept: report.keptBecause,
        leftForLater: report.leftForLater,
        durationMs: Date.now() - started,
      },
      report.dryRun ? 'garbage collection dry run' : 'garbage collection finished',
    );
    return report;
  }

  get #lockKey(): string {
    return `${this.#index.prefix}gc:lock`;
  }

  async #acquire(): Promise<string> {
    const epoch = await this.#index.redis.incr(`${this.#index.prefix}gc:epoch`);
    const token = `${epoch}:${randomUUID()}`;
    const taken = await this.#index.redis.set(
      this.#lockKey,
      token,
      'PX',
      this.#settings.lockMs,
      'NX',
    );
    if (taken !== 'OK') {
      const holder = await this.#index.redis.get(this.#lockKey);
      throw new CollectorBusyError(`another collector holds the lock (token ${holder ?? '?'})`);
    }
    return token;
  }
}

/** The state of one collection. */
class Run {
  readonly #index: RedisCommitIndex;
  readonly #objects: S3ObjectStore;
  readonly #settings: CollectorSettings;
  readonly #lock: string;
  readonly #report: CollectionReport;
  readonly #pause: CollectorPause;
  readonly #metrics: MaintenanceMetrics | undefined;
  /** Dry runs remove nothing, so they must remember what they already counted. */
  readonly #counted = new Set<string>();

  constructor(
    index: RedisCommitIndex,
    objects: S3ObjectStore,
    settings: CollectorSettings,
    lock: string,
    report: CollectionReport,
    options: CollectorOptions,
  ) {
    this.#index = index;
    this.#objects = objects;
    this.#settings = settings;
    this.#lock = lock;
    this.#report = report;
    this.#pause = options.pause ?? (async () => undefined);
    this.#metrics = options.metrics;
  }

  /** Blobs last touched before `cutoff`, oldest first. */
  async expire(cutoff: number): Promise<void> {
    let offset = 0;
    for (;;) {
      const page = await this.#index.redis.zrangebyscore(
        this.#index.leaseKey,
        '-inf',
        cutoff,
        'WITHSCORES',
        'LIMIT',
        offset,
        PAGE,
      );
      if (page.length === 0) return;
      for (let i = 0; i < page.length; i += 2) {
        const member = page[i] as string;
        const kept = !(await this.#collect(member, page[i + 1] as string, 'expired'));
        if (kept || this.#settings.dryRun) offset += 1;
      }
      await this.#renewLock();
    }
  }

  /** While the index holds more than the budget: the least recently used, none after `cutoff`. */
  async evict(cutoff: number): Promise<void> {
    let total = Number((await this.#index.redis.get(this.#index.bytesKey)) ?? '0');
    // A dry run's expiry phase removed nothing from the running total: count it as removed.
    if (this.#settings.dryRun) total -= this.#report.bytesDeleted;
    let offset = 0;
    while (total > this.#settings.budgetBytes) {
      const page = await this.#index.redis.zrange(
        this.#index.leaseKey,
        offset,
        offset + PAGE - 1,
        'WITHSCORES',
      );
      if (page.length === 0) return;
      for (let i = 0; i < page.length && total > this.#settings.budgetBytes; i += 2) {
        const member = page[i] as string;
        const score = page[i + 1] as string;
        if (Number(score) > cutoff) return;
        const bytes = await this.#collect(member, score, 'evicted');
        if (bytes === false || this.#settings.dryRun) offset += 1;
        if (bytes !== false) total -= bytes;
      }
      await this.#renewLock();
    }
  }

  /**
   * Objects under the prefix with no commit entry and no lease, last written before `cutoff` but
   * not before the index began: an older object may be committed in an index Redis lost, and is
   * left for `tessera reindex`.
   */
  async sweepOrphans(cutoff: number): Promise<void> {
    const born = await this.#index.redis.get(this.#index.bornKey);
    if (born === null) return;
    const prefix = `${this.#objects.settings.prefix}cas/`;
    let token: string | undefined;
    do {
      const page = await this.#objects.client.send(
        new ListObjectsV2Command({
          Bucket: this.#objects.settings.bucket,
          Prefix: prefix,
          ContinuationToken: token,
        }),
      );
      const old = (page.Contents ?? []).filter((object) => {
        // Listings give whole seconds: an object from the second the index began may predate it.
        const written = object.LastModified?.getTime() ?? Date.now();
        return object.Key !== undefined && written < cutoff && written >= Number(born) + 1000;
      });
      const members = old.map((object) => memberOfObjectKey(object.Key as string, prefix));
      const check = this.#index.redis.pipeline();
      for (const member of members) {
        check.exists(this.#index.entryKeyOf(member));
        check.zscore(this.#index.leaseKey, member);
      }
      const answers = members.length > 0 ? ((await check.exec()) ?? []) : [];
      for (const [i, member] of members.entries()) {
        const [, entry] = answers[2 * i] ?? [];
        const [, score] = answers[2 * i + 1] ?? [];
        if (entry === 1 || score !== null || this.#counted.has(member)) continue;
        await this.#collect(member, '', 'orphan', old[i]?.Size ?? 0);
      }
      await this.#renewLock();
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /**
   * Condemns and deletes one blob; returns the bytes it held, or false when it was kept. `seen`
   * is its lease score as read ('' for an orphan).
   */
  async #collect(
    member: string,
    seen: string,
    reason: CandidateReason,
    orphanBytes = 0,
  ): Promise<number | false> {
    await this.#pause('selected', member);
    const touchedAt = seen === '' ? undefined : Number(seen);
    if (this.#settings.dryRun) {
      if (this.#counted.has(member)) return false;
      this.#counted.add(member);
      const size = await this.#index.redis.get(this.#index.entryKeyOf(member));
      const bytes = size === null ? orphanBytes : Number(size);
      this.#report.deleted.push({ member, reason, bytes, touchedAt });
      this.#report.bytesDeleted += bytes;
      return bytes;
    }

    const tombstone = randomUUID();
    const condemnedAt = Date.now();
    const answer = (await this.#index.script(
      'condemn',
      this.#index.entryKeyOf(member),
      this.#index.leaseKey,
      this.#index.bytesKey,
      this.#index.intentKeyOf(member),
      this.#index.tombstoneKeyOf(member),
      `${this.#index.prefix}gc:lock`,
      member,
      seen,
      tombstone,
      this.#settings.tombstoneMs,
      this.#lock,
      this.#settings.lockMs,
    )) as [number, number];
    if (answer[0] === -1) throw new CollectorFencedError('the collector lost its lock; stopping');
    if (answer[0] === 0) {
      const why = KEPT_REASONS[answer[1] - 1] ?? 'touched';
      this.#report.kept += 1;
      this.#report.keptBecause[why] += 1;
      this.#metrics?.kept.inc({ reason: why });
      return false;
    }
    const bytes = reason === 'orphan' ? orphanBytes : answer[1];
    await this.#pause('condemned', member);

    const deleted = await deleteUnderTombstone(
      this.#index,
      this.#objects,
      member,
      tombstone,
      condemnedAt,
      this.#settings.tombstoneMs,
      () => this.#pause('deleted', member),
    );
    if (!deleted) {
      this.#report.leftForLater += 1;
      this.#metrics?.leftForLater.inc();
      return bytes;
    }
    this.#report.deleted.push({ member, reason, bytes, touchedAt });
    this.#report.bytesDeleted += bytes;
    this.#metrics?.deletedObjects.inc({ reason });
    this.#metrics?.deletedBytes.inc({ reason }, bytes);
    return bytes;
  }

  async #renewLock(): Promise<void> {
    if (this.#settings.dryRun) return;
    const renewed = await this.#index.script(
      'extendIfOwner',
      `${this.#index.prefix}gc:lock`,
      this.#lock,
      this.#settings.lockMs,
    );
    if (renewed !== 1) throw new CollectorFencedError('the collector lost its lock; stopping');
  }
}

/**
 * Deletes a condemned blob's object while its tombstone still bars every commit of it, then
 * releases the tombstone. False (tombstone kept until it expires) when the DELETE could not be
 * sent in time or did not finish: the object, now without an entry, is left for the orphan sweep.
 */
export async function deleteUnderTombstone(
  index: RedisCommitIndex,
  objects: S3ObjectStore,
  member: string,
  tombstone: string,
  condemnedAt: number,
  tombstoneMs: number,
  /** Tests only: runs between the DELETE and the release of the tombstone. */
  beforeRelease: () => Promise<void> = async () => undefined,
): Promise<boolean> {
  if (Date.now() - condemnedAt > tombstoneMs / 2) return false;
  try {
    await objects.client.send(
      new DeleteObjectCommand({
        Bucket: objects.settings.bucket,
        Key: objectKeyOfMember(objects.settings.prefix, member),
      }),
      { abortSignal: AbortSignal.timeout(tombstoneMs / 4) },
    );
  } catch {
    return false;
  }
  await beforeRelease();
  await index.script('releaseIfOwner', index.tombstoneKeyOf(member), tombstone);
  return true;
}

/** `{fn}:{hash}` -> `{s3 prefix}cas/{fn}/{hash}`. */
export function objectKeyOfMember(s3Prefix: string, member: string): string {
  return `${s3Prefix}cas/${member.replace(':', '/')}`;
}

/** `{s3 prefix}cas/{fn}/{hash}` -> `{fn}:{hash}`. */
export function memberOfObjectKey(key: string, casPrefix: string): string {
  return key.slice(casPrefix.length).replace('/', ':');
}
