// Asynchronous replication between two regions on one machine. Region A (its own Redis and RGW)
// runs with replication on and B as its peer, reached through a TCP proxy; B has no peers, so a
// blob or action result can only reach B by A pushing it, never by read-through. Checks: what A
// commits arrives in B, verified and committed there; the lag is exported while B is cut off and
// drains when the link is back; entries left by a replica killed mid-way are pushed by the next
// one (at-least-once, resumable after a restart).
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  blobName,
  connect,
  type Digest,
  digestOf,
  missingHashes,
  randomBlob,
  type TestClient,
  uploadWhole,
} from '../support/client.ts';
import {
  type PrivateRegion,
  redisCommits,
  startLink,
  startPrivateRegion,
  startRegionReplica,
  startSharedRegion,
} from '../support/regions.ts';
import type { Replica, SharedStore } from '../support/replicas.ts';
import { httpGet, parseScrape, sampleValue } from '../support/scrape.ts';
import type { TcpProxy } from '../support/tcp-proxy.ts';

const MIB = 1024 * 1024;
/** How long a pushed entry may take to arrive on this shared, noisy machine. */
const ARRIVAL_MS = 60_000;

describe('replication between two regions', () => {
  let regionA: PrivateRegion;
  let regionB: { store: SharedStore; close(): Promise<void> };
  let replicaA: Replica | undefined;
  let replicaB: Replica;
  let link: TcpProxy;
  let a: TestClient;
  let b: TestClient;

  const startA = async (env: Record<string, string> = {}) => {
    replicaA = await startRegionReplica(regionA.store, {
      region: 'a',
      peers: [{ name: 'b', address: link.address }],
      peerTimeoutMs: 1000,
      replication: 'on',
      env: { TESSERA_HTTP_LISTEN: '127.0.0.1:0', ...env },
    });
    a?.close();
    a = connect(replicaA.address);
  };

  before(async () => {
    [regionA, regionB] = await Promise.all([
      startPrivateRegion('replication-a'),
      startSharedRegion('replication-b'),
    ]);
    replicaB = await startRegionReplica(regionB.store, { region: 'b' });
    link = await startLink(replicaB.address);
    b = connect(replicaB.address);
    await startA();
  });

  after(async () => {
    a?.close();
    b?.close();
    await Promise.allSettled([replicaA?.stop(), replicaB?.stop(), link?.close()]);
    await Promise.allSettled([regionA?.close(), regionB?.close()]);
  });

  const uploadToA = (data: Buffer): Promise<Digest> => uploadWhole(a, data);
  const missingInB = (digests: readonly Digest[]): Promise<string[]> => missingHashes(b, digests);
  /** Polls until B has every blob, or fails naming those still missing. */
  const arriveInB = async (digests: readonly Digest[]) => {
    const deadline = Date.now() + ARRIVAL_MS;
    let missing = await missingInB(digests);
    while (missing.length > 0 && Date.now() < deadline) {
      await sleep(200);
      missing = await missingInB(digests);
    }
    assert.deepEqual(missing, [], `${missing.length} blobs never reached B`);
  };
  const scrapeA = async () => {
    const entry = replicaA?.server.logs.find((line) => line.msg === 'listening');
    const { body } = await httpGet(entry?.httpAddress as string, '/metrics');
    return parseScrape(body);
  };
  const lagOfA = async (): Promise<number> => {
    const lag = sampleValue(await scrapeA(), 'tessera_replication_lag_entries', { peer: 'b' });
    assert.notEqual(lag, undefined, 'A must export tessera_replication_lag_entries{peer="b"}');
    return lag as number;
  };
  const oldestAgeOfA = async (): Promise<number> => {
    const name = 'tessera_replication_oldest_entry_age_seconds';
    const age = sampleValue(await scrapeA(), name, { peer: 'b' });
    assert.notEqual(age, undefined, `A must export ${name}{peer="b"}`);
    return age as number;
  };
  const waitForLag = async (expect: (lag: number) => boolean, what: string) => {
    const deadline = Date.now() + ARRIVAL_MS;
    let lag = await lagOfA();
    while (!expect(lag) && Date.now() < deadline) {
      await sleep(200);
      lag = await lagOfA();
    }
    assert.ok(expect(lag), `${what}; the lag is ${lag}`);
  };

  it('pushes what A commits to B, where it is committed and served', async () => {
    const small = randomBlob(4096);
    const large = randomBlob(20 * MIB);
    const digests = [await uploadToA(small), await uploadToA(large)];

    await arriveInB(digests);

    assert.ok((await b.read(blobName(digests[0] as Digest))).data.equals(small));
    assert.ok((await b.read(blobName(digests[1] as Digest))).data.equals(large));
    assert.equal(await redisCommits(regionB.store, (digests[1] as Digest).hash), true);
    await waitForLag((lag) => lag === 0, 'the lag must drain to 0');
  });

  /** Polls B until it serves the action result of `action`, or fails. */
  const actionResultInB = async (action: Digest) => {
    const deadline = Date.now() + ARRIVAL_MS;
    let got: { outputFiles: { digest: Digest }[] } | undefined;
    while (got === undefined && Date.now() < deadline) {
      got = await b
        .unary<{ outputFiles: { digest: Digest }[] }>(b.actionCache, 'GetActionResult', {
          actionDigest: action,
        })
        .catch(() => undefined);
      if (got === undefined) await sleep(200);
    }
    assert.ok(got, 'the action result never reached B');
    return got;
  };
  /** Waits for A, started with a crash point, to have died of it; then forgets it. */
  const awaitCrashOfA = async () => {
    const child = replicaA?.server.child as ChildProcess;
    if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
    assert.equal(child.signalCode, 'SIGKILL', 'A was killed by its crash point');
    await replicaA?.stop();
    replicaA = undefined;
  };

  it('pushes an action result after its outputs, so B serves it whole', async () => {
    const output = randomBlob(300_000);
    const outputDigest = await uploadToA(output);
    const action = digestOf(randomBlob(200));
    await a.unary(a.actionCache, 'UpdateActionResult', {
      actionDigest: action,
      actionResult: {
        outputFiles: [{ path: 'out/lib.a', digest: outputDigest, isExecutable: false }],
        exitCode: 0,
      },
    });

    const got = await actionResultInB(action);
    assert.equal(got.outputFiles[0]?.digest.hash, outputDigest.hash);
    assert.ok((await b.read(blobName(outputDigest))).data.equals(output));
  });

  it('exports the lag while B is cut off, and drains it when B is back', async () => {
    link.setMode({ kind: 'blackhole' });
    let digests: Digest[];
    try {
      digests = [];
      for (let i = 0; i < 5; i++) digests.push(await uploadToA(randomBlob(10_000)));
      await waitForLag((lag) => lag >= 5, 'the lag must count the 5 blobs B has not confirmed');
      assert.equal((await missingInB(digests)).length, 5);
    } finally {
      link.setMode({ kind: 'pass' });
    }
    await arriveInB(digests);
    await waitForLag((lag) => lag === 0, 'the lag must drain once B is back');
  });

  it('pushes, after a restart, what a killed replica had not delivered', async () => {
    link.setMode({ kind: 'blackhole' });
    const digests: Digest[] = [];
    try {
      for (let i = 0; i < 5; i++) digests.push(await uploadToA(randomBlob(10_000)));
      await waitForLag((lag) => lag >= 5, 'the lag must count the 5 blobs');
      await replicaA?.server.kill();
      await replicaA?.stop();
      replicaA = undefined;
    } finally {
      link.setMode({ kind: 'pass' });
    }
    assert.equal((await missingInB(digests)).length, 5, 'nothing may arrive while A is dead');

    await startA();

    await arriveInB(digests);
    await waitForLag((lag) => lag === 0, 'the lag must drain after the restart');
  });

  it('pushes a blob whose replica died the moment after committing it', async () => {
    // The crash point kills A right after its first commit, before it answers: the commit and its
    // log entry are one Redis script, so the entry is there for the next replica to push.
    await replicaA?.stop();
    await startA({ TESSERA_CRASH_POINTS: 'committed:1' });
    const data = randomBlob(20_000);
    const digest = digestOf(data);
    await assert.rejects(uploadToA(data), 'A dies before it answers');
    await awaitCrashOfA();
    assert.ok(await redisCommits(regionA.store, digest.hash), 'the blob is committed in A');

    await startA();
    await arriveInB([digest]);
    assert.ok((await b.read(blobName(digest))).data.equals(data), 'B serves it whole');
  });

  it('pushes an action result whose replica died the moment after storing it', async () => {
    // The result and its log entry are one MULTI, so the entry outlives A's death before it
    // answers.
    const output = randomBlob(30_000);
    const outputDigest = await uploadToA(output);
    await replicaA?.stop();
    await startA({ TESSERA_CRASH_POINTS: 'action-result-stored:1' });
    const action = digestOf(randomBlob(200));
    await assert.rejects(
      a.unary(a.actionCache, 'UpdateActionResult', {
        actionDigest: action,
        actionResult: {
          outputFiles: [{ path: 'out/app', digest: outputDigest, isExecutable: true }],
          exitCode: 0,
        },
      }),
      'A dies before it answers',
    );
    await awaitCrashOfA();

    await startA();
    const got = await actionResultInB(action);
    assert.equal(got.outputFiles[0]?.digest.hash, outputDigest.hash);
    assert.ok((await b.read(blobName(outputDigest))).data.equals(output));
  });

  it('delivers everything after a replica is killed in the middle of a push', async () => {
    // A slow link keeps the push of these blobs going long enough to kill A part way through it.
    link.setMode({ kind: 'latency', ms: 150 });
    const digests: Digest[] = [];
    try {
      for (let i = 0; i < 40; i++) digests.push(await uploadToA(randomBlob(16 * 1024)));
      const deadline = Date.now() + ARRIVAL_MS;
      while ((await missingInB(digests)).length === digests.length && Date.now() < deadline) {
        await sleep(100);
      }
      await replicaA?.server.kill();
      await replicaA?.stop();
      replicaA = undefined;
    } finally {
      link.setMode({ kind: 'pass' });
    }
    const missingAtKill = (await missingInB(digests)).length;
    assert.ok(missingAtKill > 0 && missingAtKill < digests.length, `${missingAtKill} missing`);

    await startA();

    await arriveInB(digests);
    await waitForLag((lag) => lag === 0, 'the lag must drain after the restart');
  });

  it('reports the lag and its age while B is stopped, and drains both once B is back', async () => {
    b.close();
    await replicaB.stop();
    const blobs = Array.from({ length: 5 }, () => randomBlob(8 * 1024));
    const digests: Digest[] = [];
    for (const data of blobs) digests.push(await uploadToA(data));
    await waitForLag((lag) => lag >= 5, 'the lag must count the 5 blobs B has not confirmed');
    const deadline = Date.now() + ARRIVAL_MS;
    while ((await oldestAgeOfA()) < 1 && Date.now() < deadline) await sleep(200);
    assert.ok((await oldestAgeOfA()) >= 1, 'the oldest entry must age while B is down');

    replicaB = await startRegionReplica(regionB.store, { region: 'b' });
    link.setTarget(replicaB.address);
    b = connect(replicaB.address);

    await arriveInB(digests);
    for (const [i, data] of blobs.entries()) {
      assert.ok((await b.read(blobName(digests[i] as Digest))).data.equals(data));
    }
    await waitForLag((lag) => lag === 0, 'the lag must drain once B is back');
    assert.equal(await oldestAgeOfA(), 0);
  });
});
