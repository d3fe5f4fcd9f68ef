// The repair tools against real Redis and RGW: `tessera reindex` after Redis lost every key of the
// deployment (corrupt objects are not committed), the scrubber quarantining corrupt and missing
// objects (one-shot and in the background of serve, counted in metrics), and `tessera stat`.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import { status } from '@grpc/grpc-js';
import { TOMBSTONE_MAX_LIFE_MS } from '../../src/commit-index/redis-commit-index.ts';
import { Scrubber } from '../../src/repair/scrub.ts';
import { runAdmin } from '../support/admin-cli.ts';
import {
  blobName,
  codeOf,
  type Digest,
  digestOf,
  randomBlob,
  uploadName,
} from '../support/client.ts';
import { captureLogs } from '../support/logs.ts';
import { type Maintenance, openMaintenance } from '../support/maintenance.ts';
import { type Rig, startRig } from '../support/rig.ts';
import { getServices, type TestServices } from '../support/services/index.ts';

describe('repair tools', () => {
  let services: TestServices;
  let rig: Rig;
  let gc: Maintenance;
  before(async () => {
    services = await getServices();
    rig = await startRig({
      s3: services.s3,
      redisUrl: services.redisUrl,
      env: { TESSERA_GC_INTERVAL_SECONDS: '0' },
    });
    gc = await openMaintenance(rig, services.s3, services.redisUrl);
  });
  after(async () => {
    await gc.close();
    await rig.close();
  });

  const upload = async (size: number) => {
    const data = randomBlob(size);
    const digest = digestOf(data);
    await rig.client.write(uploadName(digest), data);
    return { data, digest };
  };
  const findMissing = async (digests: Digest[]) =>
    (
      await rig.client.unary<{ missingBlobDigests: Digest[] }>(rig.client.cas, 'FindMissingBlobs', {
        blobDigests: digests,
      })
    ).missingBlobDigests;
  const putObject = (key: string, body: Buffer) =>
    rig.s3.send(new PutObjectCommand({ Bucket: rig.bucket, Key: key, Body: body }));
  const objectExists = async (key: string) => {
    try {
      await rig.s3.send(new HeadObjectCommand({ Bucket: rig.bucket, Key: key }));
      return true;
    } catch {
      return false;
    }
  };
  const wipeRedis = async () => {
    const keys = await rig.redis.keys(`tessera-test:${rig.prefix}*`);
    if (keys.length > 0) await rig.redis.del(...keys);
  };

  it('reindex rebuilds the index from the bucket, committing only objects that verify', async () => {
    const blobs = [await upload(10), await upload(70_000), await upload(3 * 1024 * 1024)];
    // An object whose bytes are not its key's: same length, other content.
    const good = randomBlob(5000);
    const corrupt = digestOf(good);
    await putObject(rig.objectKey(corrupt), randomBlob(5000));
    await wipeRedis();
    assert.equal((await findMissing(blobs.map((b) => b.digest))).length, 3);

    const run = runAdmin(rig, services, ['reindex', '--json', '--repair-concurrency', '2']);
    assert.equal(run.status, 5, run.stderr);
    const report = JSON.parse(run.stdout) as {
      listed: number;
      committed: number;
      corrupt: { key: string }[];
    };
    assert.equal(report.listed, 4);
    assert.equal(report.committed, 3);
    assert.deepEqual(
      report.corrupt.map((c) => c.key),
      [rig.objectKey(corrupt)],
    );

    assert.deepEqual(await findMissing([...blobs.map((b) => b.digest), corrupt]), [corrupt]);
    for (const blob of blobs) {
      assert.ok((await rig.client.read(blobName(blob.digest))).data.equals(blob.data));
    }
    await assert.rejects(rig.client.read(blobName(corrupt)), (e) => codeOf(e) === status.NOT_FOUND);
    // Objects from before the index began are never swept as orphans.
    const swept = await gc.collector({ leaseMs: 0, orphanGraceMs: -60_000 }).collect();
    assert.equal(swept.deleted.length, 0);
    assert.ok(await objectExists(rig.objectKey(corrupt)));

    // A second run leaves what is committed alone.
    const again = runAdmin(rig, services, ['reindex', '--json']);
    const second = JSON.parse(again.stdout) as { committed: number; present: number };
    assert.deepEqual([second.committed, second.present], [0, 3]);
    await rig.s3.send(new DeleteObjectCommand({ Bucket: rig.bucket, Key: rig.objectKey(corrupt) }));
  });

  it('scrub quarantines corrupt and missing blobs and leaves good ones', async () => {
    const fine = await upload(2000);
    const damaged = await upload(3000);
    const vanished = await upload(4000);
    const wrongBytes = randomBlob(3000);
    await putObject(rig.objectKey(damaged.digest), wrongBytes);
    await rig.s3.send(
      new DeleteObjectCommand({ Bucket: rig.bucket, Key: rig.objectKey(vanished.digest) }),
    );
    const { log, lines } = captureLogs();

    const report = await new Scrubber(
      gc.index,
      gc.objects,
      { bytesPerSecond: 0, tombstoneMs: TOMBSTONE_MAX_LIFE_MS },
      log,
    ).pass();

    assert.deepEqual(
      report.quarantined.map((q) => [q.member, q.reason]).sort(),
      [
        [gc.member(damaged.digest), 'mismatch'],
        [gc.member(vanished.digest), 'missing'],
      ].sort(),
    );
    assert.deepEqual(await findMissing([fine.digest, damaged.digest, vanished.digest]), [
      damaged.digest,
      vanished.digest,
    ]);
    for (const gone of [damaged, vanished]) {
      await assert.rejects(
        rig.client.read(blobName(gone.digest)),
        (e) => codeOf(e) === status.NOT_FOUND,
      );
    }
    assert.ok(!(await objectExists(rig.objectKey(damaged.digest))));
    const stat = runAdmin(rig, services, ['stat', `${damaged.digest.hash}/3000`, '--json']);
    assert.equal(stat.status, 0, stat.stderr);
    assert.deepEqual(
      pick(JSON.parse(stat.stdout), ['committed', 'object', 'quarantined', 'beingDeleted']),
      { committed: false, object: null, quarantined: true, beingDeleted: false },
    );
    const kept = await rig.s3.send(
      new GetObjectCommand({
        Bucket: rig.bucket,
        Key: `${rig.prefix}quarantine/sha256/${damaged.digest.hash}`,
      }),
    );
    assert.ok(Buffer.from(await kept.Body!.transformToByteArray()).equals(wrongBytes));
    assert.ok(lines.some((l) => l.level === 'error' && String(l.msg).includes('corrupt')));
    assert.ok((await rig.client.read(blobName(fine.digest))).data.equals(fine.data));

    await rig.client.write(uploadName(damaged.digest), damaged.data);
    assert.ok((await rig.client.read(blobName(damaged.digest))).data.equals(damaged.data));
  });

  it('scrub spares a corrupt blob while it is being written again, which heals it', async () => {
    const blob = await upload(2500);
    await putObject(rig.objectKey(blob.digest), randomBlob(2500));
    const digest = { fn: 'SHA256' as const, hash: blob.digest.hash, size: 2500 };
    const writing = await gc.index.beginPut(digest);
    const scrubber = new Scrubber(
      gc.index,
      gc.objects,
      { bytesPerSecond: 0, tombstoneMs: TOMBSTONE_MAX_LIFE_MS },
      captureLogs().log,
    );

    const first = await scrubber.pass();
    assert.equal(first.skipped, 1);
    assert.deepEqual(first.quarantined, []);
    assert.equal(await rig.redis.exists(rig.commitKey(blob.digest)), 1);

    // The writer's PutObject lands good bytes, then it commits; the next pass finds nothing.
    await putObject(rig.objectKey(blob.digest), blob.data);
    assert.equal(await gc.index.commitPut(digest, writing), true);
    assert.deepEqual((await scrubber.pass()).quarantined, []);
    assert.ok((await rig.client.read(blobName(blob.digest))).data.equals(blob.data));
  });

  it('stat reports a blob, an instance and the store', async () => {
    const blob = await upload(1500);
    const instance = 'team/stat';
    await rig.client.unary(rig.client.actionCache, 'UpdateActionResult', {
      instanceName: instance,
      actionDigest: digestOf(randomBlob(32)),
      actionResult: { outputFiles: [{ path: 'out', digest: blob.digest }] },
    });

    const one = runAdmin(rig, services, ['stat', `${blob.digest.hash}/1500`, '--json'], {
      TESSERA_CAS_LEASE_SECONDS: '3600',
    });
    assert.equal(one.status, 0, one.stderr);
    const digestStat = JSON.parse(one.stdout) as Record<string, unknown>;
    assert.equal(digestStat.committed, true);
    assert.equal(digestStat.committedSize, 1500);
    assert.equal((digestStat.object as { size: number }).size, 1500);
    const used = Date.parse(String(digestStat.lastUsedAt));
    assert.equal(Date.parse(String(digestStat.leaseExpiresAt)) - used, 3_600_000);

    const team = runAdmin(rig, services, ['stat', '--instance', instance, '--json']);
    assert.equal(team.status, 0, team.stderr);
    const instanceStat = JSON.parse(team.stdout) as { actionResults: number; bytes: number };
    assert.equal(instanceStat.actionResults, 1);
    assert.ok(instanceStat.bytes > 0);

    const store = runAdmin(rig, services, ['stat']);
    assert.equal(store.status, 0, store.stderr);
    assert.match(store.stdout, /^blobs\s+\d+$/m);
    assert.match(store.stdout, /^bytes\s+\d+$/m);
  });
});

describe('background scrub and collection in serve', () => {
  let rig: Rig;
  before(async () => {
    const services = await getServices();
    rig = await startRig({
      s3: services.s3,
      redisUrl: services.redisUrl,
      env: {
        TESSERA_GC_INTERVAL_SECONDS: '1',
        TESSERA_SCRUB_BYTES_PER_SECOND: '100000000',
        TESSERA_SCRUB_INTERVAL_SECONDS: '1',
        TESSERA_HTTP_LISTEN: '127.0.0.1:0',
      },
    });
  });
  after(() => rig.close());

  it('finds a corrupted blob, drops its commit, logs an error and counts it', async () => {
    const data = randomBlob(6000);
    const digest = digestOf(data);
    await rig.client.write(uploadName(digest), data);
    await rig.s3.send(
      new PutObjectCommand({
        Bucket: rig.bucket,
        Key: rig.objectKey(digest),
        Body: randomBlob(6000),
      }),
    );

    const deadline = Date.now() + 15_000;
    while ((await rig.redis.exists(rig.commitKey(digest))) === 1) {
      assert.ok(Date.now() < deadline, 'the background scrub did not find the corrupt blob');
      await sleep(100);
    }
    assert.ok(rig.logs.some((l) => l.level === 'error' && String(l.msg).includes('corrupt')));
    const scrape = await (await fetch(`http://${rig.app.httpAddress}/metrics`)).text();
    assert.match(scrape, /^tessera_scrub_quarantined_total\{reason="mismatch"\} 1$/m);
    assert.match(scrape, /^tessera_gc_deleted_objects_total\{reason="corrupt"\} 1$/m);
  });

  it('runs the collector on its interval and counts the collections', async () => {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const scrape = await (await fetch(`http://${rig.app.httpAddress}/metrics`)).text();
      if (/^tessera_gc_collections_total\{outcome="done"\} [1-9]/m.test(scrape)) break;
      assert.ok(Date.now() < deadline, 'no collection was counted');
      await sleep(100);
    }
    assert.ok(rig.logs.some((l) => l.msg === 'garbage collection finished'));
  });
});

function pick(value: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  return Object.fromEntries(keys.map((key) => [key, value[key]]));
}
