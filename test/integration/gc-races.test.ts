// The garbage collector against real Redis and RGW, with the collector stopped at each step while
// clients act: a touch (FindMissingBlobs, GetActionResult, Read) between selection and condemn,
// lookups and reads during the delete window, a re-upload whose PutObject lands after the DELETE,
// a write in flight, a collector that dies after selecting, after condemning or after deleting,
// the scrubber condemning the same blob, a collector that stalls after condemning, a second
// collector (in-process and `tessera gc`, exit code 4), and one that lost its lock. After each, the invariant holds:
// every commit entry has an object of its size, and what a client was told is present is readable.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { status } from '@grpc/grpc-js';
import { CollectorBusyError, CollectorFencedError } from '../../src/gc/collector.ts';
import { createMaintenanceMetrics } from '../../src/gc/gc-metrics.ts';
import { createMetrics } from '../../src/observability/metrics.ts';
import { runAdmin } from '../support/admin-cli.ts';
import {
  blobName,
  codeOf,
  type Digest,
  digestOf,
  randomBlob,
  uploadName,
} from '../support/client.ts';
import {
  gateAt,
  type Maintenance,
  openMaintenance,
  TEST_LEASE_MS,
} from '../support/maintenance.ts';
import { type Rig, startRig } from '../support/rig.ts';
import { getServices, type TestServices } from '../support/services/index.ts';

const EXPIRED = 2 * TEST_LEASE_MS;

describe('garbage collection', () => {
  let services: TestServices;
  let rig: Rig;
  let gc: Maintenance;
  before(async () => {
    services = await getServices();
    rig = await startRig({
      s3: services.s3,
      redisUrl: services.redisUrl,
      env: { TESSERA_LOG_LEVEL: 'debug', TESSERA_GC_INTERVAL_SECONDS: '0' },
    });
    gc = await openMaintenance(rig, services.s3, services.redisUrl);
  });
  after(async () => {
    await gc.close();
    await rig.close();
  });

  const upload = async (size = 2000) => {
    const data = randomBlob(size);
    const digest = digestOf(data);
    await rig.client.write(uploadName(digest), data);
    return { data, digest };
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
  const findMissing = async (digests: Digest[]) =>
    (
      await rig.client.unary<{ missingBlobDigests: Digest[] }>(rig.client.cas, 'FindMissingBlobs', {
        blobDigests: digests,
      })
    ).missingBlobDigests;
  /** The invariant: an entry means an object of exactly that size. */
  const assertEntryHasObject = async (digest: Digest) => {
    const entry = await rig.redis.get(rig.commitKey(digest));
    if (entry !== null)
      assert.equal(await objectSize(digest), Number(entry), 'entry without object');
  };

  const waitingWriters = () =>
    rig.logs.filter((l) => String(l.msg).includes('waiting for the collector to finish')).length;

  it('keeps a blob with a live lease and deletes one whose lease expired', async () => {
    const live = await upload();
    const old = await upload();
    await gc.age(old.digest, EXPIRED);

    const report = await gc.collector().collect();

    assert.deepEqual(
      report.deleted.map((d) => d.member),
      [gc.member(old.digest)],
    );
    assert.equal(await objectSize(old.digest), undefined);
    assert.equal(await rig.redis.exists(rig.commitKey(old.digest)), 0);
    assert.equal(await objectSize(live.digest), live.data.length);
    assert.deepEqual(await findMissing([live.digest, old.digest]), [old.digest]);
    await rig.client.write(uploadName(old.digest), old.data);
    assert.ok((await rig.client.read(blobName(old.digest))).data.equals(old.data));
  });

  it('keeps a blob that FindMissingBlobs touched between selection and condemn', async () => {
    const blob = await upload();
    await gc.age(blob.digest, EXPIRED);
    const gate = gateAt('selected', gc.member(blob.digest));
    const collecting = gc.collector({}, gate.pause).collect();
    await gate.reached;

    assert.deepEqual(await findMissing([blob.digest]), []);
    gate.release();
    const report = await collecting;

    assert.equal(report.keptBecause.touched, 1);
    assert.equal(report.deleted.length, 0);
    assert.ok((await rig.client.read(blobName(blob.digest))).data.equals(blob.data));
  });

  it('keeps the outputs of an action result served between selection and condemn', async () => {
    const output = await upload();
    const action = digestOf(randomBlob(64));
    await rig.client.unary(rig.client.actionCache, 'UpdateActionResult', {
      actionDigest: action,
      actionResult: { outputFiles: [{ path: 'out', digest: output.digest }] },
    });
    await gc.age(output.digest, EXPIRED);
    const gate = gateAt('selected', gc.member(output.digest));
    const collecting = gc.collector({}, gate.pause).collect();
    await gate.reached;

    await rig.client.unary(rig.client.actionCache, 'GetActionResult', { actionDigest: action });
    gate.release();
    assert.equal((await collecting).keptBecause.touched, 1);
    assert.equal(await objectSize(output.digest), output.data.length);
  });

  it('keeps a blob read through ByteStream between selection and condemn; the read is whole', async () => {
    const blob = await upload(300_000);
    await gc.age(blob.digest, EXPIRED);
    const gate = gateAt('selected', gc.member(blob.digest));
    const collecting = gc.collector({}, gate.pause).collect();
    await gate.reached;

    const read = await rig.client.read(blobName(blob.digest));
    gate.release();
    const report = await collecting;

    assert.ok(read.data.equals(blob.data));
    assert.equal(report.keptBecause.touched, 1);
    assert.equal(report.deleted.length, 0);
    assert.equal(await objectSize(blob.digest), blob.data.length);
  });

  it('changes nothing when a collector dies after selecting; the next one collects', async () => {
    const blob = await upload();
    await gc.age(blob.digest, EXPIRED);
    const gate = gateAt('selected', gc.member(blob.digest));
    const collecting = gc.collector({}, gate.pause).collect();
    await gate.reached;
    gate.release(new Error('collector died'));
    await assert.rejects(collecting, /collector died/);

    assert.equal(await rig.redis.exists(rig.commitKey(blob.digest)), 1);
    assert.equal(await objectSize(blob.digest), blob.data.length);
    assert.equal(await rig.redis.exists(gc.index.tombstoneKeyOf(gc.member(blob.digest))), 0);

    const next = await gc.collector().collect();
    assert.deepEqual(
      next.deleted.map((d) => d.member),
      [gc.member(blob.digest)],
    );
    assert.equal(await objectSize(blob.digest), undefined);
    assert.deepEqual(await findMissing([blob.digest]), [blob.digest]);
  });

  it('answers missing during the delete window, and a re-upload waits, then writes again', async () => {
    const blob = await upload();
    await gc.age(blob.digest, EXPIRED);
    const gate = gateAt('condemned', gc.member(blob.digest));
    const collecting = gc.collector({}, gate.pause).collect();
    await gate.reached;

    // Condemned: the object is still there, but nobody is told so.
    assert.equal(await objectSize(blob.digest), blob.data.length);
    assert.deepEqual(await findMissing([blob.digest]), [blob.digest]);
    await assert.rejects(
      rig.client.read(blobName(blob.digest)),
      (e) => codeOf(e) === status.NOT_FOUND,
    );
    const reupload = rig.client.write(uploadName(blob.digest), blob.data);
    await until(() =>
      rig.logs.some((l) => String(l.msg).includes('waiting for the collector to finish')),
    );
    assert.equal(await rig.redis.exists(rig.commitKey(blob.digest)), 0, 'no commit meanwhile');

    gate.release();
    const report = await collecting;
    assert.equal(await reupload, blob.data.length);

    assert.equal(report.deleted.length, 1);
    await assertEntryHasObject(blob.digest);
    assert.ok((await rig.client.read(blobName(blob.digest))).data.equals(blob.data));
  });

  it('spares a blob whose object is being written, and refuses a commit whose intent lapsed', async () => {
    const blob = await upload();
    await gc.age(blob.digest, EXPIRED);
    const digest = { fn: 'SHA256' as const, hash: blob.digest.hash, size: blob.data.length };

    const writing = await gc.index.beginPut(digest);
    const metrics = createMetrics({ processMetrics: false });
    const spared = await gc.collector({}, undefined, createMaintenanceMetrics(metrics)).collect();
    assert.deepEqual(spared.keptBecause, { touched: 0, writing: 1, condemned: 0 });
    assert.match(await metrics.scrape(), /^tessera_gc_kept_on_race_total\{reason="writing"\} 1$/m);
    assert.equal(await gc.index.commitPut(digest, writing), true);

    // An intent that expired no longer protects the object, so its commit must be refused.
    await gc.age(blob.digest, EXPIRED);
    const lapsed = await gc.index.beginPut(digest);
    await rig.redis.zadd(gc.index.intentKeyOf(gc.member(blob.digest)), Date.now() - 1, lapsed);
    const report = await gc.collector().collect();
    assert.equal(report.deleted.length, 1);
    assert.equal(await gc.index.commitPut(digest, lapsed), false);
    assert.equal(await rig.redis.exists(rig.commitKey(blob.digest)), 0);
  });

  it('renews the lease of a blob written again instead of recording an intent, so it is kept', async () => {
    const blob = await upload();
    await gc.age(blob.digest, EXPIRED);
    const digest = { fn: 'SHA256' as const, hash: blob.digest.hash, size: blob.data.length };
    const intents = gc.index.intentKeyOf(gc.member(blob.digest));

    assert.equal(await gc.index.beginPutUnlessCommitted(digest), undefined);
    assert.equal(await rig.redis.exists(intents), 0, 'no intent for a committed blob');
    const report = await gc.collector().collect();
    assert.equal(report.deleted.length, 0, 'the renewed lease keeps the blob');
    await assertEntryHasObject(blob.digest);

    // The same hash with another size is not that commit: the writer gets an intent to write.
    const other = { ...digest, size: digest.size + 1 };
    const token = await gc.index.beginPutUnlessCommitted(other);
    assert.equal(typeof token, 'string');
    await gc.index.abandonPut(other, token as string);
  });

  it('after a collector dies having condemned, writers wait for the tombstone, then write', async () => {
    const blob = await upload();
    await gc.age(blob.digest, EXPIRED);
    const gate = gateAt('condemned', gc.member(blob.digest));
    const collecting = gc.collector({ tombstoneMs: 1_500 }, gate.pause).collect();
    await gate.reached;
    gate.release(new Error('collector died'));
    await assert.rejects(collecting, /collector died/);

    // Left behind: the object without an entry, and the tombstone until it expires.
    assert.equal(await objectSize(blob.digest), blob.data.length);
    assert.equal(await rig.redis.exists(rig.commitKey(blob.digest)), 0);
    assert.equal(await rig.redis.exists(gc.index.tombstoneKeyOf(gc.member(blob.digest))), 1);

    assert.equal(await rig.client.write(uploadName(blob.digest), blob.data), blob.data.length);
    await assertEntryHasObject(blob.digest);
    assert.ok((await rig.client.read(blobName(blob.digest))).data.equals(blob.data));
  });

  it('after a collector dies between the DELETE and the release, writers wait, then write', async () => {
    const blob = await upload();
    await gc.age(blob.digest, EXPIRED);
    const gate = gateAt('deleted', gc.member(blob.digest));
    const collecting = gc.collector({ tombstoneMs: 1_500 }, gate.pause).collect();
    await gate.reached;
    gate.release(new Error('collector died'));
    await assert.rejects(collecting, /collector died/);

    // Left behind: neither object nor entry, and the tombstone until it expires.
    assert.equal(await objectSize(blob.digest), undefined);
    assert.equal(await rig.redis.exists(rig.commitKey(blob.digest)), 0);
    assert.equal(await rig.redis.exists(gc.index.tombstoneKeyOf(gc.member(blob.digest))), 1);
    assert.deepEqual(await findMissing([blob.digest]), [blob.digest]);

    const waitsBefore = waitingWriters();
    assert.equal(await rig.client.write(uploadName(blob.digest), blob.data), blob.data.length);
    assert.equal(waitingWriters(), waitsBefore + 1, 'the writer waited for the tombstone');
    await assertEntryHasObject(blob.digest);
    assert.ok((await rig.client.read(blobName(blob.digest))).data.equals(blob.data));
  });

  it('leaves alone a blob the scrubber condemned between selection and condemn', async () => {
    const blob = await upload();
    await gc.age(blob.digest, EXPIRED);
    const member = gc.member(blob.digest);
    const gate = gateAt('selected', member);
    const collecting = gc.collector({}, gate.pause).collect();
    await gate.reached;

    // What the scrubber does to a corrupt blob, stopped before its DELETE.
    const scrubbed = (await gc.index.script(
      'condemn',
      gc.index.entryKeyOf(member),
      gc.index.leaseKey,
      gc.index.bytesKey,
      gc.index.intentKeyOf(member),
      gc.index.tombstoneKeyOf(member),
      `${gc.index.prefix}gc:lock`,
      member,
      '*',
      'scrubber-token',
      5_000,
      '',
      0,
    )) as [number, number];
    assert.deepEqual(scrubbed, [1, blob.data.length]);
    gate.release();
    const report = await collecting;

    assert.equal(report.keptBecause.condemned, 1);
    assert.equal(report.deleted.length, 0);
    assert.equal(await rig.redis.get(gc.index.tombstoneKeyOf(member)), 'scrubber-token');
    await rig.redis.del(gc.index.tombstoneKeyOf(member));
  });

  it('does not send a DELETE once the tombstone may have expired', async () => {
    const blob = await upload();
    await gc.age(blob.digest, EXPIRED);
    const gate = gateAt('condemned', gc.member(blob.digest));
    const tombstoneMs = 600;
    const collecting = gc.collector({ tombstoneMs }, gate.pause).collect();
    await gate.reached;
    // A stall: the collector wakes up after half the tombstone's life.
    await sleep(tombstoneMs / 2 + 50);
    gate.release();
    const report = await collecting;

    assert.equal(report.leftForLater, 1);
    assert.equal(report.deleted.length, 0);
    assert.equal(await objectSize(blob.digest), blob.data.length, 'object left for a later run');
    assert.deepEqual(await findMissing([blob.digest]), [blob.digest]);
  });

  it('runs one collector at a time, and stops one that lost its lock', async () => {
    await rig.redis.set(`tessera-test:${rig.prefix}gc:lock`, 'someone-else', 'PX', 5_000);
    await assert.rejects(gc.collector().collect(), CollectorBusyError);
    const busy = runAdmin(rig, services, ['gc']);
    assert.equal(busy.status, 4, busy.stderr);
    assert.match(busy.stderr, /another collector/);
    await rig.redis.del(`tessera-test:${rig.prefix}gc:lock`);

    const blob = await upload();
    await gc.age(blob.digest, EXPIRED);
    const gate = gateAt('selected', gc.member(blob.digest));
    const collecting = gc.collector({}, gate.pause).collect();
    await gate.reached;
    // Its lock expired and a second collector took it.
    await rig.redis.set(`tessera-test:${rig.prefix}gc:lock`, 'successor', 'PX', 5_000);
    gate.release();
    await assert.rejects(collecting, CollectorFencedError);
    assert.equal(await rig.redis.get(`tessera-test:${rig.prefix}gc:lock`), 'successor');
    assert.equal(await objectSize(blob.digest), blob.data.length);
    assert.equal(await rig.redis.exists(rig.commitKey(blob.digest)), 1);
    await rig.redis.del(`tessera-test:${rig.prefix}gc:lock`);
  });
});

async function until(condition: () => boolean | Promise<boolean>, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(20);
  }
}
