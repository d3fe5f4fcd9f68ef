// Smoke test of the test services: the shared Redis and S3 server answer the calls the cache makes,
// and a private gateway or Redis can be stopped and brought back. Runs against whatever
// getServices() resolves to (local RGW, or MinIO and Redis named in the environment).
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import {
  AbortMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { Redis } from 'ioredis';
import {
  createTestS3Client,
  getServices,
  localServicesAvailable,
  startRedis,
  startRgw,
  type TestServices,
} from './support/services/index.ts';

const MiB = 1024 * 1024;
const MIN_PART_SIZE_BYTES = 5 * MiB;

function chunkedStream(data: Buffer, chunkBytes: number): Readable {
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < data.length; offset += chunkBytes) {
    chunks.push(data.subarray(offset, offset + chunkBytes));
  }
  return Readable.from(chunks);
}

async function readAll(body: unknown): Promise<Buffer> {
  assert.ok(body instanceof Readable, 'expected a Node stream body');
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

describe('shared test services', { timeout: 120_000 }, () => {
  let services: TestServices;
  let s3: S3Client;
  let redis: Redis;
  const prefix = `services-test/${randomUUID()}/`;

  before(async () => {
    services = await getServices();
    s3 = createTestS3Client(services.s3);
    redis = new Redis(services.redisUrl, { keyPrefix: prefix, maxRetriesPerRequest: 1 });
  });

  after(async () => {
    const { Contents = [] } = await s3.send(
      new ListObjectsV2Command({ Bucket: services.s3.bucket, Prefix: prefix }),
    );
    const keys = Contents.flatMap((object) => (object.Key ? [{ Key: object.Key }] : []));
    if (keys.length > 0) {
      await s3.send(
        new DeleteObjectsCommand({ Bucket: services.s3.bucket, Delete: { Objects: keys } }),
      );
    }
    s3.destroy();
    await redis.quit();
  });

  it('reads back from redis a value set under a per-test prefix', async () => {
    await redis.set('greeting', 'hello', 'PX', 60_000);

    assert.equal(await redis.get('greeting'), 'hello');
    assert.ok((await redis.pttl('greeting')) > 0);
  });

  it('stores a streamed PutObject and serves it whole and by range', async () => {
    const key = `${prefix}streamed`;
    const data = randomBytes(256 * 1024);

    await s3.send(
      new PutObjectCommand({
        Bucket: services.s3.bucket,
        Key: key,
        Body: chunkedStream(data, 64 * 1024),
        ContentLength: data.length,
      }),
    );

    const whole = await s3.send(new GetObjectCommand({ Bucket: services.s3.bucket, Key: key }));
    assert.equal(sha256(await readAll(whole.Body)), sha256(data));
    const middle = await s3.send(
      new GetObjectCommand({ Bucket: services.s3.bucket, Key: key, Range: 'bytes=1000-1999' }),
    );
    assert.equal(middle.ContentRange, `bytes 1000-1999/${data.length}`);
    assert.deepEqual(await readAll(middle.Body), data.subarray(1000, 2000));
    const suffix = await s3.send(
      new GetObjectCommand({ Bucket: services.s3.bucket, Key: key, Range: 'bytes=-10' }),
    );
    assert.deepEqual(await readAll(suffix.Body), data.subarray(data.length - 10));
  });

  it('completes a 12 MiB multipart upload whose size HeadObject reports', async () => {
    const key = `${prefix}multipart`;
    const data = randomBytes(12 * MiB);

    const upload = new Upload({
      client: s3,
      params: { Bucket: services.s3.bucket, Key: key, Body: chunkedStream(data, MiB) },
      partSize: MIN_PART_SIZE_BYTES,
      queueSize: 2,
    });
    await upload.done();

    const head = await s3.send(new HeadObjectCommand({ Bucket: services.s3.bucket, Key: key }));
    assert.equal(head.ContentLength, data.length);
    // RGW leaves the ETag of CompleteMultipartUpload empty; HeadObject has the real one.
    assert.match(head.ETag ?? '', /-3"$/);
    const got = await s3.send(new GetObjectCommand({ Bucket: services.s3.bucket, Key: key }));
    assert.equal(sha256(await readAll(got.Body)), sha256(data));
  });

  it('no longer lists a multipart upload once it is aborted', async () => {
    const key = `${prefix}aborted`;
    const bucket = services.s3.bucket;
    const { UploadId } = await s3.send(
      new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }),
    );
    assert.ok(UploadId);
    const part = randomBytes(1024);
    await s3.send(
      new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: 1, Body: part }),
    );
    const listUploads = async () => {
      const list = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: key }));
      return (list.Uploads ?? []).map((upload) => upload.UploadId);
    };
    assert.deepEqual(await listUploads(), [UploadId]);

    await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId }));

    assert.deepEqual(await listUploads(), []);
  });
});

describe('private test services', { timeout: 120_000 }, () => {
  const available = localServicesAvailable();

  it('fails S3 requests while the gateway is stopped and serves them after it restarts', {
    skip: available.rgw ? false : 'radosgw and ceph are not installed',
  }, async () => {
    const rgw = await startRgw({ bucket: 'gateway-restart' });
    // One attempt per request, so the failure shows at once instead of after SDK retries.
    const s3 = createTestS3Client(rgw, { maxAttempts: 1 });
    const put = (key: string) =>
      s3.send(new PutObjectCommand({ Bucket: rgw.bucket, Key: key, Body: key }));
    try {
      await put('before');

      await rgw.stopGateway();
      await assert.rejects(put('while-stopped'), /ECONNREFUSED/);
      await rgw.startGateway();

      await put('after');
      const got = await s3.send(new GetObjectCommand({ Bucket: rgw.bucket, Key: 'before' }));
      assert.equal((await readAll(got.Body)).toString(), 'before');
    } finally {
      s3.destroy();
      await rgw.stop();
    }
  });

  it('serves an empty redis on the same port after a kill and a start', {
    skip: available.redis ? false : 'redis-server is not installed',
  }, async () => {
    const server = await startRedis();
    const client = new Redis(server.url, { maxRetriesPerRequest: 1, lazyConnect: true });
    try {
      await client.connect();
      await client.set('key', 'value');

      await server.kill();
      await server.start();

      assert.equal(await client.get('key'), null);
    } finally {
      client.disconnect();
      await server.stop();
    }
  });
});
