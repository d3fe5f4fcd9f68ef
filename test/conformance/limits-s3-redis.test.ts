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

  /**
   * A server that takes one upload session at a time, holding a parked 12 MiB streaming upload
   * whose first 5 MiB part is checkpointed; then a small upload evicts it.
   */
  async function evictParkedUpload(settings: Record<string, string>) {
    const server = await startS3Redis({
      ...settings,
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
    return { client, large, name, progress };
  }

  it('lets go of an evicted streaming upload, which still resumes from its checkpoint', async () => {
    const { client, large, name, progress } = await evictParkedUpload({
      TESSERA_RESUME_ACROSS_REPLICAS: 'true',
    });
    assert.equal(await progress(name), 5 * MIB);
    assert.equal(await client.write(name, large, { offset: 5 * MIB }), large.length);
  });

  it('ends an evicted natively hashed upload, which then starts again from 0', async () => {
    // The default hash lived only in the evicted session, so nothing can continue it.
    const { client, large, name, progress } = await evictParkedUpload({});
    assert.equal(await progress(name), undefined, 'the upload is gone: NOT_FOUND');
    assert.equal(
      codeOf(await client.write(name, large, { offset: 5 * MIB }).catch((error) => error)),
      status.INVALID_ARGUMENT,
      'a resume past what the server holds is refused',
    );
    assert.equal(await client.write(name, large), large.length);
  });
});
