// The collector and repair tools in this process, on the bucket prefix and Redis prefix of a rig,
// with a gate that stops the collector at a chosen step so a test can act in between.
import { RedisCommitIndex } from '../../src/commit-index/redis-commit-index.ts';
import {
  Collector,
  type CollectorPause,
  type CollectorSettings,
  type CollectorStep,
} from '../../src/gc/collector.ts';
import type { MaintenanceMetrics } from '../../src/gc/gc-metrics.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { S3ObjectStore } from '../../src/storage/s3-object-store.ts';
import type { Digest } from './client.ts';
import type { Rig } from './rig.ts';
import type { S3Settings } from './services/index.ts';

export interface Maintenance {
  readonly index: RedisCommitIndex;
  readonly objects: S3ObjectStore;
  collector(
    settings?: Partial<CollectorSettings>,
    pause?: CollectorPause,
    metrics?: MaintenanceMetrics,
  ): Collector;
  /** `{fn}:{hash}` of a SHA-256 test digest. */
  member(digest: Digest): string;
  /** Makes a blob look last touched `ageMs` ago. */
  age(digest: Digest, ageMs: number): Promise<void>;
  close(): Promise<void>;
}

export const TEST_LEASE_MS = 60_000;

export async function openMaintenance(
  rig: Rig,
  s3: S3Settings,
  redisUrl: string,
): Promise<Maintenance> {
  const index = new RedisCommitIndex({
    url: redisUrl,
    prefix: `tessera-test:${rig.prefix}`,
    leaseSeconds: 0,
  });
  await index.connect(5_000);
  const objects = new S3ObjectStore({
    endpoint: s3.endpoint,
    bucket: s3.bucket,
    region: s3.region,
    forcePathStyle: s3.forcePathStyle,
    prefix: rig.prefix,
    multipartThresholdBytes: 16 * 1024 * 1024,
    partSizeBytes: 8 * 1024 * 1024,
    uploadConcurrency: 2,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  });
  const member = (digest: Digest) => `sha256:${digest.hash}`;
  return {
    index,
    objects,
    member,
    collector: (settings = {}, pause, metrics) =>
      new Collector(
        index,
        objects,
        {
          leaseMs: TEST_LEASE_MS,
          budgetBytes: 0,
          minAgeMs: 0,
          orphanGraceMs: undefined,
          tombstoneMs: 5_000,
          lockMs: 10_000,
          dryRun: false,
          ...settings,
        },
        silentLogger(),
        { pause, metrics },
      ),
    async age(digest, ageMs) {
      await index.redis.zadd(index.leaseKey, 'XX', Date.now() - ageMs, member(digest));
    },
    async close() {
      await index.close();
      objects.close();
    },
  };
}

export interface Gate {
  readonly pause: CollectorPause;
  /** Resolves when the collector has reached the step for the blob and waits there. */
  readonly reached: Promise<void>;
  /** Lets the collector go on; or makes it fail there, as a crash would stop it. */
  release(failure?: Error): void;
}

/** Stops the collector at `step` of `member`. */
export function gateAt(step: CollectorStep, member: string): Gate {
  let arrive: () => void = () => undefined;
  let go: (failure?: Error) => void = () => undefined;
  const reached = new Promise<void>((resolve) => {
    arrive = resolve;
  });
  const released = new Promise<Error | undefined>((resolve) => {
    go = resolve;
  });
  return {
    reached,
    release: (failure) => go(failure),
    pause: async (at, which) => {
      if (at !== step || which !== member) return;
      arrive();
      const failure = await released;
      if (failure) throw failure;
    },
  };
}
