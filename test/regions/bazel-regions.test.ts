// Debian's Bazel 4.2.3 across two regions: a cold build through region A fills A's cache; after
// `bazel clean --expunge` the same build through region B, whose cache is empty and which has A
// as its peer, must take every action from the cache. B reads each action result and its outputs
// through from A, verifies them and commits them in its own bucket and Redis. The target is a
// chain of genrules (no compiler, no test), so the two builds stay short.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { type BazelWorkspace, parseProcessSummary, prepareWorkspace } from '../support/bazel.ts';
import { bazelOk, expunge } from '../support/bazel-cache-checks.ts';
import { sha256 } from '../support/client.ts';
import {
  bucketHolds,
  type PrivateRegion,
  startPrivateRegion,
  startRegionReplica,
  startSharedRegion,
} from '../support/regions.ts';
import {
  errorEntries,
  listStoredObjects,
  type Replica,
  type SharedStore,
} from '../support/replicas.ts';

const CASE_TIMEOUT_MS = 180_000;
const TARGET = '//gen:summary';
const OUTPUT = 'bazel-bin/gen/summary.txt';
/** The 8 shards, joined, sorted, summary. */
const ACTIONS = 11;

describe('bazel across two regions', () => {
  let workspace: BazelWorkspace;
  let regionA: PrivateRegion;
  let regionB: { store: SharedStore; close(): Promise<void> };
  let replicaA: Replica;
  let replicaB: Replica;

  before(async () => {
    [workspace, regionA, regionB] = await Promise.all([
      prepareWorkspace(),
      startPrivateRegion('bazel-regions-a'),
      startSharedRegion('bazel-regions-b'),
    ]);
    replicaA = await startRegionReplica(regionA.store, { region: 'a' });
    replicaB = await startRegionReplica(regionB.store, {
      region: 'b',
      peers: [{ name: 'a', address: replicaA.address }],
      peerTimeoutMs: 1500,
    });
  });

  after(async () => {
    await Promise.allSettled([replicaA?.stop(), replicaB?.stop(), workspace?.cleanup()]);
    await Promise.allSettled([regionA?.close(), regionB?.close()]);
  });

  it('rebuilds in region B entirely from what was built in region A', {
    timeout: CASE_TIMEOUT_MS,
  }, async (t) => {
    assert.deepEqual(await listStoredObjects(regionB.store), []);
    const coldRun = await bazelOk(t, workspace, ['build', TARGET], {
      remoteCache: replicaA.address,
    });
    const cold = parseProcessSummary(coldRun.stderr);
    assert.equal(cold.executed, ACTIONS, `cold build: ${JSON.stringify(cold.byKind)}`);
    const output = await readFile(join(workspace.dir, OUTPUT));
    await expunge(t, workspace);

    const warmRun = await bazelOk(t, workspace, ['build', TARGET], {
      remoteCache: replicaB.address,
    });

    const warm = parseProcessSummary(warmRun.stderr);
    assert.equal(warm.remoteCacheHits, ACTIONS, `warm build: ${JSON.stringify(warm.byKind)}`);
    assert.equal(warm.executed, 0);
    assert.ok((await readFile(join(workspace.dir, OUTPUT))).equals(output));
    const readThrough = replicaB.server.logs.filter(
      (entry) => entry.msg === 'action result read through from a peer region',
    );
    assert.equal(readThrough.length, ACTIONS, 'B must have read every action result through');
    assert.equal(await bucketHolds(regionB.store, sha256(output)), true);
    assert.deepEqual(errorEntries(replicaA.server.logs), []);
    assert.deepEqual(errorEntries(replicaB.server.logs), []);
  });
});
