import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { type ClientWritableStream, status } from '@grpc/grpc-js';
import {
  codeOf,
  connect,
  digestOf,
  randomBlob,
  uploadName,
  writeProgress,
} from '../support/client.ts';
import { startS3Redis } from './harness.ts';
import { describeLimits } from './limits-suite.ts';

const MIB = 1024 * 1024;

describeLimits('S3 + Redis', startS3Redis);

describe('resource limits: S3 + Redis streaming uploads', () => {
  const cleanup: (() => Promise<void>)[] = [];
  after(async () => {
    for (const step of cleanup) await step();
  });

  it('lets go of an evicted streaming upload, which still resumes from its checkpoint', async () => {
    const server = await startS3Redis({
      TESSERA_RESUME_ACROSS_REPLICAS: 'true',
      TESSERA_MAX_CONCURRENT_UPLOADS: '1',
      TESSERA_S3_MULTIPART_THRESHOLD_BYTES: String(6 * MIB),
      TESSERA_S3_PART_SIZE_BYTES: String(5 * MIB),
    });
    const client = connect(server.address);
    cleanup.push(async () => {
      client.close();
      await server.stop();
    });
    const progress = (name: string) => writeProgress(client, name);

    const large = randomBlob(12 * MIB);
    const name = uploadName(digestOf(large));
    const ended = new Promise<number | undefined>((resolve) => {
      const start = client.byteStream.Write as (
        cb: (error: Error | null) => void,
      ) => ClientWritableStream<object>;
      const call = start.call(client.byteStream, (error) => resolve(codeOf(error)));
      call.write({ resourceName: name, writeOffset: 0, data: large.subarray(0, 6 * MIB) });
      call.end();
    });
    assert.equal(await ended, status.INVALID_ARGUMENT);
    const deadline = Date.now() + 15_000;
    while ((await progress(name)) !== 5 * MIB) {
      assert.ok(Date.now() < deadline, 'the first part was never checkpointed');
      await delay(25);
    }

    const small = randomBlob(MIB);
    assert.equal(await client.write(uploadName(digestOf(small)), small), small.length);
    assert.deepEqual(await server.stagingFiles(), []);
    assert.equal(await progress(name), 5 * MIB);
    assert.equal(await client.write(name, large, { offset: 5 * MIB }), large.length);
  });

  it('ends an evicted natively hashed upload, which then starts again from 0', async () => {
    const server = await startS3Redis({
      TESSERA_MAX_CONCURRENT_UPLOADS: '1',
      TESSERA_S3_MULTIPART_THRESHOLD_BYTES: String(6 * MIB),
      TESSERA_S3_PART_SIZE_BYTES: String(5 * MIB),
    });
    const client = connect(server.address);
    cleanup.push(async () => {
      client.close();
      await server.stop();
    });
    const progress = (name: string) => writeProgress(client, name);

    const large = randomBlob(12 * MIB);
    const name = uploadName(digestOf(large));
    const ended = new Promise<number | undefined>((resolve) => {
      const start = client.byteStream.Write as (
        cb: (error: Error | null) => void,
      ) => ClientWritableStream<object>;
      const call = start.call(client.byteStream, (error) => resolve(codeOf(error)));
      call.write({ resourceName: name, writeOffset: 0, data: large.subarray(0, 6 * MIB) });
      call.end();
    });
    assert.equal(await ended, status.INVALID_ARGUMENT);
    const deadline = Date.now() + 15_000;
    while ((await progress(name)) !== 5 * MIB) {
      assert.ok(Date.now() < deadline, 'the first part was never checkpointed');
      await delay(25);
    }

    // The small upload evicts the parked one; its hash was only in the evicted session.
    const small = randomBlob(MIB);
    assert.equal(await client.write(uploadName(digestOf(small)), small), small.length);
    assert.deepEqual(await server.stagingFiles(), []);
    assert.equal(await progress(name), undefined, 'the upload is gone: NOT_FOUND');
    assert.equal(
      codeOf(await client.write(name, large, { offset: 5 * MIB }).catch((error) => error)),
      status.INVALID_ARGUMENT,
      'a resume past what the server holds is refused',
    );
    assert.equal(await client.write(name, large), large.length);
  });
});
