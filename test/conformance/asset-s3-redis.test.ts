import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { assetKey } from '../../src/asset/asset-record.ts';
import { connectAssets, timestampIn } from '../support/asset-client.ts';
import { connect, digestOf, randomBlob } from '../support/client.ts';
import { getServices } from '../support/services/index.ts';
import { describeAssetConformance } from './asset-suite.ts';
import { type ServerUnderTest, startS3Redis } from './harness.ts';

describeAssetConformance('S3 + Redis', () => startS3Redis());

describe('remote asset records in Redis', () => {
  const LEASE_SECONDS = 3600;
  let server: ServerUnderTest;
  let redis: Redis;
  before(async () => {
    server = await startS3Redis({ TESSERA_CAS_LEASE_SECONDS: String(LEASE_SECONDS) });
    redis = new Redis((await getServices()).redisUrl);
  });
  after(async () => {
    redis.disconnect();
    await server.stop();
  });

  const pushAndFindKey = async (instance: string, request: object) => {
    const client = connect(server.address);
    const assets = connectAssets(server.address);
    try {
      const data = randomBlob(321);
      await client.unary(client.cas, 'BatchUpdateBlobs', {
        requests: [{ digest: digestOf(data), data }],
      });
      const name = `urn:test:${randomUUID()}`;
      await assets.pushBlob({
        instanceName: instance,
        uris: [name],
        blobDigest: digestOf(data),
        ...request,
      });
      // The instance is unique to this test, so the pattern matches this push's key only.
      return await redis.keys(`*asset:${instance}:${assetKey('blob', name, [])}`);
    } finally {
      assets.close();
      client.close();
    }
  };

  it('keeps a record under asset:{instance}:{key} for the CAS lease', async () => {
    const keys = await pushAndFindKey(`team-${randomUUID()}`, {});
    assert.equal(keys.length, 1);
    const ttl = await redis.pttl(keys[0]!);
    assert.ok(ttl > (LEASE_SECONDS - 60) * 1000 && ttl <= LEASE_SECONDS * 1000, `ttl ${ttl}`);
  });

  it('lets a record expire at expire_at when that comes before the lease ends', async () => {
    const keys = await pushAndFindKey(`team-${randomUUID()}`, { expireAt: timestampIn(600_000) });
    assert.equal(keys.length, 1);
    const ttl = await redis.pttl(keys[0]!);
    assert.ok(ttl > 540_000 && ttl <= 600_000, `ttl ${ttl}`);
  });
});
