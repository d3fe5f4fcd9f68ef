// The one conformance suite every storage mode passes: protocol behaviour observed through a real
// gRPC client, plus the state behind the server (commits, staging files) where it matters.
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { type ClientWritableStream, status } from '@grpc/grpc-js';
import { toDigest } from '../../src/cas/digest.ts';
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
import type { ServerFactory, ServerUnderTest } from './harness.ts';
import { describeTreesAndActions } from './trees-and-actions.ts';

const EMPTY_SHA256 = createHash('sha256').digest('hex');
const asDigest = (d: Digest) => toDigest('SHA256', d.hash, d.sizeBytes);

export function describeConformance(mode: string, start: ServerFactory): void {
  describe(`conformance: ${mode}`, () => {
    let server: ServerUnderTest;
    let client: TestClient;

    before(async () => {
      server = await start();
      client = connect(server.address);
    });
    after(async () => {
      client.close();
      await server.stop();
    });

    const findMissing = async (digests: Digest[], extra: object = {}) => {
      const response = await client.unary<{ missingBlobDigests: Digest[] }>(
        client.cas,
        'FindMissingBlobs',
        { blobDigests: digests, ...extra },
      );
      return response.missingBlobDigests;
    };
    const rejects = async (promise: Promise<unknown>, code: status, pattern?: RegExp) => {
      await assert.rejects(promise, (error: Error) => {
        assert.equal(codeOf(error), code, `expected ${status[code]}, got: ${error.message}`);
        if (pattern) assert.match(error.message, pattern);
        return true;
      });
    };

    describe('capabilities', () => {
      it('advertises SHA256 and SHA1, API 2.0 to 2.3 and action cache updates', async () => {
        const caps = await client.unary<{
          cacheCapabilities: {
            digestFunctions: string[];
            actionCacheUpdateCapabilities: { updateEnabled: boolean };
            maxBatchTotalSizeBytes: number;
          };
          lowApiVersion: { major: number; minor: number };
          highApiVersion: { major: number; minor: number };
        }>(client.capabilities, 'GetCapabilities', { instanceName: '' });
        assert.ok(caps.cacheCapabilities.digestFunctions.includes('SHA256'));
        assert.ok(caps.cacheCapabilities.digestFunctions.includes('SHA1'));
        assert.equal(caps.cacheCapabilities.actionCacheUpdateCapabilities.updateEnabled, true);
        assert.deepEqual([caps.lowApiVersion.major, caps.lowApiVersion.minor], [2, 0]);
        assert.equal(caps.highApiVersion.major, 2);
        assert.ok(caps.highApiVersion.minor >= 3);
        assert.ok(caps.cacheCapabilities.maxBatchTotalSizeBytes > 1024 * 1024);
      });

      it('accepts a batch of exactly the advertised maximum size', async () => {
        const caps = await client.unary<{ cacheCapabilities: { maxBatchTotalSizeBytes: number } }>(
          client.capabilities,
          'GetCapabilities',
          {},
        );
        const limit = caps.cacheCapabilities.maxBatchTotalSizeBytes;
        const blobs = [randomBlob(limit - 1000), randomBlob(1000)];
        const response = await client.unary<{ responses: { status: { code: number } }[] }>(
          client.cas,
          'BatchUpdateBlobs',
          { requests: blobs.map((data) => ({ digest: digestOf(data), data })) },
        );
        assert.deepEqual(
          response.responses.map((r) => r.status.code),
          [0, 0],
        );
      });
    });

    describe('the empty blob', () => {
      const empty = { hash: EMPTY_SHA256, sizeBytes: 0 };
      it('is never reported missing', async () => {
        assert.deepEqual(await findMissing([empty]), []);
      });
      it('reads as zero bytes', async () => {
        const { data } = await client.read(blobName(empty));
        assert.equal(data.length, 0);
      });
      it('accepts an upload of it', async () => {
        assert.equal(await client.write(uploadName(empty), Buffer.alloc(0)), 0);
      });
      it('is readable through BatchReadBlobs', async () => {
        const response = await client.unary<{
          responses: { status: { code: number }; data: Buffer }[];
        }>(client.cas, 'BatchReadBlobs', { digests: [empty] });
        assert.equal(response.responses[0]?.status.code, 0);
        assert.equal(response.responses[0]?.data.length, 0);
      });
    });

    describe('ByteStream write and read', () => {
      for (const size of [1, 100 * 1024, 3 * 1024 * 1024 + 17]) {
        it(`reads back exactly the ${size} bytes written`, async () => {
          const data = randomBlob(size);
          const digest = digestOf(data);
          assert.deepEqual(await findMissing([digest]), [digest]);
          assert.equal(await client.write(uploadName(digest), data), size);
          assert.ok(await server.isCommitted(asDigest(digest)), 'commit exists once ok is heard');
          assert.deepEqual(await findMissing([digest]), []);
          const { data: back, chunks } = await client.read(blobName(digest));
          assert.ok(back.equals(data));
          assert.ok(
            chunks.every((n) => n <= 1024 * 1024),
            'no chunk over 1 MiB',
          );
          assert.deepEqual(await server.stagingFiles(), []);
        });
      }

      it('serves offsets and limits', async () => {
        const data = randomBlob(300_000);
        const digest = digestOf(data);
        await client.write(uploadName(digest), data);
        const name = blobName(digest);
        assert.ok((await client.read(name, { offset: 1000 })).data.equals(data.subarray(1000)));
        assert.ok(
          (await client.read(name, { offset: 5, limit: 10 })).data.equals(data.subarray(5, 15)),
        );
        assert.equal((await client.read(name, { offset: data.length })).data.length, 0);
        const tail = await client.read(name, { offset: data.length - 3, limit: 100 });
        assert.ok(tail.data.equals(data.subarray(-3)));
      });

      it('rejects offsets outside the blob with OUT_OF_RANGE', async () => {
        const data = randomBlob(10);
        const digest = digestOf(data);
        await client.write(uploadName(digest), data);
        await rejects(client.read(blobName(digest), { offset: 11 }), status.OUT_OF_RANGE, /11/);
        await rejects(client.read(blobName(digest), { offset: -1 }), status.OUT_OF_RANGE);
      });

      it('answers NOT_FOUND for a blob that was never written', async () => {
        const digest = digestOf(randomBlob(64));
        await rejects(client.read(blobName(digest)), status.NOT_FOUND, new RegExp(digest.hash));
      });

      it('rejects data that does not hash to the digest, and commits nothing', async () => {
        const data = randomBlob(5000);
        const wrong = { hash: digestOf(randomBlob(5000)).hash, sizeBytes: 5000 };
        await rejects(client.write(uploadName(wrong), data), status.INVALID_ARGUMENT, /hash/);
        assert.equal(await server.isCommitted(asDigest(wrong)), false);
        assert.deepEqual(await findMissing([wrong]), [wrong]);
        assert.deepEqual(await server.stagingFiles(), []);
      });

      it('rejects more data than the digest size', async () => {
        const data = randomBlob(5000);
        const digest = { hash: digestOf(data).hash, sizeBytes: 4000 };
        await rejects(client.write(uploadName(digest), data), status.INVALID_ARGUMENT, /4000/);
        assert.deepEqual(await server.stagingFiles(), []);
      });

      it('rejects fewer bytes than the digest size at finish_write', async () => {
        const data = randomBlob(5000);
        const digest = { hash: digestOf(data).hash, sizeBytes: 6000 };
        await rejects(client.write(uploadName(digest), data), status.INVALID_ARGUMENT, /6000/);
        assert.equal(await server.isCommitted(asDigest(digest)), false);
      });

      it('ends a write of a committed blob early with the full size', async () => {
        const data = randomBlob(200_000);
        const digest = digestOf(data);
        await client.write(uploadName(digest), data);
        const size = await client.write(uploadName(digest), data.subarray(0, 1000), {
          finish: false,
        });
        assert.equal(size, data.length);
      });

      it('resumes a broken-off upload at committed_size', async () => {
        const data = randomBlob(600_000);
        const digest = digestOf(data);
        const name = uploadName(digest);
        await rejects(
          client.write(name, data.subarray(0, 250_000), { finish: false }),
          status.INVALID_ARGUMENT,
          /finish_write/,
        );
        const progress = await client.unary<{ committedSize: number; complete: boolean }>(
          client.byteStream,
          'QueryWriteStatus',
          { resourceName: name },
        );
        assert.deepEqual(progress, { committedSize: 250_000, complete: false });
        assert.equal(await client.write(name, data, { offset: 250_000 }), data.length);
        const done = await client.unary<{ committedSize: number; complete: boolean }>(
          client.byteStream,
          'QueryWriteStatus',
          { resourceName: name },
        );
        assert.deepEqual(done, { committedSize: data.length, complete: true });
        assert.ok((await client.read(blobName(digest))).data.equals(data));
      });

      it('keeps the bytes of a Write the client cancelled, for a resume', async () => {
        const data = randomBlob(300_000);
        const digest = digestOf(data);
        const name = uploadName(digest);
        const call = (
          client.byteStream.Write as (cb: () => void) => ClientWritableStream<object>
        ).call(client.byteStream, () => undefined);
        call.write({ resourceName: name, writeOffset: 0, data: data.subarray(0, 100_000) });
        const status = () =>
          client.unary<{ committedSize: number }>(client.byteStream, 'QueryWriteStatus', {
            resourceName: name,
          });
        // The server takes the bytes asynchronously; wait until it reports them.
        for (
          let i = 0;
          (await status().catch(() => ({ committedSize: -1 }))).committedSize < 100_000;
          i++
        ) {
          assert.ok(i < 500, 'server never reported the first 100000 bytes');
          await new Promise((resolve) => setImmediate(resolve));
        }
        call.cancel();
        assert.equal((await status()).committedSize, 100_000);
        assert.equal(await client.write(name, data, { offset: 100_000 }), data.length);
        assert.ok((await client.read(blobName(digest))).data.equals(data));
      });

      it('lets a resumed Write take over from a stream the server still thinks is open', async () => {
        const data = randomBlob(300_000);
        const digest = digestOf(data);
        const name = uploadName(digest);
        let staleOutcome: Error | null | undefined;
        const stale = (
          client.byteStream.Write as (cb: (e: Error | null) => void) => ClientWritableStream<object>
        ).call(client.byteStream, (error) => {
          staleOutcome = error;
        });
        stale.write({ resourceName: name, writeOffset: 0, data: data.subarray(0, 100_000) });
        const received = async () =>
          (
            await client
              .unary<{ committedSize: number }>(client.byteStream, 'QueryWriteStatus', {
                resourceName: name,
              })
              .catch(() => ({ committedSize: -1 }))
          ).committedSize;
        for (let i = 0; (await received()) < 100_000; i++) {
          assert.ok(i < 500, 'server never reported the first 100000 bytes');
          await new Promise((resolve) => setImmediate(resolve));
        }

        assert.equal(await client.write(name, data, { offset: 100_000 }), data.length);
        stale.write({ writeOffset: 100_000, data: data.subarray(100_000, 200_000) });
        stale.end();
        for (let i = 0; staleOutcome === undefined; i++) {
          assert.ok(i < 5000, 'the stale Write never ended');
          await new Promise((resolve) => setImmediate(resolve));
        }
        // The stale stream either saw the blob committed or was told it lost the upload.
        assert.ok(
          staleOutcome === null || codeOf(staleOutcome) === status.ABORTED,
          `stale Write ended with ${staleOutcome?.message}`,
        );
        assert.ok((await client.read(blobName(digest))).data.equals(data));
        assert.deepEqual(await server.stagingFiles(), []);
      });

      it('rejects a write offset that skips ahead, and keeps the upload resumable', async () => {
        const data = randomBlob(100_000);
        const digest = digestOf(data);
        const name = uploadName(digest);
        await rejects(
          client.write(name, data, { offset: 10 }),
          status.INVALID_ARGUMENT,
          /offset 10/,
        );
        assert.equal(await client.write(name, data), data.length);
      });

      it('answers QueryWriteStatus for an unknown upload with NOT_FOUND', async () => {
        const digest = digestOf(randomBlob(10));
        await rejects(
          client.unary(client.byteStream, 'QueryWriteStatus', { resourceName: uploadName(digest) }),
          status.NOT_FOUND,
        );
      });

      it('commits concurrent uploads of the same blob once, and both succeed', async () => {
        const data = randomBlob(2 * 1024 * 1024);
        const digest = digestOf(data);
        const sizes = await Promise.all(
          Array.from({ length: 4 }, () => client.write(uploadName(digest), data)),
        );
        assert.deepEqual(sizes, [data.length, data.length, data.length, data.length]);
        assert.ok((await client.read(blobName(digest))).data.equals(data));
        assert.deepEqual(await server.stagingFiles(), []);
      });

      it('accepts instance names with several segments in resource names', async () => {
        const data = randomBlob(1234);
        const digest = digestOf(data);
        await client.write(uploadName(digest, 'team/linux-x86'), data);
        assert.ok((await client.read(blobName(digest, 'team/linux-x86'))).data.equals(data));
        // The CAS is shared between instance names.
        assert.ok((await client.read(blobName(digest, 'other'))).data.equals(data));
      });

      for (const [name, why] of [
        [`uploads/${randomUUID()}/blobs/abc/10`, /hex digits/],
        [`uploads/${randomUUID()}/blobs/${EMPTY_SHA256}/-1`, /size/],
        [`../uploads/${randomUUID()}/blobs/${EMPTY_SHA256}/1`, /instance/],
        [`blobs/uploads/${randomUUID()}/blobs/${EMPTY_SHA256}/1`, /reserved/],
        [`uploads/${randomUUID()}/blobs/vso/${EMPTY_SHA256}/1`, /digest function|not supported/],
        [`uploads/${randomUUID()}/compressed-blobs/deflate/${EMPTY_SHA256}/1`, /compressor/],
        ['', /empty/],
      ] as const) {
        it(`rejects the malformed upload name "${name.slice(0, 60)}"`, async () => {
          await rejects(client.write(name, Buffer.from('x')), status.INVALID_ARGUMENT, why);
        });
      }
    });

    describe('batches and lookups', () => {
      it('round-trips blobs through BatchUpdateBlobs and BatchReadBlobs', async () => {
        const blobs = [randomBlob(10), randomBlob(4096), randomBlob(70_000)];
        const update = await client.unary<{
          responses: { digest: Digest; status: { code: number } }[];
        }>(client.cas, 'BatchUpdateBlobs', {
          requests: blobs.map((data) => ({ digest: digestOf(data), data })),
        });
        assert.deepEqual(
          update.responses.map((r) => r.status.code),
          [0, 0, 0],
        );
        const missing = digestOf(randomBlob(33));
        const read = await client.unary<{
          responses: { digest: Digest; data: Buffer; status: { code: number } }[];
        }>(client.cas, 'BatchReadBlobs', { digests: [...blobs.map(digestOf), missing] });
        for (const [i, blob] of blobs.entries()) {
          assert.equal(read.responses[i]?.status.code, 0);
          assert.ok(read.responses[i]?.data.equals(blob));
        }
        assert.equal(read.responses[3]?.status.code, status.NOT_FOUND);
      });

      it('reports a digest mismatch in one entry without failing the others', async () => {
        const good = randomBlob(100);
        const bad = randomBlob(100);
        const badDigest = { hash: digestOf(randomBlob(100)).hash, sizeBytes: 100 };
        const update = await client.unary<{
          responses: { status: { code: number; message: string } }[];
        }>(client.cas, 'BatchUpdateBlobs', {
          requests: [
            { digest: digestOf(good), data: good },
            { digest: badDigest, data: bad },
          ],
        });
        assert.equal(update.responses[0]?.status.code, 0);
        assert.equal(update.responses[1]?.status.code, status.INVALID_ARGUMENT);
        assert.match(update.responses[1]?.status.message ?? '', new RegExp(badDigest.hash));
        assert.deepEqual(await findMissing([digestOf(good), badDigest]), [badDigest]);
        assert.deepEqual(await server.stagingFiles(), []);
      });

      it('refuses a batch over max_batch_total_size_bytes with INVALID_ARGUMENT', async () => {
        const data = randomBlob(5 * 1024 * 1024);
        await rejects(
          client.unary(client.cas, 'BatchUpdateBlobs', {
            requests: [{ digest: digestOf(data), data }],
          }),
          status.INVALID_ARGUMENT,
          /max_batch_total_size_bytes/,
        );
        await rejects(
          client.unary(client.cas, 'BatchReadBlobs', { digests: [digestOf(data), digestOf(data)] }),
          status.INVALID_ARGUMENT,
          /max_batch_total_size_bytes/,
        );
      });

      it('answers empty batch requests', async () => {
        const update = await client.unary<{ responses: unknown[] }>(
          client.cas,
          'BatchUpdateBlobs',
          {},
        );
        assert.deepEqual(update.responses, []);
        const read = await client.unary<{ responses: unknown[] }>(client.cas, 'BatchReadBlobs', {});
        assert.deepEqual(read.responses, []);
        assert.deepEqual(await findMissing([]), []);
      });

      it('rejects malformed digests in FindMissingBlobs', async () => {
        await rejects(findMissing([{ hash: 'xyz', sizeBytes: 1 }]), status.INVALID_ARGUMENT, /xyz/);
        await rejects(
          findMissing([{ hash: EMPTY_SHA256, sizeBytes: -5 }]),
          status.INVALID_ARGUMENT,
          /-5/,
        );
      });

      it('rejects an unknown digest function', async () => {
        await rejects(
          findMissing([{ hash: EMPTY_SHA256, sizeBytes: 0 }], { digestFunction: 'VSO' }),
          status.INVALID_ARGUMENT,
          /VSO/,
        );
        await rejects(
          findMissing([{ hash: EMPTY_SHA256, sizeBytes: 0 }], { digestFunction: 42 }),
          status.INVALID_ARGUMENT,
          /42/,
        );
      });

      it('treats a blob as missing once its commit is gone', async () => {
        const data = randomBlob(777);
        const digest = digestOf(data);
        await client.write(uploadName(digest), data);
        await server.forgetCommit(asDigest(digest));
        assert.deepEqual(await findMissing([digest]), [digest]);
        await rejects(client.read(blobName(digest)), status.NOT_FOUND);
      });
    });

    describe('digest functions', () => {
      it('stores and serves SHA1 blobs, inferred from the hash length', async () => {
        const data = randomBlob(3000);
        const sha1 = {
          hash: createHash('sha1').update(data).digest('hex'),
          sizeBytes: data.length,
        };
        assert.deepEqual(await findMissing([sha1]), [sha1]);
        await client.write(uploadName(sha1), data);
        assert.deepEqual(await findMissing([sha1]), []);
        assert.deepEqual(await findMissing([sha1], { digestFunction: 'SHA1' }), []);
        assert.ok((await client.read(blobName(sha1))).data.equals(data));
      });

      it('stores and serves BLAKE3 blobs named by the resource-name segment', async () => {
        const { blake3 } = await import('hash-wasm');
        const data = randomBlob(3000);
        const digest = { hash: await blake3(data), sizeBytes: data.length };
        const name = `uploads/${randomUUID()}/blobs/blake3/${digest.hash}/${digest.sizeBytes}`;
        await client.write(name, data);
        assert.deepEqual(await findMissing([digest], { digestFunction: 'BLAKE3' }), []);
        // Without the function named, 64 hex digits mean SHA-256, which this blob is not.
        assert.deepEqual(await findMissing([digest]), [digest]);
        const back = await client.read(`blobs/blake3/${digest.hash}/${digest.sizeBytes}`);
        assert.ok(back.data.equals(data));
      });
    });

    describeTreesAndActions({ server: () => server, client: () => client, rejects, asDigest });

    it('keeps serving after every bad request above', async () => {
      const data = randomBlob(99);
      const digest = digestOf(data);
      await client.write(uploadName(digest), data);
      assert.ok((await client.read(blobName(digest))).data.equals(data));
    });
  });
}
