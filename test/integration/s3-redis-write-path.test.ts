// The S3 + Redis write and read paths against a real RADOS Gateway and a real redis-server,
// including what happens when either one dies in the middle of an upload.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
} from '@aws-sdk/client-s3';
import { status } from '@grpc/grpc-js';
import {
  blobName,
  codeOf,
  type Digest,
  digestOf,
  randomBlob,
  uploadName,
} from '../support/client.ts';
import { type Rig, startRig } from '../support/rig.ts';
import {
  getServices,
  type RedisServer,
  type RgwServer,
  startRedis,
  startRgw,
} from '../support/services/index.ts';

const MIB = 1024 * 1024;

const RIG_ENV = {
  TESSERA_S3_MULTIPART_THRESHOLD_BYTES: String(6 * MIB),
  TESSERA_S3_PART_SIZE_BYTES: String(5 * MIB),
};

async function openMultipartUploads(rig: Rig): Promise<number> {
  const answer = await rig.s3.send(
    new ListMultipartUploadsCommand({ Bucket: rig.bucket, Prefix: rig.prefix }),
  );
  return answer.Uploads?.length ?? 0;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 30_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const isUnavailable = (error: unknown) => codeOf(error) === status.UNAVAILABLE;

describe('S3 + Redis write path', () => {
  let rig: Rig;
  before(async () => {
    const services = await getServices();
    rig = await startRig({ s3: services.s3, redisUrl: services.redisUrl, env: RIG_ENV });
  });
  after(() => rig.close());

  it('writes the whole object under its content key before the commit entry', async () => {
    for (const size of [1000, 20 * MIB + 3]) {
      const data = randomBlob(size);
      const digest = digestOf(data);
      await rig.client.write(uploadName(digest), data, { chunkBytes: MIB });
      const head = await rig.s3.send(
        new HeadObjectCommand({ Bucket: rig.bucket, Key: rig.objectKey(digest) }),
      );
      assert.equal(head.ContentLength, size);
      assert.equal(await rig.redis.get(rig.commitKey(digest)), String(size));
      const leaseKey = rig.commitKey(digest).replace(/cas:sha256:.*$/, 'gc:lease');
      const touched = Number(await rig.redis.zscore(leaseKey, `sha256:${digest.hash}`));
      assert.ok(Date.now() - touched < 60_000, 'commit entry has a lease');
    }
    assert.equal(await openMultipartUploads(rig), 0);
    assert.deepEqual(await readdir(rig.stagingDir), []);
  });

  it('stores exactly the bytes sent, in messages of any size across write batches and parts', async () => {
    // 3 parts of 5 MiB; messages straddle the 1 MiB write batches and the part boundaries, and
    // some are a batch or more on their own.
    const data = randomBlob(12 * MIB + 7);
    const digest = digestOf(data);
    const sizes = [1, 16 * 1024, MIB + 3, 3 * MIB, 5, 700 * 1024, MIB];
    assert.equal(
      await rig.client.write(uploadName(digest), data, { chunkBytes: sizes }),
      data.length,
    );
    const stored = await rig.s3.send(
      new GetObjectCommand({ Bucket: rig.bucket, Key: rig.objectKey(digest) }),
    );
    const bytes = Buffer.from(
      await (stored.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
    );
    assert.ok(bytes.equals(data), 'the object holds the bytes sent, in order');
    assert.deepEqual(await readdir(rig.stagingDir), []);
  });

  it('answers NOT_FOUND for a commit whose object vanished, drops it and warns', async () => {
    const data = randomBlob(4096);
    const digest = digestOf(data);
    await rig.client.write(uploadName(digest), data);
    const { DeleteObjectCommand } = await import('@aws-sdk/client-s3');
    await rig.s3.send(new DeleteObjectCommand({ Bucket: rig.bucket, Key: rig.objectKey(digest) }));

    await assert.rejects(rig.client.read(blobName(digest)), (e) => codeOf(e) === status.NOT_FOUND);
    assert.equal(await rig.redis.exists(rig.commitKey(digest)), 0);
    assert.ok(
      rig.logs.some((l) => l.level === 'warn' && String(l.msg).includes('missing object')),
      'a warning names the stale entry',
    );
    // Uploading it again heals it.
    await rig.client.write(uploadName(digest), data);
    assert.ok((await rig.client.read(blobName(digest))).data.equals(data));
  });

  it("advertises S3's 5 TiB object limit and refuses larger blobs before storing anything", async () => {
    const caps = await rig.client.unary<{ cacheCapabilities: { maxCasBlobSizeBytes: number } }>(
      rig.client.capabilities,
      'GetCapabilities',
      {},
    );
    const limit = caps.cacheCapabilities.maxCasBlobSizeBytes;
    assert.equal(limit, 5 * 1024 ** 4);
    const huge = { hash: digestOf(randomBlob(10)).hash, sizeBytes: limit + 1 };
    await assert.rejects(
      rig.client.write(uploadName(huge), Buffer.from('x')),
      (e: Error) =>
        codeOf(e) === status.INVALID_ARGUMENT && /max_cas_blob_size_bytes/.test(e.message),
    );
    assert.equal(await openMultipartUploads(rig), 0);
    assert.deepEqual(await readdir(rig.stagingDir), []);
  });

  it('refreshes the lease of blobs FindMissingBlobs finds', async () => {
    const data = randomBlob(100);
    const digest = digestOf(data);
    await rig.client.write(uploadName(digest), data);
    const leaseKey = rig.commitKey(digest).replace(/cas:sha256:.*$/, 'gc:lease');
    const member = `sha256:${digest.hash}`;
    await rig.redis.zadd(leaseKey, Date.now() - 3_600_000, member);
    await rig.client.unary(rig.client.cas, 'FindMissingBlobs', { blobDigests: [digest] });
    assert.ok(Date.now() - Number(await rig.redis.zscore(leaseKey, member)) < 60_000);
  });
});

describe('when the S3 server dies mid-upload', () => {
  let rgw: RgwServer;
  let rig: Rig;
  before(async () => {
    const services = await getServices();
    rgw = await startRgw();
    rig = await startRig({ s3: rgw, redisUrl: services.redisUrl, env: RIG_ENV });
  });
  after(async () => {
    await rig.close();
    await rgw.stop();
  });

  it('gives UNAVAILABLE, commits nothing, and accepts the upload once S3 is back', async () => {
    const data = randomBlob(2 * MIB);
    const digest = digestOf(data);
    const name = uploadName(digest);
    await rig.client.write(name, data.subarray(0, MIB), { finish: false }).catch(() => undefined);
    await rgw.killGateway();

    await assert.rejects(rig.client.write(name, data, { offset: MIB }), isUnavailable);
    assert.equal(await rig.redis.exists(rig.commitKey(digest)), 0);
    const missing = await rig.client.unary<{ missingBlobDigests: Digest[] }>(
      rig.client.cas,
      'FindMissingBlobs',
      { blobDigests: [digest] },
    );
    assert.deepEqual(missing.missingBlobDigests, [digest]);
    await assert.rejects(rig.client.read(blobName(digest)), (e) => codeOf(e) === status.NOT_FOUND);
    assert.deepEqual(await readdir(rig.stagingDir), []);

    await rgw.startGateway();
    assert.equal(await rig.client.write(uploadName(digest), data), data.length);
    assert.ok((await rig.client.read(blobName(digest))).data.equals(data));
  });

  it('aborts the multipart upload it broke off once S3 is back', async () => {
    const data = randomBytes(160 * MIB);
    const digest = digestOf(data);
    const writing = rig.client.write(uploadName(digest), data, { chunkBytes: MIB });
    await until('a multipart upload to start', async () => (await openMultipartUploads(rig)) > 0);
    await rgw.killGateway();

    await assert.rejects(writing, isUnavailable);
    assert.equal(await rig.redis.exists(rig.commitKey(digest)), 0);
    await rgw.startGateway();
    await until('the broken multipart upload to be aborted', async () => {
      return (await openMultipartUploads(rig)) === 0;
    });
    await assert.rejects(
      rig.s3.send(new HeadObjectCommand({ Bucket: rig.bucket, Key: rig.objectKey(digest) })),
    );
  });
});

describe('when Redis dies mid-upload', () => {
  let redisServer: RedisServer;
  let rig: Rig;
  before(async () => {
    const services = await getServices();
    redisServer = await startRedis();
    rig = await startRig({ s3: services.s3, redisUrl: redisServer.url, env: RIG_ENV });
  });
  after(async () => {
    await rig.close();
    await redisServer.stop();
  });

  it('gives UNAVAILABLE for writes, lookups and reads, and recovers when Redis returns', async () => {
    const data = randomBlob(MIB);
    const digest = digestOf(data);
    const name = uploadName(digest);
    await rig.client.write(name, data.subarray(0, 1000), { finish: false }).catch(() => undefined);
    await redisServer.kill();

    await assert.rejects(rig.client.write(name, data, { offset: 1000 }), isUnavailable);
    await assert.rejects(
      rig.client.unary(rig.client.cas, 'FindMissingBlobs', { blobDigests: [digest] }),
      isUnavailable,
    );
    await assert.rejects(rig.client.read(blobName(digest)), isUnavailable);

    await redisServer.start();
    const missing = await until('the server to reach Redis again', async () => {
      const answer = await rig.client.unary<{ missingBlobDigests: Digest[] }>(
        rig.client.cas,
        'FindMissingBlobs',
        { blobDigests: [digest] },
      );
      return answer.missingBlobDigests;
    });
    assert.deepEqual(missing, [digest]);
    // The bytes received before the outage are still there: the upload resumes where it stopped.
    const progress = await rig.client.unary<{ committedSize: number }>(
      rig.client.byteStream,
      'QueryWriteStatus',
      { resourceName: name },
    );
    assert.equal(progress.committedSize, 1000);
    assert.equal(await rig.client.write(name, data, { offset: 1000 }), data.length);
    assert.ok((await rig.client.read(blobName(digest))).data.equals(data));
    assert.deepEqual(await readdir(rig.stagingDir), []);
  });
});
