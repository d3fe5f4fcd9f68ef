// Crash-point testing: real uploads against a real replica that is SIGKILLed at a chosen point of
// the write path (or at a random moment), then the invariants Tessera promises are checked from a
// second replica and against the bucket and Redis themselves:
//   1. every upload that was acknowledged is readable in full, with the right digest, everywhere;
//   2. whatever is reported present is whole and right (nothing partial or unverified is served);
//   3. every commit entry points at an object of exactly the committed size;
//   4. a restarted replica removes the staging files its dead predecessor left;
//   5. the multipart uploads the dead replica left are aborted by the janitor in the end.

import { randomBytes, randomInt } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HeadObjectCommand, ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { Redis } from 'ioredis';
import { WRITE_PATH_CRASH_POINTS } from '../../src/observability/crash-points.ts';
import { blobName, connect, type Digest, digestOf, uploadName } from '../support/client.ts';
import {
  createSharedStore,
  type Replica,
  removeSharedStore,
  type SharedStore,
  startReplica,
} from '../support/replicas.ts';
import { createTestS3Client } from '../support/services/index.ts';

const MIB = 1024 * 1024;
const RANDOM = 'random-moment';
type Point = (typeof WRITE_PATH_CRASH_POINTS)[number] | typeof RANDOM;

export interface TortureOptions {
  readonly trials: number;
  readonly log?: (line: string) => void;
}

export interface TortureReport {
  readonly trials: number;
  /** Trials in which the replica died, by where. */
  readonly crashes: Record<string, number>;
  readonly violations: readonly string[];
  readonly acknowledged: number;
  readonly checkedBlobs: number;
}

/** Settings every replica of the run gets: small parts so large uploads stream several. */
const REPLICA_ENV = {
  TESSERA_S3_MULTIPART_THRESHOLD_BYTES: String(6 * MIB),
  TESSERA_S3_PART_SIZE_BYTES: String(5 * MIB),
  TESSERA_S3_UPLOAD_CONCURRENCY: '2',
  TESSERA_UPLOAD_IDLE_TIMEOUT_SECONDS: '4',
  TESSERA_JANITOR_INTERVAL_SECONDS: '1',
  TESSERA_ABANDONED_UPLOAD_GRACE_SECONDS: '0',
  TESSERA_LOG_LEVEL: 'info',
};

export async function runTorture(options: TortureOptions): Promise<TortureReport> {
  const log = options.log ?? (() => undefined);
  const store = await createSharedStore('torture');
  const stagingA = await mkdtemp(join(tmpdir(), 'tessera-torture-a-'));
  const observer = await startReplica(store, { env: REPLICA_ENV });
  const crashes: Record<string, number> = {};
  const violations: string[] = [];
  let acknowledged = 0;
  let checkedBlobs = 0;
  try {
    const points: Point[] = [...WRITE_PATH_CRASH_POINTS, RANDOM];
    for (let trial = 0; trial < options.trials; trial++) {
      const point = points[trial % points.length] as Point;
      const outcome = await runTrial(store, stagingA, observer, point);
      acknowledged += outcome.acknowledged;
      checkedBlobs += outcome.checked;
      if (outcome.crashed) crashes[point] = (crashes[point] ?? 0) + 1;
      for (const v of outcome.violations) violations.push(`trial ${trial} (${point}): ${v}`);
      log(
        `trial ${trial}: ${point} ${outcome.crashed ? 'crashed' : 'did not crash'}, ` +
          `${outcome.acknowledged} acknowledged, ${outcome.violations.length} violations`,
      );
    }
    violations.push(...(await checkCommitEntries(store)));
    const left = await waitForNoMultipartUploads(store);
    if (left > 0) violations.push(`${left} multipart uploads were never aborted`);
  } finally {
    await observer.stop();
    await rm(stagingA, { recursive: true, force: true });
    await removeSharedStore(store);
  }
  return { trials: options.trials, crashes, violations, acknowledged, checkedBlobs };
}

interface TrialOutcome {
  crashed: boolean;
  acknowledged: number;
  checked: number;
  violations: string[];
}

async function runTrial(
  store: SharedStore,
  stagingDir: string,
  observer: Replica,
  point: Point,
): Promise<TrialOutcome> {
  const env: Record<string, string> = { ...REPLICA_ENV };
  if (point !== RANDOM) env.TESSERA_CRASH_POINTS = `${point}:${randomInt(1, 3)}`;
  const victim = await startReplica(store, { env, stagingDir });
  const client = connect(victim.address);
  const blobs = makeWorkload();
  const acked = new Set<string>();
  const uploads = blobs.large.map((data) =>
    client.write(uploadName(digestOf(data)), data, { chunkBytes: MIB }).then(() => {
      acked.add(digestOf(data).hash);
    }),
  );
  uploads.push(
    client
      .unary<{ responses: { status: { code: number } }[] }>(client.cas, 'BatchUpdateBlobs', {
        requests: blobs.small.map((data) => ({ digest: digestOf(data), data })),
      })
      .then((answer) => {
        answer.responses.forEach((r, i) => {
          if (r.status.code === 0) acked.add(digestOf(blobs.small[i] as Buffer).hash);
        });
      }),
  );
  const killing =
    point === RANDOM
      ? new Promise((resolve) => setTimeout(resolve, randomInt(0, 400))).then(() =>
          victim.server.kill(),
        )
      : Promise.resolve();
  await Promise.allSettled(uploads);
  await killing;
  client.close();
  const crashed = await diedBySigkill(victim);
  if (!crashed) await victim.stop();

  const violations = await checkBlobs(observer, [...blobs.large, ...blobs.small], acked);
  violations.push(...(await checkRestartSweeps(store, stagingDir)));
  return {
    crashed,
    acknowledged: acked.size,
    checked: blobs.large.length + blobs.small.length,
    violations,
  };
}

function makeWorkload() {
  return {
    large: [randomBytes(12 * MIB + randomInt(0, MIB)), randomBytes(3 * MIB + randomInt(0, MIB))],
    small: Array.from({ length: 20 }, () => randomBytes(randomInt(1, 64 * 1024))),
  };
}

/**
 * Whether the replica died by SIGKILL. Its clients' calls have all ended by now; if it crashed,
 * the exit event follows within moments, so wait a little for it before calling it alive.
 */
async function diedBySigkill(replica: Replica): Promise<boolean> {
  const { child } = replica.server;
  if (child.exitCode === null && child.signalCode === null) {
    const timeout = new Promise((resolve) => setTimeout(resolve, 1_000).unref());
    await Promise.race([once(child, 'exit'), timeout]);
  }
  return child.signalCode === 'SIGKILL';
}

/** Invariants 1 and 2, through another replica. */
async function checkBlobs(observer: Replica, blobs: Buffer[], acked: Set<string>) {
  const violations: string[] = [];
  const client = connect(observer.address);
  try {
    const digests = blobs.map(digestOf);
    const { missingBlobDigests } = await client.unary<{ missingBlobDigests: Digest[] }>(
      client.cas,
      'FindMissingBlobs',
      { blobDigests: digests },
    );
    const missing = new Set(missingBlobDigests.map((d) => d.hash));
    for (const [i, data] of blobs.entries()) {
      const digest = digests[i] as Digest;
      if (missing.has(digest.hash)) {
        if (acked.has(digest.hash)) violations.push(`acknowledged ${digest.hash} is missing`);
        continue;
      }
      try {
        const { data: back } = await client.read(blobName(digest));
        if (!back.equals(data))
          violations.push(`${digest.hash} reads back wrong (${back.length} B)`);
      } catch (error) {
        violations.push(`${digest.hash} is reported present but unreadable: ${error}`);
      }
    }
  } finally {
    client.close();
  }
  return violations;
}

/** Invariant 4: a replica started on the dead one's staging directory empties it. */
async function checkRestartSweeps(store: SharedStore, stagingDir: string) {
  const restarted = await startReplica(store, { env: REPLICA_ENV, stagingDir });
  try {
    const left = (await readdir(stagingDir)).filter((name) => name.endsWith('.spool'));
    return left.length > 0 ? [`${left.length} staging files survived a restart`] : [];
  } finally {
    await restarted.stop();
  }
}

/** Invariant 3: every commit entry under the store's prefix has its whole object. */
export async function checkCommitEntries(store: SharedStore): Promise<string[]> {
  const redis = new Redis(store.redisUrl);
  const s3 = createTestS3Client(store.s3);
  const violations: string[] = [];
  try {
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await redis.scan(
        cursor,
        'MATCH',
        `${store.redisPrefix}cas:*`,
        'COUNT',
        1000,
      );
      cursor = next;
      keys.push(...batch);
    } while (cursor !== '0');
    for (const key of keys) {
      const [fn, hash] = key.slice(`${store.redisPrefix}cas:`.length).split(':');
      const size = Number(await redis.get(key));
      try {
        const head = await s3.send(
          new HeadObjectCommand({
            Bucket: store.s3.bucket,
            Key: `${store.s3Prefix}cas/${fn}/${hash}`,
          }),
        );
        if (head.ContentLength !== size) {
          violations.push(`commit ${hash} says ${size} B, object has ${head.ContentLength}`);
        }
      } catch {
        violations.push(`commit ${hash} has no object`);
      }
    }
  } finally {
    redis.disconnect();
    s3.destroy();
  }
  return violations;
}

/** Invariant 5: polls until the janitors have aborted every multipart upload left behind. */
async function waitForNoMultipartUploads(store: SharedStore): Promise<number> {
  const s3 = createTestS3Client(store.s3);
  const deadline = Date.now() + 30_000;
  try {
    for (;;) {
      const page = await s3.send(
        new ListMultipartUploadsCommand({ Bucket: store.s3.bucket, Prefix: store.s3Prefix }),
      );
      const open = page.Uploads?.length ?? 0;
      if (open === 0 || Date.now() > deadline) return open;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  } finally {
    s3.destroy();
  }
}
