// Two regions on one machine: A with its own Redis and RADOS Gateway, B on the shared ones, each
// with its own `tessera serve`; B has A as its peer, reached through a TCP proxy. Blobs and action
// results committed in A are read through by B on a miss, verified, committed in B's own bucket and
// Redis, and served from there afterwards. Whatever happens to A (its S3, its Redis or its replica
// killed, the link partitioned, slowed or corrupting bytes), B answers correctly within the peer
// deadline plus a margin for a noisy machine, and never commits what A sent wrong.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { COOL_DOWN_MS } from '../../src/regions/read-through.ts';
import {
  blobName,
  codeOf,
  connect,
  type Digest,
  digestOf,
  missingHashes,
  randomBlob,
  type TestClient,
  uploadWhole,
} from '../support/client.ts';
import {
  bucketHolds,
  type PrivateRegion,
  redisCommits,
  startLink,
  startPrivateRegion,
  startRegionReplica,
  startSharedRegion,
} from '../support/regions.ts';
import type { Replica, SharedStore } from '../support/replicas.ts';
import type { TcpProxy } from '../support/tcp-proxy.ts';

const PEER_TIMEOUT_MS = 1000;
/** What a miss may cost when A misbehaves: the deadline and a generous margin for this machine. */
const BOUND_MS = PEER_TIMEOUT_MS + 3000;
const MIB = 1024 * 1024;

describe('read-through between two regions', () => {
  let regionA: PrivateRegion;
  let regionB: { store: SharedStore; close(): Promise<void> };
  let replicaA: Replica;
  let replicaB: Replica;
  let link: TcpProxy;
  let a: TestClient;
  let b: TestClient;

  before(async () => {
    [regionA, regionB] = await Promise.all([
      startPrivateRegion('regions-a'),
      startSharedRegion('regions-b'),
    ]);
    replicaA = await startRegionReplica(regionA.store, { region: 'a' });
    link = await startLink(replicaA.address);
    await restartB();
    a = connect(replicaA.address);
  });

  /**
   * A new replica for B on the same store: each fault case starts with a closed circuit breaker
   * and a fresh channel to A, whatever the case before it did to them.
   */
  const restartB = async () => {
    b?.close();
    await replicaB?.stop();
    replicaB = await startRegionReplica(regionB.store, {
      region: 'b',
      peers: [{ name: 'a', address: link.address }],
      peerTimeoutMs: PEER_TIMEOUT_MS,
    });
    b = connect(replicaB.address);
  };

  after(async () => {
    a?.close();
    b?.close();
    await Promise.allSettled([replicaA?.stop(), replicaB?.stop(), link?.close()]);
    await Promise.allSettled([regionA?.close(), regionB?.close()]);
  });

  const uploadToA = (data: Buffer): Promise<Digest> => uploadWhole(a, data);
  const missingInB = async (digest: Digest): Promise<boolean> =>
    (await missingHashes(b, [digest])).length > 0;
  const readCode = async (client: TestClient, digest: Digest): Promise<number> => {
    try {
      await client.read(blobName(digest));
      return status.OK;
    } catch (error) {
      return codeOf(error) ?? -1;
    }
  };
  const timed = async <T>(work: () => Promise<T>): Promise<{ value: T; ms: number }> => {
    const started = performance.now();
    const value = await work();
    return { value, ms: performance.now() - started };
  };
  /** B must answer "missing" to FindMissing and NOT_FOUND to Read, each within BOUND_MS. */
  const assertBoundedMiss = async (digest: Digest) => {
    const lookup = await timed(() => missingInB(digest));
    assert.equal(lookup.value, true, 'B must not report a blob it cannot serve');
    assert.ok(lookup.ms < BOUND_MS, `FindMissingBlobs took ${Math.round(lookup.ms)} ms`);
    const read = await timed(() => readCode(b, digest));
    assert.equal(read.value, status.NOT_FOUND);
    assert.ok(read.ms < BOUND_MS, `Read took ${Math.round(read.ms)} ms`);
    assert.equal(await bucketHolds(regionB.store, digest.hash), false);
    assert.equal(await redisCommits(regionB.store, digest.hash), false);
  };
  /** After A recovers, B reads the blob through and keeps it. */
  const assertReadsThrough = async (digest: Digest, data: Buffer) => {
    const { data: got } = await b.read(blobName(digest));
    assert.ok(got.equals(data), 'B must serve exactly the bytes committed in A');
    assert.equal(await bucketHolds(regionB.store, digest.hash), true);
    assert.equal(await redisCommits(regionB.store, digest.hash), true);
  };

  it('reports a blob committed in A as present in B only once it is committed in B', async () => {
    const data = randomBlob(10_000);
    const digest = await uploadToA(data);
    assert.equal(await bucketHolds(regionB.store, digest.hash), false);

    assert.equal(await missingInB(digest), false);

    assert.equal(await bucketHolds(regionB.store, digest.hash), true);
    assert.equal(await redisCommits(regionB.store, digest.hash), true);
    const { data: got } = await b.read(blobName(digest));
    assert.ok(got.equals(data));
  });

  it('reads a 16 MiB blob through with ByteStream, then serves it with A cut off', async () => {
    const data = randomBlob(16 * MIB);
    const digest = await uploadToA(data);

    await assertReadsThrough(digest, data);

    link.setMode({ kind: 'blackhole' });
    try {
      const before = link.bytesFromClients;
      const { data: again } = await b.read(blobName(digest));
      assert.ok(again.equals(data));
      assert.equal(link.bytesFromClients, before, 'a local hit must not ask the peer');
    } finally {
      link.setMode({ kind: 'pass' });
    }
  });

  it('reads through with BatchReadBlobs', async () => {
    const blobs = [randomBlob(1000), randomBlob(70_000)];
    const digests = await Promise.all(blobs.map(uploadToA));
    const reply = await b.unary<{
      responses: { digest: Digest; data: Buffer; status: { code: number } }[];
    }>(b.cas, 'BatchReadBlobs', { digests });
    assert.deepEqual(
      reply.responses.map((r) => r.status.code),
      [status.OK, status.OK],
    );
    for (const [i, r] of reply.responses.entries()) assert.ok(r.data.equals(blobs[i] as Buffer));
  });

  it('shares one fetch between concurrent reads of one blob', async () => {
    const data = randomBlob(4 * MIB);
    const digest = await uploadToA(data);
    const reads = await Promise.all([1, 2, 3, 4].map(() => b.read(blobName(digest))));
    for (const { data: got } of reads) assert.ok(got.equals(data));
    const fetches = replicaB.server.logs.filter(
      (entry) =>
        entry.msg === 'read through from a peer region' &&
        String(entry.digest).includes(digest.hash),
    );
    assert.equal(fetches.length, 1);
  });

  it("serves A's action result in B once its outputs are committed in B", async () => {
    const output = randomBlob(300_000);
    const stdout = randomBlob(100);
    const outputDigest = await uploadToA(output);
    const stdoutDigest = await uploadToA(stdout);
    const action = digestOf(randomBlob(200));
    const result = {
      outputFiles: [{ path: 'out/lib.a', digest: outputDigest, isExecutable: false }],
      stdoutDigest,
      exitCode: 0,
    };
    await a.unary(a.actionCache, 'UpdateActionResult', {
      actionDigest: action,
      actionResult: result,
    });

    const got = await b.unary<{ outputFiles: { digest: Digest }[] }>(
      b.actionCache,
      'GetActionResult',
      { actionDigest: action },
    );

    assert.equal(got.outputFiles[0]?.digest.hash, outputDigest.hash);
    assert.equal(await bucketHolds(regionB.store, outputDigest.hash), true);
    assert.equal(await bucketHolds(regionB.store, stdoutDigest.hash), true);
    // Served locally from now on, even with A cut off.
    link.setMode({ kind: 'blackhole' });
    try {
      await b.unary(b.actionCache, 'GetActionResult', { actionDigest: action });
    } finally {
      link.setMode({ kind: 'pass' });
    }
  });

  describe('when A misbehaves', () => {
    beforeEach(restartB);

    it('answers a miss within the deadline when the link to A is partitioned', async () => {
      const data = randomBlob(5000);
      const digest = await uploadToA(data);
      link.setMode({ kind: 'blackhole' });
      try {
        await assertBoundedMiss(digest);
      } finally {
        link.setMode({ kind: 'pass' });
      }
      await assertReadsThrough(digest, data);
    });

    it('reads through a slow link, and answers a miss in time when it is slower than the deadline', async () => {
      const slow = randomBlob(5000);
      const tooSlow = randomBlob(5000);
      const [slowDigest, tooSlowDigest] = [await uploadToA(slow), await uploadToA(tooSlow)];
      link.setMode({ kind: 'latency', ms: 100 });
      try {
        await assertReadsThrough(slowDigest, slow);
        link.setMode({ kind: 'latency', ms: PEER_TIMEOUT_MS * 2 });
        await assertBoundedMiss(tooSlowDigest);
      } finally {
        link.setMode({ kind: 'pass' });
      }
      await link.drained();
      // On a loaded machine even the 100 ms link may have missed a deadline, so the misses above
      // can have opened the circuit breaker: B must read through again once its cool-down ends.
      const until = Date.now() + COOL_DOWN_MS + BOUND_MS;
      while ((await readCode(b, tooSlowDigest)) !== status.OK && Date.now() < until) {
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      await assertReadsThrough(tooSlowDigest, tooSlow);
    });

    it('refuses and does not commit a blob whose bytes were corrupted on the way', async () => {
      const data = randomBlob(2 * MIB);
      const digest = await uploadToA(data);
      const needles = [0.3, 0.4, 0.5, 0.6, 0.7].map((at) => {
        const start = Math.floor(data.length * at);
        return data.subarray(start, start + 24);
      });
      link.setMode({ kind: 'corrupt', needles });

      assert.equal(await readCode(b, digest), status.NOT_FOUND);

      assert.equal(link.flips, 1, 'the proxy must have flipped a byte of the blob');
      assert.equal(await bucketHolds(regionB.store, digest.hash), false);
      assert.equal(await redisCommits(regionB.store, digest.hash), false);
      assert.ok(
        replicaB.server.logs.some(
          (entry) =>
            entry.msg === 'a peer region sent bytes that do not match the digest; not committed',
        ),
      );
      await assertReadsThrough(digest, data);
    });

    it("answers a miss within the deadline when A's S3 is down", async () => {
      const data = randomBlob(5000);
      const digest = await uploadToA(data);
      await regionA.rgw.killGateway();
      try {
        await assertBoundedMiss(digest);
      } finally {
        await regionA.rgw.startGateway();
      }
      await assertReadsThrough(digest, data);
    });

    it("answers a miss within the deadline when A's Redis is down", async () => {
      const data = randomBlob(5000);
      const digest = await uploadToA(data);
      await regionA.redis.kill();
      try {
        await assertBoundedMiss(digest);
      } finally {
        await regionA.redis.start();
      }
      // A's Redis kept nothing (no persistence): A no longer has the blob, and B says so at once.
      assert.equal(await missingInB(digest), true);
    });

    it('stops asking a peer that keeps failing, until its cool-down ends', async () => {
      link.setMode({ kind: 'blackhole' });
      try {
        for (let i = 0; i < 3; i++) await missingInB(digestOf(randomBlob(100)));
        const before = link.bytesFromClients;
        const { value: missing, ms } = await timed(() => missingInB(digestOf(randomBlob(100))));
        assert.equal(missing, true);
        assert.equal(link.bytesFromClients, before, 'an open breaker must not send anything');
        assert.ok(ms < PEER_TIMEOUT_MS, `a skipped peer must cost nothing, took ${Math.round(ms)}`);
      } finally {
        link.setMode({ kind: 'pass' });
      }
    });
    it("answers a miss within the deadline when A's replica is down", async () => {
      const data = randomBlob(5000);
      const digest = await uploadToA(data);
      await replicaA.server.kill();
      try {
        await assertBoundedMiss(digest);
      } finally {
        a.close();
        replicaA = await startRegionReplica(regionA.store, { region: 'a' });
        link.setTarget(replicaA.address);
        a = connect(replicaA.address);
      }
      // B's channel to A reconnects with backoff and its breaker may have opened meanwhile, so
      // recovery takes seconds here; the partition and S3 cases above show recovery.
    });
  });
});
