// The seed scenario, reduced for CI: concurrent clients upload fresh trees through one replica and
// download them through another at once; every byte, executable bit and link must match.
// `npm run bench` runs the same scenario at full size.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  createSharedStore,
  errorEntries,
  type Replica,
  removeSharedStore,
  type SharedStore,
  startReplica,
} from '../support/replicas.ts';
import { runSeedScenario } from '../support/seed-scenario.ts';

const MIB = 1024 * 1024;

describe('upload through one replica, download through another at once', () => {
  let store: SharedStore;
  let a: Replica;
  let b: Replica;
  let workDir: string;

  before(async () => {
    store = await createSharedStore('seed');
    [a, b] = await Promise.all([startReplica(store), startReplica(store)]);
    workDir = await mkdtemp(join(tmpdir(), 'tessera-seed-'));
  });
  after(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await removeSharedStore(store);
    await rm(workDir, { recursive: true, force: true });
  });

  it('reads back every byte of every tree, with no failed trial', {
    timeout: 300_000,
  }, async () => {
    const report = await runSeedScenario({
      uploadVia: a.address,
      downloadVia: b.address,
      clients: 4,
      rounds: 2,
      smallFiles: 120,
      largeFiles: 1,
      // Above the default multipart threshold, so the streaming path is part of the scenario.
      largeBytes: 20 * MIB,
      workDir,
    });
    assert.deepEqual(report.failures, []);
    assert.equal(report.trials, 8);
    assert.ok(report.files >= 8 * 121);
    assert.deepEqual(errorEntries(a.server.logs), []);
    assert.deepEqual(errorEntries(b.server.logs), []);
  });
});
