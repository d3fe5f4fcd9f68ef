// A Redis failover to a replica that lost the last writes: commits and action results the new
// primary never saw must make blobs look missing (so clients upload them again), never present
// without their bytes, and action results must not be served for outputs that look missing.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import {
  blobName,
  codeOf,
  type Digest,
  digestOf,
  randomBlob,
  type TestClient,
  uploadName,
} from '../support/client.ts';
import { type Rig, startRig } from '../support/rig.ts';
import { getServices, type RedisServer, startRedis } from '../support/services/index.ts';

describe('after Redis loses its most recent writes', () => {
  let redis: RedisServer;
  let rig: Rig;
  let client: TestClient;

  before(async () => {
    const { s3 } = await getServices();
    redis = await startRedis();
    rig = await startRig({ s3, redisUrl: redis.url });
    client = rig.client;
  });
  after(async () => {
    await rig.close();
    await redis.stop();
  });

  it('reports lost commits missing, withholds results, and heals on re-upload', async () => {
    const output = randomBlob(5000);
    const digest = digestOf(output);
    await client.write(uploadName(digest), output);
    const action = digestOf(randomBlob(64));
    await client.unary(client.actionCache, 'UpdateActionResult', {
      actionDigest: action,
      actionResult: { outputFiles: [{ path: 'out', digest }] },
    });

    // The primary dies and a replica that never received those writes takes over: here, the same
    // port comes back empty (this Redis keeps no data across a restart).
    await redis.kill();
    await redis.start();

    const missing = await until(async () => {
      const answer = await client.unary<{ missingBlobDigests: Digest[] }>(
        client.cas,
        'FindMissingBlobs',
        { blobDigests: [digest] },
      );
      return answer.missingBlobDigests;
    });
    assert.deepEqual(missing, [digest]);
    await assert.rejects(client.read(blobName(digest)), (e) => codeOf(e) === status.NOT_FOUND);
    await assert.rejects(
      client.unary(client.actionCache, 'GetActionResult', { actionDigest: action }),
      (e) => codeOf(e) === status.NOT_FOUND,
    );

    // The client uploads again (its object is still in S3 and is simply rewritten).
    await client.write(uploadName(digest), output);
    assert.ok((await client.read(blobName(digest))).data.equals(output));
  });
});

/** Retries `probe` until the server reaches the restarted Redis again (bounded). */
async function until<T>(probe: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      return await probe();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
