// What clients see when S3 misbehaves: a Tessera server in S3 + Redis mode talks to a real RADOS
// Gateway through a proxy that fails, delays, cuts or resets the requests each test names. Under
// every fault a client gets the right bytes or a status to retry on, never wrong or short data
// behind an OK; and with verifyReads=always, an object changed in the bucket is refused and healed.
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { status } from '@grpc/grpc-js';
import { type App, startApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config/load.ts';
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
import { captureLogs } from '../support/logs.ts';
import { type Rig as BaseRig, startRig as startBaseRig } from '../support/rig.ts';
import { type FaultProxy, startFaultProxy } from '../support/s3-fault-proxy.ts';
import { getServices } from '../support/services/index.ts';

const MIB = 1024 * 1024;
/** Blobs at or above this go to S3 in a multipart upload. */
const THRESHOLD_BYTES = 6 * MIB;

interface Rig extends BaseRig {
  readonly proxy: FaultProxy;
}

/** A server whose S3 requests all pass through a fault proxy in front of the real RGW. */
async function startRig(env: Record<string, string> = {}): Promise<Rig> {
  const { s3, redisUrl } = await getServices();
  const proxy = await startFaultProxy(s3.endpoint);
  let base: BaseRig;
  try {
    base = await startBaseRig({
      s3,
      redisUrl,
      s3Endpoint: proxy.endpoint,
      env: {
        TESSERA_S3_MULTIPART_THRESHOLD_BYTES: String(THRESHOLD_BYTES),
        TESSERA_S3_PART_SIZE_BYTES: String(5 * MIB),
        ...env,
      },
    });
  } catch (error) {
    await proxy.close();
    throw error;
  }
  return {
    ...base,
    proxy,
    async close() {
      await base.close();
      await proxy.close();
    },
  };
}

const commitKey = (rig: Rig, d: Digest) => rig.commitKey(d);
const objectKey = (rig: Rig, d: Digest) => rig.objectKey(d);
/** The path of a blob's object, as a regular expression for a fault rule. */
const objectPath = (rig: Rig, d: Digest) => new RegExp(`/${objectKey(rig, d)}(\\?|$)`);

interface BatchReadEntry {
  digest: Digest;
  data: Buffer;
  status: { code: number; message: string };
}

async function batchRead(rig: Rig, digests: Digest[]): Promise<BatchReadEntry[]> {
  const answer = await rig.client.unary<{ responses: BatchReadEntry[] }>(
    rig.client.cas,
    'BatchReadBlobs',
    { digests },
  );
  return answer.responses;
}

/** The write succeeded and reads back whole, or failed UNAVAILABLE with no commit left behind. */
async function assertWholeOrUnavailable(rig: Rig, data: Buffer, writing: Promise<unknown>) {
  const digest = digestOf(data);
  const outcome = await writing.then(
    () => 'ok' as const,
    (error: unknown) => error,
  );
  rig.proxy.clear();
  if (outcome === 'ok') {
    assert.ok((await rig.client.read(blobName(digest))).data.equals(data), 'reads back whole');
    return 'ok';
  }
  assert.equal(codeOf(outcome), status.UNAVAILABLE, String(outcome));
  assert.equal(await rig.redis.exists(commitKey(rig, digest)), 0, 'no commit entry');
  return 'unavailable';
}

/** A ByteStream Read that must fail with a status, or deliver exactly `data`. */
async function assertReadWholeOrFails(rig: Rig, data: Buffer): Promise<'ok' | number> {
  const outcome = await rig.client.read(blobName(digestOf(data))).then(
    (answer) => answer,
    (error: unknown) => error,
  );
  if (outcome instanceof Error) {
    const code = codeOf(outcome);
    assert.ok(code !== undefined && code !== status.OK, `read failed with a status: ${outcome}`);
    return code;
  }
  const { data: received } = outcome as { data: Buffer };
  assert.equal(received.length, data.length, 'an OK read delivers every byte');
  assert.ok(received.equals(data), 'an OK read delivers the right bytes');
  return 'ok';
}

describe('backend faults between Tessera and S3', () => {
  let rig: Rig;
  before(async () => {
    rig = await startRig();
  });
  after(() => rig.close());
  afterEach(() => rig.proxy.clear());

  it('absorbs one SlowDown on PutObject and stores the blob', async () => {
    const data = randomBlob(64 * 1024);
    const digest = digestOf(data);
    const used = rig.proxy.inject({
      method: 'PUT',
      path: objectPath(rig, digest),
      count: 1,
      fault: { kind: 'status', status: 503 },
    });
    assert.equal(await rig.client.write(uploadName(digest), data), data.length);
    assert.equal(used(), 1, 'the fault was hit');
    assert.ok((await rig.client.read(blobName(digest))).data.equals(data));
  });

  it('answers UNAVAILABLE and commits nothing while PutObject keeps failing', async () => {
    for (const code of [500, 503] as const) {
      const data = randomBlob(64 * 1024);
      const digest = digestOf(data);
      rig.proxy.inject({
        method: 'PUT',
        path: objectPath(rig, digest),
        count: Number.POSITIVE_INFINITY,
        fault: { kind: 'status', status: code },
      });
      const outcome = await assertWholeOrUnavailable(
        rig,
        data,
        rig.client.write(uploadName(digest), data),
      );
      assert.equal(outcome, 'unavailable');
      // Once S3 behaves, the same upload succeeds.
      assert.equal(await rig.client.write(uploadName(digest), data), data.length);
      assert.ok((await rig.client.read(blobName(digest))).data.equals(data));
    }
  });

  it('never commits a multipart upload whose UploadPart or Complete failed', async () => {
    const cases = [
      { method: 'PUT', query: 'partNumber=', status: 503 as const, count: 1 },
      { method: 'PUT', query: 'partNumber=', status: 500 as const, count: Infinity },
      { method: 'POST', query: 'uploadId=', status: 500 as const, count: 1 },
      { method: 'POST', query: 'uploadId=', status: 503 as const, count: Infinity },
    ];
    for (const c of cases) {
      const data = randomBlob(THRESHOLD_BYTES + 3 * MIB);
      const digest = digestOf(data);
      rig.proxy.inject({
        method: c.method,
        path: new RegExp(`/${objectKey(rig, digest)}\\?.*${c.query}`),
        count: c.count,
        fault: { kind: 'status', status: c.status },
      });
      const outcome = await assertWholeOrUnavailable(
        rig,
        data,
        rig.client.write(uploadName(digest), data, { chunkBytes: MIB }),
      );
      if (c.count === Infinity) assert.equal(outcome, 'unavailable', JSON.stringify(c));
      if (outcome === 'unavailable') {
        assert.equal(
          await rig.client.write(uploadName(digest), data, { chunkBytes: MIB }),
          data.length,
        );
        assert.ok((await rig.client.read(blobName(digest))).data.equals(data));
      }
    }
  });

  it('answers UNAVAILABLE when the connection resets in the middle of a PUT body', async () => {
    const data = randomBlob(512 * 1024);
    const digest = digestOf(data);
    rig.proxy.inject({
      method: 'PUT',
      path: objectPath(rig, digest),
      count: Number.POSITIVE_INFINITY,
      fault: { kind: 'reset', during: 'request', afterBytes: 100_000 },
    });
    const outcome = await assertWholeOrUnavailable(
      rig,
      data,
      rig.client.write(uploadName(digest), data),
    );
    assert.equal(outcome, 'unavailable');
  });

  it('ends a ByteStream Read with an error when the GET resets mid-body', async () => {
    const data = randomBlob(3 * MIB);
    const digest = digestOf(data);
    await rig.client.write(uploadName(digest), data);
    const used = rig.proxy.inject({
      method: 'GET',
      path: objectPath(rig, digest),
      count: 1,
      fault: { kind: 'reset', during: 'response', afterBytes: MIB + 17 },
    });
    assert.equal(await assertReadWholeOrFails(rig, data), status.UNAVAILABLE);
    assert.equal(used(), 1);
    // Nothing was dropped: the next read is whole.
    assert.equal(await assertReadWholeOrFails(rig, data), 'ok');
  });

  it('ends a ByteStream Read with an error when the GET body is shorter than promised', async () => {
    for (const size of [3 * MIB, 1000]) {
      const data = randomBlob(size);
      const digest = digestOf(data);
      await rig.client.write(uploadName(digest), data);
      rig.proxy.inject({
        method: 'GET',
        path: objectPath(rig, digest),
        count: 1,
        fault: { kind: 'short-body', bytes: MIB },
      });
      assert.equal(await assertReadWholeOrFails(rig, data), status.UNAVAILABLE);
      assert.equal(await assertReadWholeOrFails(rig, data), 'ok');
    }
  });

  it('never gives a BatchReadBlobs entry OK with wrong data when GETs are cut', async () => {
    const blobs = [randomBlob(200_000), randomBlob(300_000), randomBlob(10)];
    for (const data of blobs) await rig.client.write(uploadName(digestOf(data)), data);
    const [reset, short] = blobs.map(digestOf) as [Digest, Digest];
    rig.proxy.inject({
      method: 'GET',
      path: objectPath(rig, reset),
      count: 1,
      fault: { kind: 'reset', during: 'response', afterBytes: 50_000 },
    });
    rig.proxy.inject({
      method: 'GET',
      path: objectPath(rig, short),
      count: 1,
      fault: { kind: 'short-body', bytes: 100_000 },
    });
    const entries = await batchRead(rig, blobs.map(digestOf));
    assert.equal(entries.length, blobs.length);
    for (const [i, entry] of entries.entries()) {
      const data = blobs[i] as Buffer;
      if (entry.status.code === status.OK) {
        assert.ok(entry.data.equals(data), `entry ${i} is OK, so its data must be whole`);
      } else {
        assert.equal(entry.status.code, status.UNAVAILABLE, entry.status.message);
        assert.equal(entry.data.length, 0);
      }
    }
    assert.notEqual(entries[0]?.status.code, status.OK, 'the reset read failed');
    assert.notEqual(entries[1]?.status.code, status.OK, 'the short read failed');
    assert.equal(entries[2]?.status.code, status.OK, 'the untouched read succeeded');
  });

  it('serves correct data when S3 is slow', async () => {
    const data = randomBlob(2 * MIB);
    const digest = digestOf(data);
    const slow = { kind: 'latency', ms: 300 } as const;
    const put = rig.proxy.inject({ method: 'PUT', path: /./, count: 1, fault: slow });
    const get = rig.proxy.inject({ method: 'GET', path: /./, count: 2, fault: slow });
    assert.equal(await rig.client.write(uploadName(digest), data), data.length);
    assert.ok((await rig.client.read(blobName(digest))).data.equals(data));
    const [entry] = await batchRead(rig, [digest]);
    assert.equal(entry?.status.code, status.OK);
    assert.ok(entry?.data.equals(data));
    assert.equal(put(), 1);
    assert.equal(get(), 2);
  });
});

describe('with verifyReads=always', () => {
  let rig: Rig;
  before(async () => {
    rig = await startRig({ TESSERA_VERIFY_READS: 'always' });
  });
  after(() => rig.close());

  /** Replaces the stored object with different bytes of the same length, behind Tessera's back. */
  async function corrupt(digest: Digest, data: Buffer): Promise<void> {
    const damaged = Buffer.from(data);
    damaged[damaged.length >> 1] = (damaged[damaged.length >> 1] as number) ^ 0xff;
    await rig.s3.send(
      new PutObjectCommand({ Bucket: rig.bucket, Key: objectKey(rig, digest), Body: damaged }),
    );
  }

  const corruptionLogged = (digest: Digest) =>
    rig.logs.some(
      (l) =>
        l.level === 'error' &&
        l.digest === `sha256/${digest.hash}/${digest.sizeBytes}` &&
        String(l.msg).includes('do not match the digest'),
    );

  it('serves intact blobs, whole and ranged', async () => {
    const data = randomBlob(MIB + 5);
    const digest = digestOf(data);
    await rig.client.write(uploadName(digest), data);
    assert.ok((await rig.client.read(blobName(digest))).data.equals(data));
    const part = await rig.client.read(blobName(digest), { offset: 10, limit: 1000 });
    assert.ok(part.data.equals(data.subarray(10, 1010)));
    const [entry] = await batchRead(rig, [digest]);
    assert.equal(entry?.status.code, status.OK);
    assert.ok(entry?.data.equals(data));
  });

  it('gives NOT_FOUND from BatchReadBlobs for a corrupted object, drops it, and heals', async () => {
    const data = randomBlob(5000);
    const digest = digestOf(data);
    await rig.client.write(uploadName(digest), data);
    await corrupt(digest, data);

    const [entry] = await batchRead(rig, [digest]);
    assert.equal(entry?.status.code, status.NOT_FOUND, entry?.status.message);
    assert.equal(entry?.data.length, 0);
    assert.equal(await rig.redis.exists(commitKey(rig, digest)), 0, 'the commit entry is gone');
    assert.ok(corruptionLogged(digest), 'an error names the digest');

    await rig.client.unary(rig.client.cas, 'BatchUpdateBlobs', {
      requests: [{ digest, data }],
    });
    const [healed] = await batchRead(rig, [digest]);
    assert.equal(healed?.status.code, status.OK);
    assert.ok(healed?.data.equals(data));
  });

  it('ends a ByteStream Read of a corrupted object with an error, and heals', async () => {
    for (const size of [3 * MIB + 1, 1000]) {
      const data = randomBlob(size);
      const digest = digestOf(data);
      await rig.client.write(uploadName(digest), data);
      await corrupt(digest, data);

      const received: number[] = [];
      await assert.rejects(
        rig.client.read(blobName(digest)).then(({ data: got }) => received.push(got.length)),
        (error) => codeOf(error) === status.NOT_FOUND,
      );
      assert.deepEqual(received, [], 'the read never ended cleanly');
      assert.equal(await rig.redis.exists(commitKey(rig, digest)), 0, 'the commit entry is gone');
      assert.ok(corruptionLogged(digest), 'an error names the digest');
      const missing = await rig.client.unary<{ missingBlobDigests: Digest[] }>(
        rig.client.cas,
        'FindMissingBlobs',
        { blobDigests: [digest] },
      );
      assert.deepEqual(missing.missingBlobDigests, [digest], 'the blob reads as missing');

      assert.equal(await rig.client.write(uploadName(digest), data), data.length);
      assert.ok((await rig.client.read(blobName(digest))).data.equals(data));
    }
  });

  it('does not check ranged reads, which cannot be verified against the digest', async () => {
    const data = randomBlob(4000);
    const digest = digestOf(data);
    await rig.client.write(uploadName(digest), data);
    await corrupt(digest, data);
    const part = await rig.client.read(blobName(digest), { offset: 1 });
    assert.equal(part.data.length, data.length - 1);
    assert.equal(await rig.redis.exists(commitKey(rig, digest)), 1);
  });
});

describe('with verifyReads=always in embedded mode', () => {
  let dataDir: string;
  let app: App;
  let client: TestClient;
  let logs: Record<string, unknown>[];
  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'tessera-verify-'));
    const settings = loadConfig({
      argv: ['--listen', '127.0.0.1:0'],
      env: { TESSERA_DATA_DIR: dataDir, TESSERA_VERIFY_READS: 'always' },
    });
    const captured = captureLogs();
    logs = captured.lines;
    app = await startApp(settings, captured.log);
    client = connect(app.address);
  });
  after(async () => {
    client.close();
    await app.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('refuses a blob whose file was changed, removes it, and heals on upload', async () => {
    const data = randomBlob(3000);
    const digest = digestOf(data);
    await client.write(uploadName(digest), data);
    const path = join(dataDir, 'cas', 'sha256', digest.hash.slice(0, 2), digest.hash);
    const damaged = Buffer.from(data);
    damaged[0] = (damaged[0] as number) ^ 0xff;
    await writeFile(path, damaged);

    await assert.rejects(client.read(blobName(digest)), (e) => codeOf(e) === status.NOT_FOUND);
    await assert.rejects(stat(path), { code: 'ENOENT' });
    assert.ok(logs.some((l) => l.level === 'error' && l.digest === `sha256/${digest.hash}/3000`));
    assert.equal(await client.write(uploadName(digest), data), data.length);
    assert.ok((await client.read(blobName(digest))).data.equals(data));
  });
});
