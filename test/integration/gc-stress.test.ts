// A randomized race between clients and the collector, against real Redis and RGW: uploaders and
// readers on two replicas work on a small pool of blobs while collections run back to back with a
// lease of a few milliseconds and an orphan sweep that takes any object without an entry, so blobs
// are condemned, deleted and uploaded again under the collector's feet, and objects are swept
// while their upload is between its PutObject and its commit.
// Checked after every collection and at the end: every commit entry has an object of exactly its
// size; and every blob whose upload began after the last collection began is readable.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { status } from '@grpc/grpc-js';
import {
  blobName,
  codeOf,
  type Digest,
  digestOf,
  randomBlob,
  uploadName,
} from '../support/client.ts';
import { type Maintenance, openMaintenance } from '../support/maintenance.ts';
import { type Rig, startRig } from '../support/rig.ts';
import { getServices } from '../support/services/index.ts';

const DURATION_MS = 8_000;
const POOL = 24;
const UPLOADERS = 4;
const READERS = 2;
const SLOW_WRITERS = 2;
const LAST_COLLECTION_LEAD_MS = 1_500;

describe('garbage collection under concurrent uploads and reads', () => {
  let rig: Rig;
  let other: Rig;
  let gc: Maintenance;
  before(async () => {
    const services = await getServices();
    const env = { TESSERA_LOG_LEVEL: 'debug', TESSERA_GC_INTERVAL_SECONDS: '0' };
    rig = await startRig({ s3: services.s3, redisUrl: services.redisUrl, env });
    other = await startRig({
      s3: services.s3,
      redisUrl: services.redisUrl,
      env,
      prefix: rig.prefix,
    });
    gc = await openMaintenance(rig, services.s3, services.redisUrl);
  });
  after(async () => {
    await gc.close();
    await other.close();
    await rig.close();
  });

  it('never leaves a commit entry without its object, nor loses a blob acknowledged since', async (t) => {
    const pool = Array.from({ length: POOL }, (_, i) => randomBlob(500 + 97 * i));
    const digests = pool.map(digestOf);
    const stats = {
      uploads: 0,
      reads: 0,
      readsMissingAfterPresent: 0,
      collections: 0,
      deleted: 0,
      keptTouched: 0,
      keptWriting: 0,
      leftForLater: 0,
      refusedCommits: 0,
      violations: [] as string[],
    };
    const startedAt = new Map<number, number>();
    let lastCollectionStart = 0;
    // Every object counts as an orphan once it has no entry (the index began long ago).
    await rig.redis.set(gc.index.bornKey, Date.now() - 600_000);
    const deadline = Date.now() + DURATION_MS;
    const pick = () => Math.floor(Math.random() * POOL);

    const uploader = async () => {
      while (Date.now() < deadline) {
        const i = pick();
        const client = Math.random() < 0.5 ? rig.client : other.client;
        const began = Date.now();
        const data = pool[i] as Buffer;
        const digest = digests[i] as Digest;
        if (Math.random() < 0.5) {
          await client.write(uploadName(digest), data);
        } else {
          await client.unary(client.cas, 'BatchUpdateBlobs', {
            requests: [{ digest, data }],
          });
        }
        startedAt.set(i, Math.max(startedAt.get(i) ?? 0, began));
        stats.uploads += 1;
      }
    };
    // A replica slow between its PutObject and its commit: the write protocol of
    // S3RedisBackend.commit, with a pause in the window where a collector might delete the object.
    const slowWriter = async () => {
      while (Date.now() < deadline) {
        const i = pick();
        const began = Date.now();
        const digest = { fn: 'SHA256' as const, hash: (digests[i] as Digest).hash, size: 0 };
        const data = pool[i] as Buffer;
        const sized = { ...digest, size: data.length };
        for (;;) {
          const token = await gc.index.beginPut(sized);
          await rig.s3.send(
            new PutObjectCommand({
              Bucket: rig.bucket,
              Key: rig.objectKey(digests[i] as Digest),
              Body: data,
            }),
          );
          await sleep(Math.random() * 30);
          if (await gc.index.commitPut(sized, token)) break;
          stats.refusedCommits += 1;
        }
        startedAt.set(i, Math.max(startedAt.get(i) ?? 0, began));
        stats.uploads += 1;
      }
    };
    const reader = async () => {
      while (Date.now() < deadline) {
        const wanted = [pick(), pick(), pick()].map((i) => digests[i] as Digest);
        const answer = await rig.client.unary<{ missingBlobDigests: Digest[] }>(
          rig.client.cas,
          'FindMissingBlobs',
          { blobDigests: wanted },
        );
        const missing = new Set(answer.missingBlobDigests.map((d) => d.hash));
        for (const digest of wanted.filter((d) => !missing.has(d.hash))) {
          stats.reads += 1;
          try {
            const { data } = await rig.client.read(blobName(digest));
            if (digestOf(data).hash !== digest.hash) {
              stats.violations.push(`read of ${digest.hash} returned other bytes`);
            }
          } catch (error) {
            // Collected between the lookup and the read: the client would upload it again.
            if (codeOf(error) !== status.NOT_FOUND) throw error;
            stats.readsMissingAfterPresent += 1;
          }
        }
      }
    };
    // Collections stop a little before the clients, so uploads overlap and follow the last one.
    const collector = async () => {
      while (Date.now() < deadline - LAST_COLLECTION_LEAD_MS) {
        lastCollectionStart = Date.now();
        const report = await gc
          .collector({ leaseMs: 15, tombstoneMs: 4_000, orphanGraceMs: -60_000 })
          .collect();
        stats.collections += 1;
        stats.deleted += report.deleted.length;
        stats.keptTouched += report.keptBecause.touched;
        stats.keptWriting += report.keptBecause.writing;
        stats.leftForLater += report.leftForLater;
        await checkEntries(stats.violations);
      }
    };
    const checkEntries = async (violations: string[]) => {
      for (const digest of digests) {
        const entry = await rig.redis.get(rig.commitKey(digest));
        if (entry === null) continue;
        const size = await objectSize(digest);
        if (size !== Number(entry)) {
          violations.push(`entry ${digest.hash} says ${entry} bytes, object has ${size}`);
        }
      }
    };
    const objectSize = async (digest: Digest) => {
      try {
        const head = await rig.s3.send(
          new HeadObjectCommand({ Bucket: rig.bucket, Key: rig.objectKey(digest) }),
        );
        return head.ContentLength;
      } catch {
        return undefined;
      }
    };

    await Promise.all([
      ...Array.from({ length: UPLOADERS }, uploader),
      ...Array.from({ length: READERS }, reader),
      ...Array.from({ length: SLOW_WRITERS }, slowWriter),
      collector(),
    ]);

    await checkEntries(stats.violations);
    let checkedSinceLast = 0;
    for (const [i, began] of startedAt) {
      if (began < lastCollectionStart) continue;
      checkedSinceLast += 1;
      const digest = digests[i] as Digest;
      try {
        const { data } = await rig.client.read(blobName(digest));
        if (!data.equals(pool[i] as Buffer)) stats.violations.push(`${digest.hash}: other bytes`);
      } catch (error) {
        stats.violations.push(`${digest.hash} acknowledged after the last collection: ${error}`);
      }
    }
    const waits = [...rig.logs, ...other.logs].filter((l) =>
      String(l.msg).includes('waiting for the collector to finish'),
    ).length;
    const logs = [...rig.logs, ...other.logs];
    const rewrites = logs.filter((l) => String(l.msg).includes('writing it again')).length;
    t.diagnostic(
      `gc stress: ${stats.collections} collections, ${stats.uploads} uploads, ` +
        `${stats.reads} reads, ${stats.deleted} deleted, kept because touched meanwhile ` +
        `${stats.keptTouched}, kept because being written ${stats.keptWriting}, ${waits} writers ` +
        `waited for a tombstone, ${rewrites} rewrites, ${stats.readsMissingAfterPresent} reads NOT_FOUND after FindMissing said ` +
        `present, ${stats.refusedCommits} commits refused after a sweep (object written again), ` +
        `${stats.leftForLater} left for later, ${checkedSinceLast} blobs checked ` +
        `readable, ${stats.violations.length} violations`,
    );
    assert.deepEqual(stats.violations, []);
    assert.ok(stats.deleted > 0 && stats.collections > 1, 'the collector did work');
    assert.ok(checkedSinceLast > 0, 'some uploads began after the last collection began');
  });
});
