// Pushes what this region commits to one peer region, from the replication log (replication-log.ts).
//
// Redis: a consumer group on `{r}replication:log` named `peer:{name}`, one per peer; every replica
// of the region runs one consumer per peer, named after its host and process, and the group shares
// the entries among them. An entry is acknowledged (XACK) only after the peer confirmed it: the
// blob committed there (ByteStream Write, or FindMissingBlobs says it has it) or the action result
// stored (UpdateActionResult, after every blob it references). So delivery is at least once:
// - a replica that dies leaves its unacknowledged entries pending; any live replica claims entries
//   pending longer than CLAIM_IDLE_MS (XAUTOCLAIM) and pushes them again;
// - a peer that is down or refuses makes the consumer retry the same entries with backoff, so the
//   log backs up (the lag, exported as tessera_replication_lag_entries) rather than losing them.
// Pushing twice is harmless: content-addressed writes are idempotent, and a peer answers a write of
// a blob it has at once.
//
// What is pushed is read from this region's store directly (not through Cas.read), so a blob that
// has expired here since it was logged is skipped, not read through from a peer.
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import { directReferences } from '../cas/action-results.ts';
import type { Cas } from '../cas/cas.ts';
import { type Digest, digestKey, formatDigest, fromWireDigest } from '../cas/digest.ts';
import { CasError } from '../cas/errors.ts';
import type { ActionCacheStore } from '../cas/store.ts';
import type { ActionResult, Tree } from '../grpc/messages.ts';
import { decodeMessage } from '../grpc/proto.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { PeerClient } from './peer-client.ts';
import { type LogEntry, parseLogEntry } from './replication-log.ts';

/** Entries taken per batch. */
const BATCH_ENTRIES = 100;
/** How long a read for new entries blocks before the loop looks at pending ones again. */
const BLOCK_MS = 1_000;
/** Entries another consumer has held this long unacknowledged are taken over. */
export const CLAIM_IDLE_MS = 5_000;
const BACKOFF_MIN_MS = 500;
const STOP_WAIT_MS = 2_000;
const BACKOFF_MAX_MS = 30_000;
/** A lag log line at most this often per peer, while there is lag. */
const LAG_LOG_INTERVAL_MS = 30_000;
const ACTION_RESULT_TYPE = 'build.bazel.remote.execution.v2.ActionResult';
const TREE_TYPE = 'build.bazel.remote.execution.v2.Tree';

/** Answers that mean the peer will never take this entry, unlike a peer that is down. */
const REFUSALS: ReadonlySet<string> = new Set(['invalid_argument', 'failed_precondition']);

type StreamEntry = [id: string, fields: string[] | null];

export interface ReplicatorOptions {
  /** A connection of its own: the consumer blocks on it while waiting for entries. */
  readonly redis: Redis;
  /** The shared connection, for the lag queries of metrics scrapes (never blocked). */
  readonly admin: Redis;
  readonly logKey: string;
  readonly peer: PeerClient;
  readonly cas: Cas;
  /** This region's own action cache (not the read-through one). */
  readonly actions: ActionCacheStore;
  readonly log: Logger;
}

export class Replicator {
  readonly #options: ReplicatorOptions;
  readonly #group: string;
  readonly #consumer = `${hostname()}-${process.pid}`;
  readonly #log: Logger;
  #stopped = false;
  #running: Promise<void> | undefined;
  #lastLagLog = 0;
  pushed = 0;

  constructor(options: ReplicatorOptions) {
    this.#options = options;
    this.#group = `peer:${options.peer.name}`;
    this.#log = options.log.child({ peer: options.peer.name, consumer: this.#consumer });
  }

  get group(): string {
    return this.#group;
  }

  start(): void {
    this.#running = this.#run().catch((error: unknown) => {
      this.#log.error({ err: error }, 'replicator stopped unexpectedly');
    });
  }

  /**
   * Stops taking entries. A push in progress gets STOP_WAIT_MS to finish; what it has not
   * acknowledged by then stays pending and another replica (or the next start) pushes it again.
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    // Ends a blocking read at once; the loop sees #stopped and returns.
    this.#options.redis.disconnect();
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, STOP_WAIT_MS);
    });
    await Promise.race([this.#running, waited]);
    clearTimeout(timer);
  }

  /**
   * Entries of the log this peer has not confirmed yet (never delivered, or pending), and the age
   * of the oldest of them, from the millisecond time in its stream id.
   */
  async lag(): Promise<{ lag: number; pending: number; oldestAgeMs: number } | undefined> {
    const { admin, logKey } = this.#options;
    const groups = (await admin.call('XINFO', 'GROUPS', logKey)) as unknown[][] | null;
    for (const group of groups ?? []) {
      const info = new Map<string, unknown>();
      for (let i = 0; i + 1 < group.length; i += 2) info.set(String(group[i]), group[i + 1]);
      if (info.get('name') !== this.#group) continue;
      const lag = Number(info.get('lag') ?? 0);
      const pending = Number(info.get('pending') ?? 0);
      const oldest: string[] = [];
      if (pending > 0) {
        const [, first] = (await admin.xpending(logKey, this.#group)) as [number, string | null];
        if (first) oldest.push(first);
      } else if (lag > 0) {
        const lastDelivered = String(info.get('last-delivered-id') ?? '0-0');
        const next = await admin.xrange(logKey, `(${lastDelivered}`, '+', 'COUNT', 1);
        if (next[0]) oldest.push(next[0][0]);
      }
      const oldestAgeMs =
        oldest[0] === undefined ? 0 : Math.max(0, Date.now() - Number(oldest[0].split('-')[0]));
      return { lag, pending, oldestAgeMs };
    }
    return undefined;
  }

  async #run(): Promise<void> {
    let backoffMs = 0;
    while (!this.#stopped) {
      try {
        await this.#ensureGroup();
        const batch = await this.#next();
        if (batch.length > 0) {
          await this.#push(batch);
          await this.#options.redis.xack(
            this.#options.logKey,
            this.#group,
            ...batch.map(([id]) => id),
          );
          this.pushed += batch.length;
        }
        backoffMs = 0;
        await this.#maybeLogLag();
      } catch (error) {
        if (this.#stopped) return;
        backoffMs = Math.min(Math.max(BACKOFF_MIN_MS, backoffMs * 2), BACKOFF_MAX_MS);
        this.#log.warn(
          { err: error, retryInMs: backoffMs },
          'replication to a peer region failed; retrying the same entries',
        );
        await new Promise((resolve) => setTimeout(resolve, backoffMs));
      }
    }
  }

  #groupReady = false;
  async #ensureGroup(): Promise<void> {
    if (this.#groupReady) return;
    try {
      // From the start of the log: entries appended before the group existed are pushed too.
      await this.#options.redis.xgroup(
        'CREATE',
        this.#options.logKey,
        this.#group,
        '0',
        'MKSTREAM',
      );
    } catch (error) {
      if (!String((error as Error).message).startsWith('BUSYGROUP')) throw error;
    }
    this.#groupReady = true;
  }

  /** This consumer's own pending entries first, then stale ones of others, then new ones. */
  async #next(): Promise<StreamEntry[]> {
    const { redis, logKey } = this.#options;
    const own = await this.#read('0');
    if (own.length > 0) return own;
    const claimed = (await redis.xautoclaim(
      logKey,
      this.#group,
      this.#consumer,
      CLAIM_IDLE_MS,
      '0-0',
      'COUNT',
      BATCH_ENTRIES,
    )) as [string, StreamEntry[], string[]];
    if (claimed[1].length > 0) {
      this.#log.info({ entries: claimed[1].length }, 'took over entries another replica left');
      return claimed[1];
    }
    return this.#read('>');
  }

  async #read(from: '0' | '>'): Promise<StreamEntry[]> {
    const { redis, logKey } = this.#options;
    const block = from === '>' ? ['BLOCK', BLOCK_MS] : [];
    const reply = (await redis.xreadgroup(
      'GROUP',
      this.#group,
      this.#consumer,
      'COUNT',
      BATCH_ENTRIES,
      ...(block as ['BLOCK', number]),
      'STREAMS',
      logKey,
      from,
    )) as [string, StreamEntry[]][] | null;
    return reply?.[0]?.[1] ?? [];
  }

  /** Blobs first (action results need their outputs at the peer), then action results. */
  async #push(batch: readonly StreamEntry[]): Promise<void> {
    const entries = batch.flatMap(([, fields]) => {
      // A trimmed or unknown entry has nothing to push; acknowledging it is right.
      const entry = fields === null ? undefined : parseLogEntry(fields);
      return entry === undefined ? [] : [entry];
    });
    const blobs = entries.filter((e): e is LogEntry & { kind: 'blob' } => e.kind === 'blob');
    await this.#pushBlobs(blobs.map((entry) => entry.digest));
    for (const entry of entries) {
      if (entry.kind !== 'ac') continue;
      try {
        await this.#pushActionResult(entry.instance, entry.digest);
      } catch (error) {
        // A result the peer refuses (an output it cannot find or verify) would be refused on every
        // retry and hold up the log behind it; it is dropped, and the peer reads it through later.
        if (!(error instanceof CasError) || !REFUSALS.has(error.code)) throw error;
        this.#log.warn(
          { err: error, action: formatDigest(entry.digest) },
          'a peer region refused a replicated action result; skipping it',
        );
      }
    }
  }

  async #pushBlobs(digests: readonly Digest[]): Promise<void> {
    const unique = [...new Map(digests.map((d) => [digestKey(d), d])).values()];
    if (unique.length === 0) return;
    const { peer } = this.#options;
    const present = await peer.lookup(unique);
    for (const digest of unique) {
      if (present.has(digestKey(digest))) continue;
      const source = await this.#localBytes(digest);
      if (source === undefined) continue;
      await peer.write(digest, source);
      this.#log.debug({ digest: formatDigest(digest) }, 'pushed a blob to a peer region');
    }
  }

  async #pushActionResult(instance: string, action: Digest): Promise<void> {
    const encoded = await this.#options.actions.getActionResult(instance, action);
    if (encoded === undefined) return;
    const result = decodeMessage<ActionResult>(ACTION_RESULT_TYPE, encoded);
    await this.#pushBlobs(await this.#references(result, action));
    await this.#options.peer.updateActionResult(instance, action, result);
    this.#log.debug({ action: formatDigest(action) }, 'pushed an action result to a peer region');
  }

  /** Every blob the result references, the files inside its output trees included. */
  async #references(result: ActionResult, action: Digest): Promise<Digest[]> {
    const digests = directReferences(result, action.fn);
    for (const dir of result.outputDirectories) {
      const treeDigest = fromWireDigest(dir.treeDigest, action.fn);
      const bytes = await this.#localBytes(treeDigest);
      if (bytes === undefined) continue;
      const parts: Uint8Array[] = [];
      for await (const part of bytes) parts.push(part);
      const tree = decodeMessage<Tree>(TREE_TYPE, Buffer.concat(parts));
      for (const directory of [tree.root, ...tree.children]) {
        for (const file of directory?.files ?? []) {
          digests.push(fromWireDigest(file.digest, action.fn));
        }
      }
    }
    return digests;
  }

  /** The committed bytes here, or undefined when the blob is no longer committed here. */
  async #localBytes(digest: Digest): Promise<AsyncIterable<Uint8Array> | undefined> {
    try {
      const source = await this.#options.cas.store.read(digest, 0, digest.size);
      return (async function* () {
        yield* source;
      })();
    } catch (error) {
      if (error instanceof CasError && error.code === 'not_found') return undefined;
      throw error;
    }
  }

  async #maybeLogLag(): Promise<void> {
    const now = Date.now();
    if (now - this.#lastLagLog < LAG_LOG_INTERVAL_MS) return;
    this.#lastLagLog = now;
    const lag = await this.lag();
    if (lag !== undefined && lag.lag + lag.pending > 0) {
      this.#log.info(lag, 'replication lag');
    }
  }
}

/**
 * `tessera_replication_lag_entries{peer}`: entries not yet confirmed by each peer;
 * `tessera_replication_oldest_entry_age_seconds{peer}`: how long the oldest of them has waited.
 * Both are read from Redis at scrape time, so every replica of the region reports the same values.
 */
export function registerReplicationMetrics(
  metrics: Metrics,
  replicators: readonly Replicator[],
  peerOf: (replicator: Replicator) => string,
): void {
  metrics.gauge({
    name: 'tessera_replication_lag_entries',
    help: 'Replication log entries a peer region has not confirmed yet (undelivered + pending)',
    labelNames: ['peer'],
    async collect() {
      for (const replicator of replicators) {
        const lag = await replicator.lag().catch(() => undefined);
        if (lag !== undefined) this.set({ peer: peerOf(replicator) }, lag.lag + lag.pending);
      }
    },
  });
  metrics.gauge({
    name: 'tessera_replication_oldest_entry_age_seconds',
    help: 'Age of the oldest replication log entry a peer region has not confirmed (0 if none)',
    labelNames: ['peer'],
    async collect() {
      for (const replicator of replicators) {
        const lag = await replicator.lag().catch(() => undefined);
        if (lag !== undefined) this.set({ peer: peerOf(replicator) }, lag.oldestAgeMs / 1000);
      }
    },
  });
}
