// The commit index in Redis: the single source of truth for "this blob is committed" in S3 mode,
// the lease of every committed blob, and the home of the action cache.
//
// Keys (all under the configured prefix, default "tessera:"):
//   cas:{fn}:{hash}                     -> decimal size; written only after S3 holds the whole,
//                                          verified object. No TTL: the lease below says when the
//                                          collector (src/gc/) may delete it. Entries written
//                                          before leases were tracked carry a TTL and are adopted
//                                          on their next lookup (adopt-entry-3.lua).
//   gc:lease                            -> sorted set {fn}:{hash} -> last touch (ms): commit,
//                                          lookup (FindMissingBlobs, read, action-cache check).
//   gc:bytes                            -> sum of the sizes of the blobs in gc:lease.
//   gc:putting:{fn}:{hash}              -> sorted set of write intents: token -> expiry (Redis
//                                          time, ms). An object is only written under an intent,
//                                          and no collector condemns a blob with a live one.
//   gc:tomb:{fn}:{hash}                 -> a collector's token while it deletes the object; no
//                                          intent can be recorded meanwhile. Expires on its own.
//   gc:born                             -> Redis time (ms) of the first commit into this index;
//                                          objects older than that are never taken for orphans,
//                                          so a Redis that lost its data never gets the bucket
//                                          swept before `tessera reindex` has run.
//   gc:lock, gc:epoch                   -> the collector's lock and its fencing counter.
//   ac:{instance}:{fn}:{hash}:{size}    -> encoded ActionResult; expires after the lease unless a
//                                          hit refreshes it (it has no object to delete).
// The fn, hash and size segments hold no ':', so distinct (instance, digest) pairs never share a
// key. LIMITATION: the scripts touch a blob's keys and the shared gc:lease together, so they
// assume one Redis, not a cluster that shards those keys apart.
//
// Invariant kept with the collector: a commit entry is written (commit-put-7.lua) only while the
// writer's intent is live and no tombstone exists, and a blob is condemned (condemn-6.lua) only
// while it has no live intent; so no commit can land between a condemn and the end of its DELETE.
// Losing entries (a Redis restart without persistence) is safe: the blob looks missing and is
// uploaded again. An entry whose object is gone is caught on read (NOT_FOUND, entry dropped).
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import type { Digest } from '../cas/digest.ts';
import { unavailable } from '../cas/errors.ts';
import { crashPoint } from '../observability/crash-points.ts';
import { leaseScripts, type RunScript } from './lease-scripts.ts';

export interface RedisCommitIndexSettings {
  readonly url: string;
  readonly prefix: string;
  /** Lease of action results (their Redis TTL); 0 keeps them forever. */
  readonly leaseSeconds: number;
}

/** Longest life of a collector's tombstone; a writer waits at most this long for one to go. */
export const TOMBSTONE_MAX_LIFE_MS = 60_000;
/** How long a write intent protects an object being written from the collector. */
export const WRITE_INTENT_MS = 3_600_000;

const CONNECT_TIMEOUT_MS = 3_000;
const COMMAND_TIMEOUT_MS = 5_000;
const MAX_RECONNECT_DELAY_MS = 2_000;
const TOMBSTONE_POLL_MS = 50;

/**
 * Where commits and stored action results are logged for other regions
 * (regions/replication-log.ts), in the same step that writes them (the commit script; a MULTI for
 * an action result): a write and its log entry exist together or not at all.
 */
export interface CommitJournal {
  /** The stream's key. */
  readonly key: string;
  /** The stream's approximate cap (XADD MAXLEN ~). */
  readonly maxEntries: number;
  /** Asked at each write: false for one that should not be logged (one a peer pushed). */
  readonly records: () => boolean;
}

export class RedisCommitIndex {
  readonly redis: Redis;
  readonly prefix: string;
  readonly script: RunScript;
  readonly #leaseMs: number;
  #journal: CommitJournal | undefined;

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
    this.script = leaseScripts(this.redis);
  }

  /**
   * From now on, every commit and action result this index writes is also appended to `journal`,
   * atomically.
   */
  journalCommits(journal: CommitJournal): void {
    this.#journal = journal;
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

  /** `{fn}:{hash}`: the blob's name in the lease index and in its per-blob keys. */
  memberOf(digest: Digest): string {
    return `${digest.fn.toLowerCase()}:${digest.hash}`;
  }

  blobKey(digest: Digest): string {
    return this.entryKeyOf(this.memberOf(digest));
  }

  entryKeyOf(member: string): string {
    return `${this.prefix}cas:${member}`;
  }

  intentKeyOf(member: string): string {
    return `${this.prefix}gc:putting:${member}`;
  }

  tombstoneKeyOf(member: string): string {
    return `${this.prefix}gc:tomb:${member}`;
  }

  get leaseKey(): string {
    return `${this.prefix}gc:lease`;
  }

  get bornKey(): string {
    return `${this.prefix}gc:born`;
  }

  get bytesKey(): string {
    return `${this.prefix}gc:bytes`;
  }

  actionKey(instance: string, action: Digest): string {
    return `${this.prefix}ac:${instance}:${action.fn.toLowerCase()}:${action.hash}:${action.size}`;
  }

  /**
   * Committed sizes, renewing the lease of each blob found, in one pipelined round trip. The lease
   * is renewed before the entry is read, so a blob reported present was touched before any
   * collector could compare its lease: that collector keeps it. Entries from before leases were
   * tracked are adopted in a second round trip, once each.
   *
   * Three commands whatever the number of digests (which leases exist, renew them, read the
   * entries): FindMissingBlobs of 10,000 digests as two commands each cost Redis and the
   * client's reply parsing several times the round trip itself.
   */
  async lookup(digests: readonly Digest[]): Promise<(number | undefined)[]> {
    if (digests.length === 0) return [];
    const now = Date.now();
    const members = digests.map((digest) => this.memberOf(digest));
    const pipeline = this.redis.pipeline();
    pipeline.zmscore(this.leaseKey, ...members);
    pipeline.zadd(this.leaseKey, 'XX', ...members.flatMap((member) => [now, member]));
    pipeline.mget(...digests.map((digest) => this.blobKey(digest)));
    const replies = await this.#run('look up commits', () => pipeline.exec());
    for (const [error] of replies ?? [[new Error('no reply')]]) {
      if (error) throw unavailable(`commit index lookup failed: ${error.message}`, error);
    }
    const leases = (replies?.[0]?.[1] ?? []) as (string | null)[];
    const values = (replies?.[2]?.[1] ?? []) as (string | null)[];
    if (leases.length !== digests.length || values.length !== digests.length) {
      throw unavailable(
        `commit index lookup returned ${values.length} entries for ${digests.length} digests`,
      );
    }
    const untracked: Digest[] = [];
    const sizes = digests.map((digest, i) => {
      const value = values[i];
      if (typeof value !== 'string') return undefined;
      const size = Number(value);
      if (size !== digest.size) return undefined;
      if (leases[i] === null) untracked.push(digest);
      return size;
    });
    if (untracked.length > 0) {
      await this.#run('adopt commit entries', () =>
        Promise.all(
          untracked.map((digest) =>
            this.script(
              'adoptEntry',
              this.blobKey(digest),
              this.leaseKey,
              this.bytesKey,
              this.memberOf(digest),
              now,
            ),
          ),
        ),
      );
    }
    return sizes;
  }

  /**
   * Records the intent to write `digest`'s object and returns its token; waits while a collector
   * is deleting that object (its tombstone lives at most TOMBSTONE_MAX_LIFE_MS). `onWait` is told
   * once when the wait begins.
   */
  async beginPut(digest: Digest, onWait?: (tombstoneMs: number) => void): Promise<string> {
    return (await this.#beginPut(digest, false, onWait)) as string;
  }

  /**
   * `beginPut`, unless the blob is committed already: then its lease is renewed, as `lookup`
   * would, no intent is recorded and the answer is undefined. One round trip for what a lookup
   * and then `beginPut` would ask in two.
   */
  beginPutUnlessCommitted(
    digest: Digest,
    onWait?: (tombstoneMs: number) => void,
  ): Promise<string | undefined> {
    return this.#beginPut(digest, true, onWait);
  }

  async #beginPut(
    digest: Digest,
    unlessCommitted: boolean,
    onWait: ((tombstoneMs: number) => void) | undefined,
  ): Promise<string | undefined> {
    const member = this.memberOf(digest);
    const token = randomUUID();
    const deadline = Date.now() + TOMBSTONE_MAX_LIFE_MS + TOMBSTONE_POLL_MS;
    let waited = false;
    for (;;) {
      const answer = await this.#run('record a write intent', () =>
        this.script(
          'beginPut',
          this.tombstoneKeyOf(member),
          this.intentKeyOf(member),
          this.blobKey(digest),
          this.leaseKey,
          token,
          WRITE_INTENT_MS,
          unlessCommitted ? String(digest.size) : '',
          member,
          Date.now(),
        ),
      );
      const tombstoneMs = Number(answer);
      if (tombstoneMs === -1) return undefined;
      if (tombstoneMs === 0) return token;
      if (Date.now() > deadline) {
        throw unavailable(
          `the collector has been deleting ${member} for longer than ` +
            `${TOMBSTONE_MAX_LIFE_MS} ms; upload it again later`,
        );
      }
      if (!waited) onWait?.(tombstoneMs);
      waited = true;
      await sleep(Math.min(tombstoneMs, TOMBSTONE_POLL_MS));
    }
  }

  /**
   * Commits an object written under the intent `token`. False when the intent expired or a
   * collector intervened: the object may be gone, so write it again before committing.
   */
  async commitPut(digest: Digest, token: string): Promise<boolean> {
    const member = this.memberOf(digest);
    const journal = this.#journal;
    const logged = journal?.records() === true;
    const answer = await this.#run('write commit entry', () =>
      this.script(
        'commitPut',
        this.blobKey(digest),
        this.intentKeyOf(member),
        this.leaseKey,
        this.bytesKey,
        this.tombstoneKeyOf(member),
        this.bornKey,
        // Without a journal any key will do: the script touches KEYS[7] only when told to log.
        journal?.key ?? this.blobKey(digest),
        token,
        digest.size,
        member,
        Date.now(),
        logged ? 1 : 0,
        journal?.maxEntries ?? 0,
        digest.fn,
        digest.hash,
      ),
    );
    return answer === 1;
  }

  /** Withdraws a write intent after a failed write, so the collector need not wait it out. */
  async abandonPut(digest: Digest, token: string): Promise<void> {
    await this.#run('withdraw a write intent', () =>
      this.redis.zrem(this.intentKeyOf(this.memberOf(digest)), token),
    );
  }

  /** Drops the commit entry and lease of a blob whose object is missing or corrupt. */
  async forget(digest: Digest): Promise<void> {
    await this.#run('drop commit entry', () =>
      this.script(
        'dropEntry',
        this.blobKey(digest),
        this.leaseKey,
        this.bytesKey,
        this.memberOf(digest),
      ),
    );
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
    const journal = this.#journal;
    if (journal?.records() !== true) {
      await this.#run('store action result', () =>
        this.#leaseMs > 0
          ? this.redis.set(key, value, 'PX', this.#leaseMs)
          : this.redis.set(key, value),
      );
    } else {
      await this.#storeWithLogEntry(journal, key, value, instance, action);
    }
    crashPoint('action-result-stored');
  }

  /** The action result and its replication-log entry in one MULTI: no crash can separate them. */
  async #storeWithLogEntry(
    journal: CommitJournal,
    key: string,
    value: Buffer,
    instance: string,
    action: Digest,
  ): Promise<void> {
    await this.#run('store action result', async () => {
      const transaction = this.redis.multi();
      if (this.#leaseMs > 0) transaction.set(key, value, 'PX', this.#leaseMs);
      else transaction.set(key, value);
      transaction.xadd(
        journal.key,
        'MAXLEN',
        '~',
        journal.maxEntries,
        '*',
        ...['kind', 'ac', 'fn', action.fn, 'hash', action.hash, 'size', String(action.size)],
        ...['instance', instance],
      );
      const replies = await transaction.exec();
      const failed = replies?.find(([error]) => error)?.[0];
      if (!replies || failed) throw failed ?? new Error('the transaction was discarded');
    });
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

/** `text` as a literal in a SCAN MATCH pattern (prefixes and instance names may hold * ? [ ]). */
export function escapeRedisGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}
