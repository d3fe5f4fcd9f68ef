// An upload that breaks off because its replica died continues on another replica from the
// checkpoint in Redis, without the client resending the parts already stored in S3.
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import type { ClientWritableStream } from '@grpc/grpc-js';
import { blobName, connect, digestOf, uploadName } from '../support/client.ts';
import { createTestS3Client, getServices, type TestServices } from '../support/services/index.ts';
import { startTessera, type TesseraProcess } from '../support/tessera.ts';

const MIB = 1024 * 1024;
const PART_BYTES = 5 * MIB;
const BLOB_BYTES = 48 * MIB + 12_345;

describe('an upload whose replica dies', () => {
  let services: TestServices;
  let prefix: string;
  const staging: string[] = [];
  const replicas: TesseraProcess[] = [];

  const startReplica = async () => {
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
    const { replica: a } = await startReplica();
    const { replica: b, dir: bStaging } = await startReplica();
    const data = randomBytes(BLOB_BYTES);
    const digest = digestOf(data);
    const name = uploadName(digest);
    const toA = connect(a.address);
    const toB = connect(b.address);
    const progressOnB = async () =>
      (
        await toB
          .unary<{ committedSize: number }>(toB.byteStream, 'QueryWriteStatus', {
            resourceName: name,
          })
          .catch(() => ({ committedSize: 0 }))
      ).committedSize;

    // Send the first 30 MiB to A, without finishing, and wait until B sees a checkpoint of at
    // least 20 MiB: parts that S3 confirmed and Redis recorded.
    const sentToA = 30 * MIB;
    const call = (toA.byteStream.Write as (cb: () => void) => ClientWritableStream<object>).call(
      toA.byteStream,
      () => undefined,
    );
    call.on('error', () => undefined);
    for (let at = 0; at < sentToA; at += MIB) {
      call.write({
        resourceName: at === 0 ? name : '',
        writeOffset: at,
        data: data.subarray(at, at + MIB),
      });
    }
    const deadline = Date.now() + 60_000;
    while ((await progressOnB()) < 20 * MIB) {
      assert.ok(Date.now() < deadline, 'no checkpoint of 20 MiB appeared');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }

    await a.kill();
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
});
