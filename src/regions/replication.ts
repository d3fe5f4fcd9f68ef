// Asynchronous replication to peer regions, assembled: the log this region appends to on each
// commit and action-result store, and one replicator per peer draining it (replicator.ts). The
// commit index writes the entries itself, in the same step as the commit or the stored result
// (`commitJournal`), so a write and its entry exist together. Blobs and results that arrived from
// a peer's own replicator are not logged again: replication is one hop, so every region must list
// every other as a peer (a full mesh) to receive everything.
import type { Redis } from 'ioredis';
import type { Cas } from '../cas/cas.ts';
import type { ActionCacheStore } from '../cas/store.ts';
import type { CommitJournal } from '../commit-index/redis-commit-index.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import { isPeerCall } from './peer-call.ts';
import type { PeerClient } from './peer-client.ts';
import { MAX_LOG_ENTRIES, replicationLogKey } from './replication-log.ts';
import { Replicator, registerReplicationMetrics } from './replicator.ts';

export class Replication {
  readonly #logKey: string;
  readonly #redis: Redis;
  readonly #logger: Logger;
  #replicators: Replicator[] = [];

  constructor(redis: Redis, prefix: string, logger: Logger) {
    this.#redis = redis;
    this.#logger = logger;
    this.#logKey = replicationLogKey(prefix);
  }

  /** Where the commit index logs commits and action results: here, except what a peer pushed. */
  get commitJournal(): CommitJournal {
    return { key: this.#logKey, maxEntries: MAX_LOG_ENTRIES, records: () => !isPeerCall() };
  }

  /** Starts one replicator per peer, each on a Redis connection of its own. */
  start(peers: readonly PeerClient[], cas: Cas, actions: ActionCacheStore, metrics: Metrics): void {
    this.#replicators = peers.map(
      (peer) =>
        new Replicator({
          redis: this.#redis.duplicate(),
          admin: this.#redis,
          logKey: this.#logKey,
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
