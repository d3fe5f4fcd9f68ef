// What the collector chooses, against real Redis and RGW: expired leases, least recently used
// blobs over the budget, orphan objects (never under a Redis that lost its data), entries from
// before leases were tracked, and `tessera gc --dry-run` as an operator runs it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { blobName, type Digest, digestOf, randomBlob, uploadName } from '../support/client.ts';
import { type Maintenance, openMaintenance, TEST_LEASE_MS } from '../support/maintenance.ts';
import { type Rig, startRig } from '../support/rig.ts';
import { getServices, type TestServices } from '../support/services/index.ts';

const ENTRY = fileURLToPath(new URL('../../bin/tessera.js', import.meta.url));

describe('garbage collection policy', () => {
  let services: TestServices;
  let rig: Rig;
  let gc: Maintenance;
  before(async () => {
    services = await getServices();
  });
  const open = async () => {
    rig = await startRig({
      s3: services.s3,
      redisUrl: services.redisUrl,
      env: { TESSERA_GC_INTERVAL_SECONDS: '0' },
    });
    gc = await openMaintenance(rig, services.s3, services.redisUrl);
  };
  const close = async () => {
    await gc.close();
    await rig.close();
  };
  const upload = async (size: number) => {
    const data = randomBlob(size);
    const digest = digestOf(data);
    await rig.client.write(uploadName(digest), data);
    return digest;
  };
  const exists = async (digest: Digest) => {
    try {
      await rig.s3.send(new HeadObjectCommand({ Bucket: rig.bucket, Key: rig.objectKey(digest) }));
      return true;
    } catch {
      return false;
    }
  };
  const bytes = async () => Number(await rig.redis.get(gc.index.bytesKey));

  describe('under a size budget', () => {
    before(open);
    after(close);

    it('evicts the least recently used first, down to the budget, sparing recent blobs', async () => {
      const blobs = [];
      for (let i = 0; i < 5; i++) blobs.push(await upload(1000));
      assert.equal(await bytes(), 5000);
      // Touched 50, 40, 30, 20 and 10 minutes ago.
      for (const [i, digest] of blobs.entries()) await gc.age(digest, (50 - 10 * i) * 60_000);

      const report = await gc
        .collector({ leaseMs: 0, budgetBytes: 2500, minAgeMs: 15 * 60_000 })
        .collect();

      assert.deepEqual(
        report.deleted.map((d) => [d.member, d.reason]),
        blobs.slice(0, 3).map((d) => [gc.member(d), 'evicted']),
      );
      assert.equal(await bytes(), 2000);
      assert.deepEqual(await Promise.all(blobs.map(exists)), [false, false, false, true, true]);

      // Under a smaller budget the next goes, but not the one touched within the minimum age.
      const again = await gc
        .collector({ leaseMs: 0, budgetBytes: 500, minAgeMs: 15 * 60_000 })
        .collect();
      assert.deepEqual(
        again.deleted.map((d) => d.member),
        [gc.member(blobs[3] as Digest)],
      );
      assert.ok(await exists(blobs[4] as Digest));
      assert.equal(await bytes(), 1000);
    });

    it('orders eviction by real use, and a dry run names what the real run then evicts', async () => {
      const blobs = [];
      for (let i = 0; i < 4; i++) blobs.push(await upload(1000));
      // Touched 50, 40, 30 and 20 minutes ago; then a client reads the oldest.
      for (const [i, digest] of blobs.entries()) await gc.age(digest, (50 - 10 * i) * 60_000);
      const [readLately, ...rest] = blobs as [Digest, Digest, Digest, Digest];
      await rig.client.read(blobName(readLately));
      const settings = { leaseMs: 0, budgetBytes: (await bytes()) - 2000, minAgeMs: 0 };
      const expected = rest.slice(0, 2).map((d) => [gc.member(d), 'evicted']);

      const dry = await gc.collector({ ...settings, dryRun: true }).collect();
      assert.deepEqual(
        dry.deleted.map((d) => [d.member, d.reason]),
        expected,
      );
      assert.deepEqual(await Promise.all(blobs.map(exists)), [true, true, true, true]);
      assert.equal(await bytes(), settings.budgetBytes + 2000);

      const real = await gc.collector(settings).collect();
      assert.deepEqual(
        real.deleted.map((d) => [d.member, d.reason]),
        expected,
      );
      assert.deepEqual(await Promise.all(blobs.map(exists)), [true, false, false, true]);
      assert.equal(await bytes(), settings.budgetBytes);
    });
  });

  describe('orphans, old entries and dry runs', () => {
    before(open);
    after(close);

    const putOrphan = async () => {
      const data = randomBlob(700);
      const digest = digestOf(data);
      await rig.s3.send(
        new PutObjectCommand({ Bucket: rig.bucket, Key: rig.objectKey(digest), Body: data }),
      );
      return digest;
    };

    it('deletes objects without an entry, but none written before the index began', async () => {
      await upload(100);
      const orphan = await putOrphan();
      const committed = await upload(300);
      const sweep = { leaseMs: 0, orphanGraceMs: -60_000 };

      // The index began after these objects were written (as after Redis lost its data).
      await rig.redis.set(gc.index.bornKey, Date.now() + 60_000);
      assert.equal((await gc.collector(sweep).collect()).deleted.length, 0);
      assert.ok(await exists(orphan));

      await rig.redis.set(gc.index.bornKey, Date.now() - 600_000);
      const report = await gc.collector(sweep).collect();
      assert.deepEqual(
        report.deleted.map((d) => [d.member, d.reason]),
        [[gc.member(orphan), 'orphan']],
      );
      assert.ok(!(await exists(orphan)));
      assert.ok(await exists(committed));
    });

    it('spares an orphan whose object is being written', async () => {
      await rig.redis.set(gc.index.bornKey, Date.now() - 600_000);
      const orphan = await putOrphan();
      const token = await gc.index.beginPut({ fn: 'SHA256', hash: orphan.hash, size: 700 });
      const report = await gc.collector({ leaseMs: 0, orphanGraceMs: -60_000 }).collect();
      assert.equal(report.keptBecause.writing, 1);
      assert.ok(await exists(orphan));
      await gc.index.abandonPut({ fn: 'SHA256', hash: orphan.hash, size: 700 }, token);
    });

    it('adopts an entry written before leases were tracked at its next lookup', async () => {
      const data = randomBlob(900);
      const digest = digestOf(data);
      await rig.s3.send(
        new PutObjectCommand({ Bucket: rig.bucket, Key: rig.objectKey(digest), Body: data }),
      );
      await rig.redis.set(rig.commitKey(digest), '900', 'PX', 60_000);
      const before = await bytes();

      const answer = await rig.client.unary<{ missingBlobDigests: Digest[] }>(
        rig.client.cas,
        'FindMissingBlobs',
        { blobDigests: [digest] },
      );
      assert.deepEqual(answer.missingBlobDigests, []);
      assert.equal(await rig.redis.pttl(rig.commitKey(digest)), -1, 'no TTL any more');
      assert.ok((await rig.redis.zscore(gc.index.leaseKey, gc.member(digest))) !== null);
      assert.equal(await bytes(), before + 900);
    });

    it('tessera gc --dry-run lists what it would delete and deletes nothing', () => {
      const env = {
        ...process.env,
        TESSERA_S3_ENDPOINT: services.s3.endpoint,
        TESSERA_S3_BUCKET: services.s3.bucket,
        TESSERA_S3_REGION: services.s3.region,
        TESSERA_S3_FORCE_PATH_STYLE: String(services.s3.forcePathStyle),
        TESSERA_S3_PREFIX: rig.prefix,
        TESSERA_REDIS_URL: services.redisUrl,
        TESSERA_REDIS_PREFIX: gc.index.prefix,
        AWS_ACCESS_KEY_ID: services.s3.accessKeyId,
        AWS_SECRET_ACCESS_KEY: services.s3.secretAccessKey,
        TESSERA_CAS_LEASE_SECONDS: String(TEST_LEASE_MS / 1000),
        TESSERA_GC_ORPHAN_GRACE_SECONDS: '0',
      };
      return (async () => {
        const digest = await upload(1234);
        await gc.age(digest, 2 * TEST_LEASE_MS);
        const dry = spawnSync(process.execPath, [ENTRY, 'gc', '--dry-run', '--json'], {
          env,
          encoding: 'utf8',
          timeout: 30_000,
        });
        assert.equal(dry.status, 0, dry.stderr);
        const report = JSON.parse(dry.stdout) as { dryRun: boolean; deleted: unknown[] };
        assert.equal(report.dryRun, true);
        assert.deepEqual(report.deleted, [
          {
            member: gc.member(digest),
            reason: 'expired',
            bytes: 1234,
            touchedAt: report.deleted[0] && (report.deleted[0] as { touchedAt: number }).touchedAt,
          },
        ]);
        assert.ok(await exists(digest));
        assert.equal(await rig.redis.get(rig.commitKey(digest)), '1234');

        const real = spawnSync(process.execPath, [ENTRY, 'gc'], {
          env,
          encoding: 'utf8',
          timeout: 30_000,
        });
        assert.equal(real.status, 0, real.stderr);
        assert.match(real.stdout, new RegExp(`deleted ${gc.member(digest)} 1234 \\(expired\\)`));
        assert.match(real.stdout, /deleted 1 blobs, 1234 bytes/);
        assert.ok(!(await exists(digest)));
      })();
    });
  });
});
