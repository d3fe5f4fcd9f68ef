// `tessera reindex` after Redis lost everything: a private redis-server is wiped with FLUSHALL
// under a running server, then reindex rebuilds the commit index from the bucket. Objects whose
// bytes were damaged before the wipe (same length, other bytes; cut short) must not come back:
// they stay missing until uploaded again. The reindex's duration is reported, not asserted.
//
// TESSERA_TEST_REINDEX_BLOBS sets how many good blobs are stored first (default 150).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { status } from '@grpc/grpc-js';
import { runAdmin } from '../support/admin-cli.ts';
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
import {
  getServices,
  type RedisServer,
  startRedis,
  type TestServices,
} from '../support/services/index.ts';

const GOOD_BLOBS = Number(process.env.TESSERA_TEST_REINDEX_BLOBS ?? '150');
const UPLOADS_AT_ONCE = 8;

describe('reindex after FLUSHALL', () => {
  let redis: RedisServer;
  let services: TestServices;
  let rig: Rig;
  let gc: Maintenance;
  before(async () => {
    const shared = await getServices();
    redis = await startRedis();
    services = { ...shared, redisUrl: redis.url };
    rig = await startRig({
      s3: services.s3,
      redisUrl: redis.url,
      env: { TESSERA_GC_INTERVAL_SECONDS: '0' },
    });
    gc = await openMaintenance(rig, services.s3, redis.url);
  });
  after(async () => {
    await gc.close();
    await rig.close();
    await redis.stop();
  });

  const findMissing = async (digests: Digest[]) =>
    (
      await rig.client.unary<{ missingBlobDigests: Digest[] }>(rig.client.cas, 'FindMissingBlobs', {
        blobDigests: digests,
      })
    ).missingBlobDigests;
  const overwrite = (digest: Digest, body: Buffer) =>
    rig.s3.send(
      new PutObjectCommand({ Bucket: rig.bucket, Key: rig.objectKey(digest), Body: body }),
    );

  it('rebuilds every verified entry and commits no damaged object', async (t) => {
    // Sizes from 1 byte to ~64 KiB, plus one blob of several MiB.
    const blobs = Array.from({ length: GOOD_BLOBS }, (_, i) =>
      randomBlob(1 + ((i * 7919) % 65_536)),
    );
    blobs.push(randomBlob(5 * 1024 * 1024 + 17));
    for (let i = 0; i < blobs.length; i += UPLOADS_AT_ONCE) {
      await Promise.all(
        blobs
          .slice(i, i + UPLOADS_AT_ONCE)
          .map((data) => rig.client.write(uploadName(digestOf(data)), data)),
      );
    }
    const good = blobs.map((data) => ({ data, digest: digestOf(data) }));
    const flipped = { data: randomBlob(40_000) };
    const truncated = { data: randomBlob(40_000) };
    const damaged = [flipped, truncated].map((b) => ({ ...b, digest: digestOf(b.data) }));
    for (const blob of damaged) await rig.client.write(uploadName(blob.digest), blob.data);
    const [flippedDigest, truncatedDigest] = damaged.map((b) => b.digest) as [Digest, Digest];
    await overwrite(flippedDigest, randomBlob(40_000));
    await overwrite(truncatedDigest, truncated.data.subarray(0, 39_000));
    const all = [...good, ...damaged].map((b) => b.digest);
    assert.deepEqual(await findMissing(all), [], 'all committed before the wipe');

    await rig.redis.flushall();
    assert.equal(await rig.redis.dbsize(), 0);
    assert.equal((await findMissing(all)).length, all.length);

    const started = process.hrtime.bigint();
    const run = runAdmin(rig, services, ['reindex', '--json', '--repair-concurrency', '4']);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    assert.equal(run.status, 5, run.stderr);
    const report = JSON.parse(run.stdout) as {
      listed: number;
      committed: number;
      present: number;
      corrupt: { key: string }[];
    };
    const goodBytes = good.reduce((sum, b) => sum + b.data.length, 0);
    t.diagnostic(
      `reindex after FLUSHALL: ${report.listed} objects listed (${goodBytes} good bytes), ` +
        `${report.committed} committed, ${report.corrupt.length} corrupt, in ${seconds.toFixed(2)} s ` +
        '(the CLI process included)',
    );

    assert.equal(report.listed, good.length + damaged.length);
    assert.equal(report.committed, good.length);
    assert.deepEqual(
      report.corrupt.map((c) => c.key).sort(),
      [rig.objectKey(flippedDigest), rig.objectKey(truncatedDigest)].sort(),
    );
    assert.equal(Number(await rig.redis.get(gc.index.bytesKey)), goodBytes);
    assert.equal(await rig.redis.zcard(gc.index.leaseKey), good.length);
    for (const digest of [flippedDigest, truncatedDigest]) {
      assert.equal(await rig.redis.exists(rig.commitKey(digest)), 0);
    }

    assert.deepEqual(await findMissing(all), [flippedDigest, truncatedDigest]);
    for (const blob of good) {
      assert.ok((await rig.client.read(blobName(blob.digest))).data.equals(blob.data));
    }
    for (const digest of [flippedDigest, truncatedDigest]) {
      await assert.rejects(
        rig.client.read(blobName(digest)),
        (e) => codeOf(e) === status.NOT_FOUND,
      );
    }

    // Uploading a damaged blob again writes good bytes over the bad ones.
    await rig.client.write(uploadName(flippedDigest), flipped.data);
    assert.ok((await rig.client.read(blobName(flippedDigest))).data.equals(flipped.data));
  });
});
