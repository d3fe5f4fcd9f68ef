// Asynchronous replication to peer regions, assembled: the log this region appends to on each
// commit and action-result store, and one replicator per peer draining it (replicator.ts). Blob
// commits are logged by the commit index's own commit script (`commitJournal`), so a commit and
// its entry are written together; action results are logged right after they are stored. Blobs
// and results that arrived from a peer's own replicator are not logged again: replication is one
// hop, so every region must list every other as a peer (a full mesh) to receive everything.
import type { Redis } from 'ioredis';
import type { Cas } from '../cas/cas.ts';
import type { ActionCacheStore } from '../cas/store.ts';
import type { CommitJournal } from '../commit-index/redis-commit-index.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import { isPeerCall } from './peer-call.ts';
import type { PeerClient } from './peer-client.ts';
import { type LogEntry, MAX_LOG_ENTRIES, ReplicationLog } from './replication-log.ts';
import { Replicator, registerReplicationMetrics } from './replicator.ts';

export class Replication {
  readonly #log: ReplicationLog;
  readonly #redis: Redis;
  readonly #logger: Logger;
  #replicators: Replicator[] = [];

  constructor(redis: Redis, prefix: string, logger: Logger) {
    this.#redis = redis;
    this.#logger = logger;
    this.#log = new ReplicationLog(redis, prefix, logger);
  }

  /** Where the commit index logs blob commits: this log, except for blobs a peer pushed. */
  get commitJournal(): CommitJournal {
    return { key: this.#log.key, maxEntries: MAX_LOG_ENTRIES, records: () => !isPeerCall() };
  }

  /** This region's action cache, logging every result stored (except those a peer pushed). */
  recording(actions: ActionCacheStore): ActionCacheStore {
    return {
      getActionResult: (instance, action) => actions.getActionResult(instance, action),
      putActionResult: async (instance, action, encoded) => {
        await actions.putActionResult(instance, action, encoded);
        this.#record({ kind: 'ac', digest: action, instance });
      },
    };
  }

  #record(entry: LogEntry): void {
    if (isPeerCall()) return;
    // The append never throws (failures are logged); not waiting keeps it off the reply's path.
    void this.#log.append(entry);
  }

  /** Starts one replicator per peer, each on a Redis connection of its own. */
  start(peers: readonly PeerClient[], cas: Cas, actions: ActionCacheStore, metrics: Metrics): void {
    this.#replicators = peers.map(
      (peer) =>
        new Replicator({
          redis: this.#redis.duplicate(),
          admin: this.#redis,
          logKey: this.#log.key,
          peer,
          cas,
          actions,
          log: this.#logger,
        }),
    );
    registerReplicationMetrics(metrics, this.#replicators, (replicator) =>
      replicator.group.slice('peer:'.length),
    );
    for (const replicator of this.#replicators) replicator.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.#replicators.map((replicator) => replicator.stop()));
  }
}
