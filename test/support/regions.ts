// Two regions on one machine for the cross-region tests. Region A has its own Redis and its own
// RADOS Gateway (private, so tests can kill them); region B uses the run's shared Redis and RGW
// under fresh prefixes. Each region runs its own `tessera serve` replicas. B reaches A only through
// a TCP proxy, so a test can partition the link, slow it or corrupt what crosses it.
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import {
  createSharedStore,
  listStoredObjects,
  type Replica,
  removeSharedStore,
  type SharedStore,
  startReplica,
} from './replicas.ts';
import { type RedisServer, type RgwServer, startRedis, startRgw } from './services/index.ts';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.ts';

export interface PrivateRegion {
  readonly store: SharedStore;
  readonly redis: RedisServer;
  readonly rgw: RgwServer;
  close(): Promise<void>;
}

/** A region whose Redis and S3 belong to this test alone. */
export async function startPrivateRegion(label: string): Promise<PrivateRegion> {
  const [redis, rgw] = await Promise.all([startRedis(), startRgw()]);
  const { endpoint, bucket, region, accessKeyId, secretAccessKey, forcePathStyle } = rgw;
  const run = randomUUID();
  const store: SharedStore = {
    s3: { endpoint, bucket, region, accessKeyId, secretAccessKey, forcePathStyle },
    redisUrl: redis.url,
    s3Prefix: `${label}/${run}/`,
    redisPrefix: `${label}-${run}:`,
  };
  return {
    store,
    redis,
    rgw,
    async close() {
      await Promise.allSettled([redis.stop(), rgw.stop()]);
    },
  };
}

/** A region on the run's shared services, under prefixes of its own. */
export async function startSharedRegion(label: string): Promise<{
  store: SharedStore;
  close(): Promise<void>;
}> {
  const store = await createSharedStore(label);
  return { store, close: () => removeSharedStore(store) };
}

export interface RegionReplicaOptions {
  readonly region: string;
  readonly peers?: readonly { name: string; address: string }[];
  readonly peerTimeoutMs?: number;
  readonly replication?: 'on' | 'off';
  readonly env?: Record<string, string>;
}

export function startRegionReplica(
  store: SharedStore,
  options: RegionReplicaOptions,
): Promise<Replica> {
  const peers = (options.peers ?? []).map((peer) => ({
    name: peer.name,
    endpoint: `grpc://${peer.address}`,
  }));
  return startReplica(store, {
    env: {
      TESSERA_REGION: options.region,
      TESSERA_PEERS: JSON.stringify(peers),
      TESSERA_PEER_TIMEOUT_MS: String(options.peerTimeoutMs ?? 1000),
      TESSERA_REPLICATION: options.replication ?? 'off',
      ...options.env,
    },
  });
}

/** The proxy B uses to reach A. */
export function startLink(target: string): Promise<TcpProxy> {
  return startTcpProxy(target);
}

/** Whether the store's bucket holds the blob `hash` (any digest function). */
export async function bucketHolds(store: SharedStore, hash: string): Promise<boolean> {
  const objects = await listStoredObjects(store);
  return objects.some((object) => object.key.endsWith(`/${hash}`));
}

/** Whether the store's Redis holds a commit of `hash`. */
export async function redisCommits(store: SharedStore, hash: string): Promise<boolean> {
  const redis = new Redis(store.redisUrl, { maxRetriesPerRequest: 1, lazyConnect: true });
  try {
    await redis.connect();
    const keys = await redis.keys(`${store.redisPrefix}cas:*:${hash}`);
    return keys.length > 0;
  } finally {
    redis.disconnect();
  }
}
