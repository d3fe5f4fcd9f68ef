// zstd compressed-blobs, as every storage mode must serve them: ByteStream reads and writes of
// compressed-blobs/zstd resources, zstd blobs in the batch RPCs, and the Capabilities that
// announce them. Compressed bytes on the client side are made and checked with zstd-napi's
// high-level API, not with the server's own encoder and decoder.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { type ClientWritableStream, status } from '@grpc/grpc-js';
import { Compressor, CompressStream, decompress } from 'zstd-napi';
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
  writeProgress,
} from '../support/client.ts';
import type { ServerFactory, ServerUnderTest } from './harness.ts';

const KIB = 1024;
const MIB = 1024 * KIB;
const EMPTY = digestOf(Buffer.alloc(0));

/** Bytes that compress the way build outputs do: repeated structure with unique parts. */
export function compressibleBlob(size: number, seed = randomUUID()): Buffer {
  const out = Buffer.alloc(size);
  const noise = randomBlob(Math.min(size, 64 * KIB), seed);
  for (let at = 0; at < size; at += 4 * KIB) {
    const line = Buffer.from(`symbol_${(at / 4096) % 97}_${seed} = section .text + ${at}\n`);
    for (let i = at; i < Math.min(at + 3 * KIB, size); i += line.length) line.copy(out, i);
    noise.copy(out, at + 3 * KIB, at % noise.length, (at % noise.length) + KIB);
  }
  return out;
}

const asDigest = (d: Digest) => toDigest('SHA256', d.hash, d.sizeBytes);
const zstdUploadName = (digest: Digest) =>
  uploadName(digest).replace('/blobs/', '/compressed-blobs/zstd/');
const zstdReadName = (digest: Digest) => `compressed-blobs/zstd/${digest.hash}/${digest.sizeBytes}`;

function compress(data: Buffer, level = 3): Buffer {
  const compressor = new Compressor();
  compressor.setParameters({ compressionLevel: level });
  return compressor.compress(data);
}

/** A frame written without a content size and with a 2^24-byte window: too large a window. */
async function frameWithLargeWindow(data: Buffer): Promise<Buffer> {
  const stream = new CompressStream({ windowLog: 24, contentSizeFlag: false });
  const parts: Buffer[] = [];
  stream.on('data', (part: Buffer) => parts.push(part));
  const done = new Promise((resolve) => stream.on('end', resolve));
  stream.end(data);
  await done;
  return Buffer.concat(parts);
}

export function describeZstd(mode: string, start: ServerFactory): void {
  describe(`zstd compressed blobs: ${mode}`, () => {
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

    const rejects = async (promise: Promise<unknown>, code: status, pattern: RegExp) => {
      await assert.rejects(promise, (error: Error) => {
        assert.equal(codeOf(error), code, `expected ${status[code]}, got: ${error.message}`);
        assert.match(error.message, pattern);
        return true;
      });
    };
    const readCompressed = async (digest: Digest, offset = 0) => {
      const { data, chunks } = await client.read(zstdReadName(digest), { offset });
      return { data: decompress(data), wire: data.length, chunks };
    };
    const assertNothingLeft = async (digest: Digest) => {
      assert.equal(
        await server.isCommitted(asDigest(digest)),
        false,
        'a refused upload was committed',
      );
      assert.deepEqual(await server.stagingFiles(), []);
    };

    it('advertises zstd for ByteStream and for batch uploads', async () => {
      const caps = await client.unary<{
        cacheCapabilities: {
          supportedCompressors: string[];
          supportedBatchUpdateCompressors: string[];
        };
      }>(client.capabilities, 'GetCapabilities', {});
      assert.deepEqual(caps.cacheCapabilities.supportedCompressors, ['ZSTD']);
      assert.deepEqual(caps.cacheCapabilities.supportedBatchUpdateCompressors, ['ZSTD']);
    });

    it('stores a compressed write as the plain blob and reports the compressed bytes', async () => {
      const data = compressibleBlob(300 * KIB);
      const digest = digestOf(data);
      const wire = compress(data);
      assert.ok(wire.length < data.length / 2);

      const committed = await client.write(zstdUploadName(digest), wire, { chunkBytes: 16 * KIB });

      assert.equal(committed, wire.length);
      assert.ok((await client.read(blobName(digest))).data.equals(data));
      const back = await readCompressed(digest);
      assert.ok(back.data.equals(data));
      assert.ok(back.wire < data.length / 2, `a compressed read sent ${back.wire} bytes`);
    });

    it('round-trips a blob over 16 MiB in both directions, in chunks under 4 MiB', async () => {
      const data = compressibleBlob(17 * MIB + 5);
      const digest = digestOf(data);
      const wire = compress(data, 1);

      assert.equal(
        await client.write(zstdUploadName(digest), wire, { chunkBytes: MIB }),
        wire.length,
      );

      const back = await readCompressed(digest);
      assert.ok(back.data.equals(data));
      assert.ok(Math.max(...back.chunks) < 4 * MIB);
      assert.ok((await client.read(blobName(digest))).data.equals(data));
    });

    it('accepts a stream of several frames, as clients that compress chunk by chunk send', async () => {
      const data = compressibleBlob(200 * KIB);
      const digest = digestOf(data);
      const frames = [0, 64 * KIB, 128 * KIB].map((at) =>
        compress(data.subarray(at, Math.min(at + 64 * KIB, data.length))),
      );
      frames.push(compress(data.subarray(192 * KIB)));
      const wire = Buffer.concat(frames);

      assert.equal(
        await client.write(zstdUploadName(digest), wire, { chunkBytes: 5000 }),
        wire.length,
      );
      assert.ok((await client.read(blobName(digest))).data.equals(data));
    });

    it('serves a plain upload compressed, from any uncompressed offset', async () => {
      const data = compressibleBlob(200 * KIB + 17);
      const digest = digestOf(data);
      await client.write(uploadName(digest), data);

      for (const offset of [0, 1, 100 * KIB, data.length - 1, data.length]) {
        const back = await readCompressed(digest, offset);
        assert.ok(back.data.equals(data.subarray(offset)), `offset ${offset}`);
      }
      await rejects(
        client.read(zstdReadName(digest), { offset: data.length + 1 }),
        status.OUT_OF_RANGE,
        /read offset 204818 is outside blob/,
      );
      await rejects(
        client.read(zstdReadName(digest), { limit: 10 }),
        status.INVALID_ARGUMENT,
        /read_limit 10 is not allowed in a read of compressed-blobs\/zstd/,
      );
    });

    it('resumes a compressed write at the compressed offset QueryWriteStatus reports', async () => {
      const data = compressibleBlob(2 * MIB);
      const digest = digestOf(data);
      const wire = compress(data);
      const name = zstdUploadName(digest);
      const half = Math.floor(wire.length / 2);

      await rejects(
        client.write(name, wire.subarray(0, half), { finish: false, chunkBytes: 16 * KIB }),
        status.INVALID_ARGUMENT,
        /ended without finish_write/,
      );
      assert.equal(await writeProgress(client, name), half);
      assert.equal(await server.isCommitted(asDigest(digest)), false);

      // The client resends from a little before the reported offset; the overlap is skipped.
      const resumed = await client.write(name, wire, { offset: half - 100, chunkBytes: 16 * KIB });
      assert.equal(resumed, wire.length);
      assert.ok((await readCompressed(digest)).data.equals(data));
    });

    it('answers -1 to a compressed write of a blob that is already there', async () => {
      const data = compressibleBlob(40 * KIB);
      const digest = digestOf(data);
      await client.write(uploadName(digest), data);
      assert.equal(await client.write(zstdUploadName(digest), compress(data)), -1);
      assert.equal(await client.write(zstdUploadName(EMPTY), compress(Buffer.alloc(0))), -1);
    });

    it('serves the empty blob as a zstd frame of nothing', async () => {
      const back = await readCompressed(EMPTY);
      assert.equal(back.data.length, 0);
      assert.ok(back.wire > 0, 'no frame at all is not a zstd stream');
    });

    it('refuses a truncated frame, naming the upload, and commits nothing', async () => {
      const data = compressibleBlob(100 * KIB);
      const digest = digestOf(data);
      const wire = compress(data);
      await rejects(
        client.write(zstdUploadName(digest), wire.subarray(0, wire.length - 10)),
        status.INVALID_ARGUMENT,
        new RegExp(
          `zstd upload of sha256/${digest.hash}/${digest.sizeBytes}: .*ends inside a zstd frame`,
        ),
      );
      await assertNothingLeft(digest);
    });

    it('refuses corrupt frames and data that decodes to other bytes', async () => {
      const data = compressibleBlob(100 * KIB);
      const digest = digestOf(data);
      const garbled = compress(data);
      garbled.fill(0x5a, 4, 40);
      await rejects(
        client.write(zstdUploadName(digest), garbled),
        status.INVALID_ARGUMENT,
        /invalid zstd data|data hashes to/,
      );
      const other = compressibleBlob(100 * KIB);
      await rejects(
        client.write(zstdUploadName(digest), compress(other)),
        status.INVALID_ARGUMENT,
        new RegExp(`data hashes to ${digestOf(other).hash}, not to ${digest.hash}`),
      );
      await assertNothingLeft(digest);
    });

    it('refuses a frame that decodes to fewer or more bytes than the digest says', async () => {
      const data = compressibleBlob(50 * KIB);
      const longer = { ...digestOf(data), sizeBytes: data.length + 1 };
      await rejects(
        client.write(zstdUploadName(longer), compress(data)),
        status.INVALID_ARGUMENT,
        /digest size 51201 does not match 51200 bytes received/,
      );
      const shorter = { ...digestOf(data), sizeBytes: data.length - 1 };
      await rejects(
        client.write(zstdUploadName(shorter), compress(data)),
        status.INVALID_ARGUMENT,
        /decodes to more than the 51199 bytes the digest declares/,
      );
      await assertNothingLeft(longer);
      await assertNothingLeft(shorter);
    });

    it('refuses a frame whose window is larger than the decoder allows', async () => {
      const data = compressibleBlob(9 * MIB);
      const digest = digestOf(data);
      await rejects(
        client.write(zstdUploadName(digest), await frameWithLargeWindow(data), { chunkBytes: MIB }),
        status.INVALID_ARGUMENT,
        /invalid zstd data .*window of at most 8388608 bytes/,
      );
      await assertNothingLeft(digest);
    });

    it('stops reading a compressed stream far longer than the blob could need', async () => {
      const digest = digestOf(compressibleBlob(10 * KIB));
      const ended = new Promise<number | undefined>((resolve) => {
        const open = client.byteStream.Write as (
          cb: (error: Error | null) => void,
        ) => ClientWritableStream<object>;
        const call = open.call(client.byteStream, (error) => resolve(codeOf(error)));
        // Skippable frames decode to nothing, so only the compressed-size bound stops them.
        const skippable = Buffer.alloc(64 * KIB + 8);
        skippable.writeUInt32LE(0x184d2a50, 0);
        skippable.writeUInt32LE(64 * KIB, 4);
        for (let i = 0; i < 4; i++) {
          call.write({
            resourceName: i === 0 ? zstdUploadName(digest) : '',
            writeOffset: i * skippable.length,
            data: skippable,
          });
        }
        call.end();
      });
      assert.equal(await ended, status.INVALID_ARGUMENT);
      await assertNothingLeft(digest);
    });

    it('takes batches that mix plain and zstd blobs, each judged on its own', async () => {
      const plain = compressibleBlob(20 * KIB);
      const packed = compressibleBlob(30 * KIB);
      const bad = compressibleBlob(10 * KIB);
      const reply = await client.unary<{ responses: { status: { code: number } }[] }>(
        client.cas,
        'BatchUpdateBlobs',
        {
          requests: [
            { digest: digestOf(plain), data: plain },
            { digest: digestOf(packed), data: compress(packed), compressor: 'ZSTD' },
            { digest: digestOf(bad), data: bad, compressor: 'ZSTD' },
            { digest: EMPTY, data: compress(Buffer.alloc(0)), compressor: 'ZSTD' },
          ],
        },
      );
      assert.deepEqual(
        reply.responses.map((r) => r.status.code),
        [status.OK, status.OK, status.INVALID_ARGUMENT, status.OK],
      );
      assert.ok((await client.read(blobName(digestOf(packed)))).data.equals(packed));
      await assertNothingLeft(digestOf(bad));
    });

    it('answers batch reads in zstd when the client accepts it and it saves bytes', async () => {
      const text = compressibleBlob(40 * KIB);
      const noise = randomBlob(8 * KIB);
      for (const data of [text, noise]) await client.write(uploadName(digestOf(data)), data);
      type Reply = { responses: { data: Buffer; compressor: string; status: { code: number } }[] };
      const ask = (acceptableCompressors: string[]) =>
        client.unary<Reply>(client.cas, 'BatchReadBlobs', {
          digests: [digestOf(text), digestOf(noise), EMPTY],
          acceptableCompressors,
        });

      const zstd = await ask(['ZSTD']);
      assert.deepEqual(
        zstd.responses.map((r) => [r.status.code, r.compressor]),
        [
          [status.OK, 'ZSTD'],
          [status.OK, 'IDENTITY'],
          [status.OK, 'IDENTITY'],
        ],
      );
      const [first, second] = zstd.responses;
      assert.ok(first && first.data.length < text.length / 2);
      assert.ok(first && decompress(first.data).equals(text));
      assert.ok(second?.data.equals(noise));

      const plain = await ask([]);
      assert.deepEqual(
        plain.responses.map((r) => r.compressor),
        ['IDENTITY', 'IDENTITY', 'IDENTITY'],
      );
      assert.ok(plain.responses[0]?.data.equals(text));
    });
  });
}
