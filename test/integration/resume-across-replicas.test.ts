// An upload that breaks off because its replica died continues on another replica from the
// checkpoint in Redis, without the client resending the parts already stored in S3, when the
// replicas run with resumeAcrossReplicas. With the default (a native hash, held by one process
// only), the other replica starts it again from 0 and still commits it whole, and the replica
// that holds the upload resumes it where its checkpoint ends.
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import type { ClientWritableStream } from '@grpc/grpc-js';
import { blobName, connect, digestOf, type TestClient, uploadName } from '../support/client.ts';
import { createTestS3Client, getServices, type TestServices } from '../support/services/index.ts';
import { startTcpProxy } from '../support/tcp-proxy.ts';
import { startTessera, type TesseraProcess } from '../support/tessera.ts';

const MIB = 1024 * 1024;
const PART_BYTES = 5 * MIB;
const BLOB_BYTES = 48 * MIB + 12_345;

describe('an upload whose replica dies', () => {
  let services: TestServices;
  let prefix: string;
  const staging: string[] = [];
  const replicas: TesseraProcess[] = [];

  const startReplica = async (extra: Record<string, string> = {}) => {
    const dir = await mkdtemp(join(tmpdir(), 'tessera-replica-'));
    staging.push(dir);
    const replica = await startTessera({
      env: {
        TESSERA_S3_ENDPOINT: services.s3.endpoint,
        TESSERA_S3_BUCKET: services.s3.bucket,
        TESSERA_S3_REGION: services.s3.region,
        TESSERA_S3_FORCE_PATH_STYLE: String(services.s3.forcePathStyle),
        TESSERA_S3_PREFIX: prefix,
        TESSERA_S3_MULTIPART_THRESHOLD_BYTES: String(8 * MIB),
        TESSERA_S3_PART_SIZE_BYTES: String(PART_BYTES),
        TESSERA_S3_UPLOAD_CONCURRENCY: '2',
        TESSERA_REDIS_URL: services.redisUrl,
        TESSERA_REDIS_PREFIX: `tessera-test:${prefix}`,
        TESSERA_STAGING_DIR: dir,
        AWS_ACCESS_KEY_ID: services.s3.accessKeyId,
        AWS_SECRET_ACCESS_KEY: services.s3.secretAccessKey,
        TESSERA_LOG_LEVEL: 'info',
        ...extra,
      },
    });
    replicas.push(replica);
    return { replica, dir };
  };

  before(async () => {
    services = await getServices();
    prefix = `r-${randomUUID().slice(0, 8)}/`;
  });
  after(async () => {
    await Promise.all(replicas.map((r) => r.stop()));
    await Promise.all(staging.map((dir) => rm(dir, { recursive: true, force: true })));
  });

  it('continues on another replica from the checkpoint, resending at most the unconfirmed parts', async () => {
    const { replica: a } = await startReplica(ACROSS);
    const { replica: b, dir: bStaging } = await startReplica(ACROSS);
    const data = randomBytes(BLOB_BYTES);
    const digest = digestOf(data);
    const name = uploadName(digest);
    const toA = connect(a.address);
    const toB = connect(b.address);
    const progressOnB = () => progress(toB, name);

    // Send the first 30 MiB to A, without finishing, and wait until B sees a checkpoint of at
    // least 20 MiB: parts that S3 confirmed and Redis recorded.
    const sentToA = 30 * MIB;
    const call = sendWithoutFinishing(toA, name, data, sentToA);
    await waitFor(progressOnB, 20 * MIB);

    await a.kill();
    call.cancel();
    toA.close();

    const resumeAt = await progressOnB();
    assert.equal(resumeAt % PART_BYTES, 0, 'a checkpoint ends on a part boundary');
    assert.ok(resumeAt >= 20 * MIB && resumeAt <= sentToA, `resume offset ${resumeAt}`);
    const committed = await toB.write(name, data, { offset: resumeAt, chunkBytes: MIB });
    assert.equal(committed, data.length);

    const resent = sentToA - resumeAt;
    // Reported for the closing note: bytes the client sent twice, against what it sent to A.
    console.log(
      `resume across replicas: sent ${sentToA} to A, resumed at ${resumeAt}, resent ${resent}`,
    );
    assert.ok(resent <= 2 * PART_BYTES + MIB, `resent ${resent} bytes`);

    const { replica: c } = await startReplica();
    const toC = connect(c.address);
    assert.ok((await toC.read(blobName(digest))).data.equals(data), 'readable on a third replica');
    assert.ok((await toB.read(blobName(digest))).data.equals(data));
    toB.close();
    toC.close();

    assert.deepEqual(await readdir(bStaging), []);
    const s3 = createTestS3Client(services.s3);
    const open = await s3.send(
      new ListMultipartUploadsCommand({ Bucket: services.s3.bucket, Prefix: prefix }),
    );
    s3.destroy();
    assert.equal(open.Uploads?.length ?? 0, 0, 'no multipart upload is left open');
  });

  it('with a native hash, starts over on another replica and commits the blob whole', async () => {
    const { replica: a } = await startReplica();
    const { replica: b, dir: bStaging } = await startReplica();
    const data = randomBytes(BLOB_BYTES);
    const digest = digestOf(data);
    const name = uploadName(digest);
    const toA = connect(a.address);
    const toB = connect(b.address);

    const call = sendWithoutFinishing(toA, name, data, 30 * MIB);
    // A reports its checkpoint; B, which cannot continue A's hash, reports nothing stored.
    await waitFor(() => progress(toA, name), 20 * MIB);
    assert.equal(await progress(toB, name), 0);

    await a.kill();
    call.cancel();
    toA.close();
    assert.equal(await progress(toB, name), 0, 'nothing to resume from once A is gone');
    assert.equal(await toB.write(name, data, { chunkBytes: MIB }), data.length);
    assert.ok((await toB.read(blobName(digest))).data.equals(data));
    toB.close();

    assert.deepEqual(await readdir(bStaging), []);
    // B aborted the multipart upload A had begun when it took the upload over.
    assert.equal(await openMultipartUploads(), 0, 'no multipart upload is left open');
  });

  for (const redisMs of [0, 50]) {
    const link = redisMs === 0 ? '' : `, with Redis ${redisMs} ms away`;
    it(`with a native hash, resumes on the same replica from its checkpoint${link}`, async () => {
      // A distant Redis makes checkpoint saves trail the parts S3 has confirmed: the replica
      // must still resume at the offset it reported, not take its own lagging checkpoint for
      // another replica's and start over.
      const proxy = await startTcpProxy(new URL(services.redisUrl).host);
      proxy.setMode(redisMs === 0 ? { kind: 'pass' } : { kind: 'latency', ms: redisMs });
      try {
        const { replica: a } = await startReplica({
          TESSERA_REDIS_URL: `redis://${proxy.address}`,
        });
        const data = randomBytes(BLOB_BYTES);
        const digest = digestOf(data);
        const name = uploadName(digest);
        const toA = connect(a.address);

        const call = sendWithoutFinishing(toA, name, data, 30 * MIB);
        await waitFor(() => progress(toA, name), 20 * MIB);
        call.cancel();
        // The broken-off Write parks its session; the checkpoint is where A may be resumed.
        const resumeAt = await progress(toA, name);
        assert.equal(resumeAt % PART_BYTES, 0, 'a checkpoint ends on a part boundary');
        assert.ok(resumeAt >= 20 * MIB, `resume offset ${resumeAt}`);
        const committed = await toA.write(name, data, { offset: resumeAt, chunkBytes: MIB });
        assert.equal(committed, data.length);
        assert.ok((await toA.read(blobName(digest))).data.equals(data));
        toA.close();
        assert.equal(await openMultipartUploads(), 0, 'no multipart upload is left open');
      } finally {
        await proxy.close();
      }
    });
  }

  async function openMultipartUploads(): Promise<number> {
    const s3 = createTestS3Client(services.s3);
    try {
      const open = await s3.send(
        new ListMultipartUploadsCommand({ Bucket: services.s3.bucket, Prefix: prefix }),
      );
      return open.Uploads?.length ?? 0;
    } finally {
      s3.destroy();
    }
  }
});

const ACROSS = { TESSERA_RESUME_ACROSS_REPLICAS: 'true' };

async function progress(client: TestClient, name: string): Promise<number> {
  const answer = await client
    .unary<{ committedSize: number }>(client.byteStream, 'QueryWriteStatus', { resourceName: name })
    .catch(() => ({ committedSize: 0 }));
  return answer.committedSize;
}

async function waitFor(read: () => Promise<number>, atLeast: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  while ((await read()) < atLeast) {
    assert.ok(Date.now() < deadline, `no checkpoint of ${atLeast} bytes appeared`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Opens a Write and sends the first `bytes` of `data` in 1 MiB messages, without finishing. */
function sendWithoutFinishing(client: TestClient, name: string, data: Buffer, bytes: number) {
  const call = (client.byteStream.Write as (cb: () => void) => ClientWritableStream<object>).call(
    client.byteStream,
    () => undefined,
  );
  call.on('error', () => undefined);
  for (let at = 0; at < bytes; at += MIB) {
    call.write({
      resourceName: at === 0 ? name : '',
      writeOffset: at,
      data: data.subarray(at, at + MIB),
    });
  }
  return call;
}
