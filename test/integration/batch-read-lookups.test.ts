// BatchReadBlobs in S3 + Redis mode looks all its digests up in one commit-index round trip, not
// one per blob, and still answers each blob on its own: the bytes of a committed one, NOT_FOUND for
// one never uploaded and for one whose object vanished from S3 (its stale entry dropped).
// Counted on a real server through tessera_redis_commands_total: a commit-index lookup is exactly
// one ZMSCORE and one MGET, and nothing else in the server sends either command.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { status } from '@grpc/grpc-js';
import { type Digest, digestOf, randomBlob } from '../support/client.ts';
import { type Rig, startRig } from '../support/rig.ts';
import { parseScrape, sumOf } from '../support/scrape.ts';
import { getServices } from '../support/services/index.ts';

const BLOBS = 100;

interface ReadEntry {
  digest: Digest;
  data: Buffer;
  status: { code: number; message: string };
}

describe('BatchReadBlobs lookups', () => {
  let rig: Rig;
  const blobs = Array.from({ length: BLOBS }, (_, i) => randomBlob(1000 + i));

  before(async () => {
    const { s3, redisUrl } = await getServices();
    rig = await startRig({ s3, redisUrl });
    const update = await rig.client.unary<{ responses: { status: { code: number } }[] }>(
      rig.client.cas,
      'BatchUpdateBlobs',
      { requests: blobs.map((data) => ({ digest: digestOf(data), data })) },
    );
    assert.deepEqual(
      update.responses.map((r) => r.status.code),
      blobs.map(() => status.OK),
    );
  });
  after(() => rig?.close());

  async function lookupCommands(): Promise<{ zmscore: number; mget: number }> {
    const samples = parseScrape(await rig.app.metrics.scrape());
    return {
      zmscore: sumOf(samples, 'tessera_redis_commands_total', { command: 'zmscore' }),
      mget: sumOf(samples, 'tessera_redis_commands_total', { command: 'mget' }),
    };
  }

  it('looks up a batch of 100 committed blobs, one never uploaded and one vanished, once', async () => {
    const digests = blobs.map(digestOf);
    const absent = digestOf(randomBlob(50));
    const vanishedIndex = 37;
    const vanished = digests[vanishedIndex] as Digest;
    await rig.s3.send(
      new DeleteObjectCommand({ Bucket: rig.bucket, Key: rig.objectKey(vanished) }),
    );

    const before = await lookupCommands();
    const read = await rig.client.unary<{ responses: ReadEntry[] }>(
      rig.client.cas,
      'BatchReadBlobs',
      { digests: [...digests, absent] },
    );
    const after = await lookupCommands();
    assert.deepEqual(
      { zmscore: after.zmscore - before.zmscore, mget: after.mget - before.mget },
      { zmscore: 1, mget: 1 },
      'one commit-index lookup for the whole batch',
    );

    assert.equal(read.responses.length, BLOBS + 1);
    for (const [i, data] of blobs.entries()) {
      const entry = read.responses[i];
      assert.equal(entry?.digest.hash, digests[i]?.hash, `entry ${i} answers its own digest`);
      if (i === vanishedIndex) continue;
      assert.equal(entry?.status.code, status.OK, entry?.status.message);
      assert.ok(entry?.data.equals(data), `blob ${i} read back exactly`);
    }
    const gone = read.responses[vanishedIndex];
    assert.equal(gone?.status.code, status.NOT_FOUND, gone?.status.message);
    assert.equal(gone?.data.length, 0);
    assert.equal(await rig.redis.exists(rig.commitKey(vanished)), 0, 'the stale entry is dropped');
    const missing = read.responses[BLOBS];
    assert.equal(missing?.digest.hash, absent.hash);
    assert.equal(missing?.status.code, status.NOT_FOUND, missing?.status.message);

    const found = await rig.client.unary<{ missingBlobDigests: Digest[] }>(
      rig.client.cas,
      'FindMissingBlobs',
      { blobDigests: [vanished, digests[0], absent] },
    );
    assert.deepEqual(
      found.missingBlobDigests.map((d) => d.hash).sort(),
      [vanished.hash, absent.hash].sort(),
    );
  });
});
