// The local read tier against real Redis and S3 (RGW): a blob read often is copied to local disk
// and then served from there — shown by deleting its S3 object behind the server's back and
// reading it still, compressed-blobs reads included — but only while its commit entry exists; a
// fill whose bytes do not match the digest leaves nothing behind; a damaged copy is found and the
// read falls back to S3; the tier stays within its size and survives a restart.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { DeleteObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { status } from '@grpc/grpc-js';
import { Redis } from 'ioredis';
import { decompress } from 'zstd-napi';
import { type ServerUnderTest, startS3Redis } from '../conformance/harness.ts';
import {
  blobName,
  codeOf,
  connect,
  type Digest,
  digestOf,
  randomBlob,
  type TestClient,
  uploadName,
} from '../support/client.ts';
import { createTestS3Client, getServices } from '../support/services/index.ts';

const KIB = 1024;
const POLL_DEADLINE_MS = 15_000;

describe('local read tier (S3 + Redis)', () => {
  let s3: S3Client;
  let bucket: string;
  let redis: Redis;
  const cleanup: (() => Promise<void>)[] = [];

  before(async () => {
    const services = await getServices();
    s3 = createTestS3Client(services.s3);
    bucket = services.s3.bucket;
    redis = new Redis(services.redisUrl);
  });
  after(async () => {
    for (const step of cleanup.reverse()) await step();
    s3.destroy();
    redis.disconnect();
  });

  /** A server with the read tier on, in `dir`, under an S3 prefix the test knows. */
  async function start(dir: string, prefix: string, cacheBytes = 4 * 1024 * KIB) {
    const server = await startS3Redis({
      TESSERA_S3_PREFIX: prefix,
      TESSERA_REDIS_PREFIX: `tessera-test:${prefix}`,
      TESSERA_READ_CACHE_BYTES: String(cacheBytes),
      TESSERA_READ_CACHE_DIR: dir,
      TESSERA_READ_CACHE_ADMIT_AFTER_READS: '2',
    });
    const client = connect(server.address);
    let stopped = false;
    const stop = async () => {
      if (stopped) return;
      stopped = true;
      client.close();
      await server.stop();
    };
    cleanup.push(stop);
    return { server, client, stop };
  }

  async function setUp(cacheBytes?: number) {
    const dir = await mkdtemp(join(tmpdir(), 'tessera-read-cache-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const prefix = `rc-${randomUUID().slice(0, 8)}/`;
    return { dir, prefix, ...(await start(dir, prefix, cacheBytes)) };
  }

  const copies = async (dir: string) => (await readdir(dir)).sort();
  const copyName = (d: Digest) => `sha256-${d.hash}-${d.sizeBytes}`;
  const deleteObject = (prefix: string, d: Digest) =>
    s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: `${prefix}cas/sha256/${d.hash}` }));
  async function waitForCopies(dir: string, names: string[]) {
    const deadline = Date.now() + POLL_DEADLINE_MS;
    for (;;) {
      const present = await copies(dir);
      if (names.every((name) => present.includes(name))) return;
      assert.ok(Date.now() < deadline, `copies ${names.join(', ')} never appeared in ${present}`);
      await delay(20);
    }
  }
  async function waitForMetric(server: ServerUnderTest, line: RegExp) {
    const deadline = Date.now() + POLL_DEADLINE_MS;
    for (;;) {
      if (line.test(await server.app.metrics.scrape())) return;
      assert.ok(Date.now() < deadline, `metric ${line} never appeared`);
      await delay(20);
    }
  }
  async function uploadAndWarm(client: TestClient, dir: string, data: Buffer) {
    const digest = digestOf(data);
    await client.write(uploadName(digest), data);
    for (let i = 0; i < 2; i++) assert.ok((await client.read(blobName(digest))).data.equals(data));
    await waitForCopies(dir, [copyName(digest)]);
    return digest;
  }

  it('serves a blob read often from its local copy, whole and in ranges', async () => {
    const { dir, prefix, server, client } = await setUp();
    const data = randomBlob(300 * KIB);
    const once = randomBlob(10 * KIB);
    await client.write(uploadName(digestOf(once)), once);
    await client.read(blobName(digestOf(once)));
    const digest = await uploadAndWarm(client, dir, data);
    assert.ok((await readFile(join(dir, copyName(digest)))).equals(data));
    assert.ok(!(await copies(dir)).includes(copyName(digestOf(once))), 'read once: not copied');

    await deleteObject(prefix, digest);

    assert.ok((await client.read(blobName(digest))).data.equals(data));
    const ranged = await client.read(blobName(digest), { offset: 1000, limit: 5000 });
    assert.ok(ranged.data.equals(data.subarray(1000, 6000)));
    const scraped = await server.app.metrics.scrape();
    assert.match(scraped, /tessera_read_cache_reads_total\{result="hit"\} 2/);
    assert.match(scraped, /tessera_read_cache_fills_total\{outcome="ok"\} 1/);
    assert.match(scraped, new RegExp(`tessera_read_cache_bytes ${data.length}\\b`));
  });

  it('serves compressed-blobs reads from the local copy too', async () => {
    const { dir, prefix, client } = await setUp();
    const data = Buffer.alloc(200 * KIB, 'compressible build output\n');
    const digest = await uploadAndWarm(client, dir, data);

    await deleteObject(prefix, digest);

    const read = await client.read(`compressed-blobs/zstd/${digest.hash}/${digest.sizeBytes}`);
    assert.ok(read.data.length < data.length / 10, `${read.data.length} compressed bytes`);
    assert.ok(decompress(read.data).equals(data));
  });

  it('keeps no copy when the bytes fetched for it do not hash to the digest', async () => {
    const { dir, prefix, server, client } = await setUp();
    const data = randomBlob(64 * KIB);
    const digest = digestOf(data);
    await client.write(uploadName(digest), data);
    await client.read(blobName(digest));
    const damaged = Buffer.from(data);
    damaged[1000] = (damaged[1000] ?? 0) ^ 0x01;
    const key = `${prefix}cas/sha256/${digest.hash}`;
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: damaged }));

    // The second read admits the blob; its fill fetches the damaged object.
    await client.read(blobName(digest)).catch(() => undefined);
    await waitForMetric(server, /tessera_read_cache_fills_total\{outcome="failed"\} 1/);

    assert.deepEqual(await copies(dir), [], 'neither a copy nor a temp file is left');
    assert.doesNotMatch(
      await server.app.metrics.scrape(),
      /tessera_read_cache_fills_total\{outcome="ok"\}/,
    );
  });

  it('refuses and removes the copy once the commit entry is gone', async () => {
    const { dir, prefix, client } = await setUp();
    const digest = await uploadAndWarm(client, dir, randomBlob(50 * KIB));

    // As garbage collection or an expired lease would leave it.
    assert.equal(await redis.del(`tessera-test:${prefix}cas:sha256:${digest.hash}`), 1);

    await assert.rejects(client.read(blobName(digest)), (error) => {
      assert.equal(codeOf(error), status.NOT_FOUND);
      return true;
    });
    assert.deepEqual(await copies(dir), []);
  });

  it('finds a damaged copy, removes it and serves the blob from S3', async () => {
    const { dir, server, client } = await setUp();
    const data = randomBlob(64 * KIB);
    const digest = await uploadAndWarm(client, dir, data);
    const path = join(dir, copyName(digest));
    const damaged = await readFile(path);
    damaged[40_000] = (damaged[40_000] ?? 0) ^ 0x01;
    await writeFile(path, damaged);

    const ranged = await client.read(blobName(digest), { offset: 39_990, limit: 20 });

    assert.ok(ranged.data.equals(data.subarray(39_990, 40_010)));
    assert.ok(!(await copies(dir)).includes(copyName(digest)));
    assert.match(
      await server.app.metrics.scrape(),
      /tessera_read_cache_reads_total\{result="corrupt"\} 1/,
    );
    assert.ok((await client.read(blobName(digest))).data.equals(data));
  });

  it('keeps within its size, evicting the least recently used copy', async () => {
    const { dir, client } = await setUp(250 * KIB);
    const [a, b, c] = [randomBlob(100 * KIB), randomBlob(100 * KIB), randomBlob(100 * KIB)];
    const da = await uploadAndWarm(client, dir, a);
    const db = await uploadAndWarm(client, dir, b);
    await client.read(blobName(da)); // a is now more recent than b
    const dc = await uploadAndWarm(client, dir, c);

    assert.deepEqual(await copies(dir), [copyName(da), copyName(dc)].sort());
    assert.ok((await client.read(blobName(db))).data.equals(b));
  });

  it('survives a restart: copies are found again and temp files removed', async () => {
    const { dir, prefix, client, stop } = await setUp();
    const data = randomBlob(80 * KIB);
    const digest = await uploadAndWarm(client, dir, data);
    await stop();
    await writeFile(join(dir, `${copyName(digest)}.abc.tmp`), 'half a fill');
    await writeFile(join(dir, copyName(digestOf(Buffer.from('x')))), 'wrong size');

    const again = await start(dir, prefix);
    await deleteObject(prefix, digest);

    assert.deepEqual(await copies(dir), [copyName(digest)]);
    assert.ok((await again.client.read(blobName(digest))).data.equals(data));
  });
});
