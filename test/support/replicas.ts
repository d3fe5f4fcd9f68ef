// Tessera in S3 + Redis mode for end-to-end tests, as a deployment runs it: any number of separate
// `tessera serve` processes, each with its own staging directory, sharing one bucket prefix and one
// Redis key prefix. A SharedStore is that pair of prefixes on the test services; replicas come and
// go while it stays, and removing it deletes every object and key the replicas left behind.
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { DeleteObjectsCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { Redis } from 'ioredis';

import { createTestS3Client, getServices, type S3Settings } from './services/index.ts';
import { startTessera, type TesseraProcess } from './tessera.ts';

/** DeleteObjects takes at most this many keys per request. */
const DELETE_BATCH_KEYS = 1000;
const SCAN_BATCH_KEYS = 1000;

export interface SharedStore {
  readonly s3: S3Settings;
  readonly redisUrl: string;
  /** TESSERA_S3_PREFIX of every replica: where their blobs live in s3.bucket. */
  readonly s3Prefix: string;
  /** TESSERA_REDIS_PREFIX of every replica. */
  readonly redisPrefix: string;
}

export interface StoredObject {
  readonly key: string;
  readonly size: number;
}

export interface Replica {
  readonly server: TesseraProcess;
  /** host:port, for --remote_cache. */
  readonly address: string;
  /**
   * SIGTERM, wait for the process and its output to end (server.logs is then complete), remove its
   * staging directory. Returns the exit code.
   */
  stop(): Promise<number | null>;
}

export interface ReplicaOptions {
  /** TESSERA_LOG_LEVEL; `debug` logs every call the replica answers. */
  logLevel?: string;
  /** More settings for this replica (multipart threshold, crash points, janitor timing…). */
  env?: Record<string, string>;
  /**
   * A staging directory to use and keep when the replica stops, so a later replica can be started
   * on it (as a restarted process would be). By default each replica has its own, removed at stop.
   */
  stagingDir?: string;
}

/** Fresh prefixes on the shared test services, so nothing another test stored is visible. */
export async function createSharedStore(label: string): Promise<SharedStore> {
  const { redisUrl, s3 } = await getServices();
  const run = randomUUID();
  return { s3, redisUrl, s3Prefix: `${label}/${run}/`, redisPrefix: `${label}-${run}:` };
}

export async function startReplica(
  store: SharedStore,
  options: ReplicaOptions = {},
): Promise<Replica> {
  const stagingDir = options.stagingDir ?? (await mkdtemp(join(tmpdir(), 'tessera-e2e-staging-')));
  const removeStaging = async () => {
    if (!options.stagingDir) await rm(stagingDir, { recursive: true, force: true });
  };
  let server: TesseraProcess;
  try {
    server = await startTessera({
      env: {
        TESSERA_REDIS_URL: store.redisUrl,
        TESSERA_REDIS_PREFIX: store.redisPrefix,
        TESSERA_S3_ENDPOINT: store.s3.endpoint,
        TESSERA_S3_BUCKET: store.s3.bucket,
        TESSERA_S3_REGION: store.s3.region,
        TESSERA_S3_FORCE_PATH_STYLE: String(store.s3.forcePathStyle),
        TESSERA_S3_PREFIX: store.s3Prefix,
        TESSERA_STAGING_DIR: stagingDir,
        TESSERA_LOG_LEVEL: options.logLevel,
        AWS_ACCESS_KEY_ID: store.s3.accessKeyId,
        AWS_SECRET_ACCESS_KEY: store.s3.secretAccessKey,
        ...options.env,
      },
    });
  } catch (error) {
    await removeStaging();
    throw error;
  }

  return {
    server,
    address: server.address,
    async stop() {
      try {
        return await server.stop();
      } finally {
        await removeStaging();
      }
    },
  };
}

/** Every object under the store's prefix, in key order. */
export async function listStoredObjects(store: SharedStore): Promise<StoredObject[]> {
  return withS3(store.s3, (client) => listObjects(client, store.s3.bucket, store.s3Prefix));
}

/** Every Redis key under the store's prefix, with the prefix cut off, sorted. */
export async function listRedisKeys(store: SharedStore): Promise<string[]> {
  const keys = await withRedis(store.redisUrl, (redis) => scanKeys(redis, store.redisPrefix));
  return keys.map((key) => key.slice(store.redisPrefix.length)).sort();
}

/**
 * Deletes every object and Redis key the store's replicas created. The shared test bucket may live
 * in memory (RGW's memstore), so a test that stored large blobs gives the space back.
 */
export async function removeSharedStore(store: SharedStore): Promise<void> {
  await withS3(store.s3, async (client) => {
    const objects = await listObjects(client, store.s3.bucket, store.s3Prefix);
    const keys = objects.map(({ key }) => ({ Key: key }));
    for (let start = 0; start < keys.length; start += DELETE_BATCH_KEYS) {
      const Objects = keys.slice(start, start + DELETE_BATCH_KEYS);
      await client.send(new DeleteObjectsCommand({ Bucket: store.s3.bucket, Delete: { Objects } }));
    }
  });
  await withRedis(store.redisUrl, async (redis) => {
    const keys = await scanKeys(redis, store.redisPrefix);
    if (keys.length > 0) await redis.del(...keys);
  });
}

/** Log entries at level error or above. */
export function errorEntries(logs: readonly Record<string, unknown>[]): Record<string, unknown>[] {
  return logs.filter((entry) => isErrorLevel(entry.level));
}

function isErrorLevel(level: unknown): boolean {
  if (typeof level === 'number') return level >= 50;
  return level === 'error' || level === 'fatal';
}

async function withS3<T>(settings: S3Settings, use: (client: S3Client) => Promise<T>): Promise<T> {
  const client = createTestS3Client(settings);
  try {
    return await use(client);
  } finally {
    client.destroy();
  }
}

async function listObjects(
  client: S3Client,
  bucket: string,
  prefix: string,
): Promise<StoredObject[]> {
  const objects: StoredObject[] = [];
  let token: string | undefined;
  do {
    const page = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
    );
    for (const object of page.Contents ?? []) {
      objects.push({ key: object.Key ?? '', size: object.Size ?? 0 });
    }
    token = page.NextContinuationToken;
  } while (token !== undefined);
  return objects;
}

async function withRedis<T>(url: string, use: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: true });
  try {
    await redis.connect();
    return await use(redis);
  } finally {
    redis.disconnect();
  }
}

/** SCAN, not KEYS, so a big shared Redis is never blocked; the prefix is matched literally. */
async function scanKeys(redis: Redis, prefix: string): Promise<string[]> {
  const pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
  const keys = new Set<string>();
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', SCAN_BATCH_KEYS);
    for (const key of batch) keys.add(key);
    cursor = next;
  } while (cursor !== '0');
  return [...keys];
}
