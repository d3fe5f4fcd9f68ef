// A push the peer refuses. Region B accepts only bearer tokens from a token file; region A pushes
// to B with a token B lets read but not write, so every push is refused with PERMISSION_DENIED.
// A must keep the entries (the lag stays, nothing is acknowledged) and retry them, and once B's
// file grants the token write, the same entries arrive and the lag drains: a refusal delays
// replication but loses nothing.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  blobName,
  connect,
  type Digest,
  missingHashes,
  randomBlob,
  type TestClient,
  uploadWhole,
} from '../support/client.ts';
import {
  type PrivateRegion,
  startPrivateRegion,
  startRegionReplica,
  startSharedRegion,
} from '../support/regions.ts';
import type { Replica, SharedStore } from '../support/replicas.ts';
import { httpGet, parseScrape, sampleValue } from '../support/scrape.ts';

/** How long a pushed entry may take to arrive on this shared, noisy machine. */
const ARRIVAL_MS = 60_000;
const PUSH_TOKEN = 'push-token-of-region-a-0123456789';
const CHECK_TOKEN = 'check-token-of-the-test-0123456789';

const tokensFile = (pushPermissions: string[]) =>
  JSON.stringify({
    tokens: [
      {
        name: 'region-a',
        token: PUSH_TOKEN,
        grants: [{ instance: '*', permissions: pushPermissions }],
      },
      { name: 'test', token: CHECK_TOKEN, grants: [{ instance: '*', permissions: ['read'] }] },
    ],
  });

describe('replication to a peer that refuses the pushes', () => {
  let dir: string;
  let tokensPath: string;
  let regionA: PrivateRegion;
  let regionB: { store: SharedStore; close(): Promise<void> };
  let replicaA: Replica;
  let replicaB: Replica;
  let a: TestClient;
  let b: TestClient;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tessera-refused-'));
    tokensPath = join(dir, 'tokens.json');
    await writeFile(tokensPath, tokensFile(['read']));
    [regionA, regionB] = await Promise.all([
      startPrivateRegion('refused-a'),
      startSharedRegion('refused-b'),
    ]);
    replicaB = await startRegionReplica(regionB.store, {
      region: 'b',
      env: { TESSERA_AUTH_TOKENS_FILE: tokensPath },
    });
    const peers = [{ name: 'b', endpoint: `grpc://${replicaB.address}`, token: PUSH_TOKEN }];
    replicaA = await startRegionReplica(regionA.store, {
      region: 'a',
      replication: 'on',
      env: { TESSERA_PEERS: JSON.stringify(peers), TESSERA_HTTP_LISTEN: '127.0.0.1:0' },
    });
    a = connect(replicaA.address);
    b = connect(replicaB.address, { headers: { authorization: `Bearer ${CHECK_TOKEN}` } });
  });

  after(async () => {
    a?.close();
    b?.close();
    await Promise.allSettled([replicaA?.stop(), replicaB?.stop()]);
    await Promise.allSettled([regionA?.close(), regionB?.close()]);
    await rm(dir, { recursive: true, force: true });
  });

  const lagOfA = async (): Promise<number | undefined> => {
    const entry = replicaA.server.logs.find((line) => line.msg === 'listening');
    const { body } = await httpGet(entry?.httpAddress as string, '/metrics');
    return sampleValue(parseScrape(body), 'tessera_replication_lag_entries', { peer: 'b' });
  };
  const until = async (what: string, done: () => Promise<boolean>) => {
    const deadline = Date.now() + ARRIVAL_MS;
    while (!(await done())) {
      assert.ok(Date.now() < deadline, `timed out: ${what}`);
      await sleep(200);
    }
  };
  const refusals = () =>
    replicaA.server.logs.filter(
      (line) => line.msg === 'replication to a peer region failed; retrying the same entries',
    ).length;

  it('keeps and retries what B refuses, and delivers it once B accepts', async () => {
    const data = randomBlob(50_000);
    const digest: Digest = await uploadWhole(a, data);

    await until('A is refused at least twice', async () => refusals() >= 2);
    assert.deepEqual(await missingHashes(b, [digest]), [digest.hash], 'B has not committed it');
    assert.ok(((await lagOfA()) ?? 0) >= 1, 'the refused entry is still owed to B');

    await writeFile(tokensPath, tokensFile(['read', 'write']));
    await until('the blob reaches B', async () => (await missingHashes(b, [digest])).length === 0);
    assert.ok((await b.read(blobName(digest))).data.equals(data));
    await until('the lag drains to 0', async () => (await lagOfA()) === 0);
  });
});
