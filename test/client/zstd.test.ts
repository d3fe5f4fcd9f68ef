// Tessera's own client with compression 'zstd', against a real server on Redis and S3 (RGW): blob
// bytes travel compressed both ways — the server's wire byte counters show it, against the same
// transfers made uncompressed — and what is stored and read back is the blob itself, verified.
// The library is driven directly, then the `tessera` command as a child process.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Digest, toDigest } from '../../src/cas/digest.ts';
import { type Connection, openConnection, readBlob } from '../../src/client/index.ts';
import { type ServerUnderTest, startS3Redis } from '../conformance/harness.ts';
import { compressibleBlob } from '../conformance/zstd-suite.ts';
import { runTessera } from '../support/cli.ts';
import { digestOf, randomBlob } from '../support/client.ts';

const KIB = 1024;
const MIB = 1024 * KIB;
/** Small enough that the CLI fixture's large file is streamed and its small ones batched. */
const BATCH_LIMIT_BYTES = 256 * KIB;

type Counter = 'tessera_sent_bytes_total' | 'tessera_received_bytes_total';

/** The server's count of blob bytes on the wire, for the methods named, summed. */
async function wireBytes(server: ServerUnderTest, counter: Counter, methods: string[]) {
  const scraped = await server.app.metrics.scrape();
  let total = 0;
  for (const method of methods) {
    const line = new RegExp(`^${counter}\\{method="${method}"\\} (\\d+)$`, 'm');
    total += Number(line.exec(scraped)?.[1] ?? 0);
  }
  return total;
}

/** Runs `step` and returns how many bytes the counter grew by meanwhile. */
async function counted(
  server: ServerUnderTest,
  counter: Counter,
  methods: string[],
  step: () => Promise<unknown>,
): Promise<number> {
  const before = await wireBytes(server, counter, methods);
  await step();
  return (await wireBytes(server, counter, methods)) - before;
}

function asDigest(data: Buffer): Digest {
  const d = digestOf(data);
  return toDigest('SHA256', d.hash, d.sizeBytes);
}

async function* once(data: Buffer): AsyncGenerator<Buffer> {
  for (let at = 0; at < data.length; at += MIB) yield data.subarray(at, at + MIB);
}

async function readAll(connection: Connection, digest: Digest): Promise<Buffer> {
  const parts: Buffer[] = [];
  await readBlob(connection, digest, (chunk) => void parts.push(chunk));
  return Buffer.concat(parts);
}

describe('client with zstd compression (S3 + Redis)', () => {
  let server: ServerUnderTest;
  let zstd: Connection;
  let plain: Connection;

  before(async () => {
    server = await startS3Redis({ TESSERA_MAX_BATCH_TOTAL_SIZE_BYTES: String(BATCH_LIMIT_BYTES) });
    zstd = await openConnection({ server: server.address, compression: 'zstd' });
    plain = await openConnection({ server: server.address, compression: 'none' });
  });
  after(async () => {
    zstd?.close();
    plain?.close();
    await server?.stop();
  });

  it('uploads and reads batches compressed, each blob verified', async () => {
    const blobs = [compressibleBlob(40 * KIB), compressibleBlob(90 * KIB)].map((data) => ({
      digest: asDigest(data),
      data,
    }));
    const total = 130 * KIB;

    const received = await counted(
      server,
      'tessera_received_bytes_total',
      ['BatchUpdateBlobs'],
      () => zstd.batchUpdate(blobs),
    );
    let back: { data: Buffer }[] = [];
    const sent = await counted(server, 'tessera_sent_bytes_total', ['BatchReadBlobs'], async () => {
      back = await zstd.batchRead(blobs.map((b) => b.digest));
    });

    assert.ok(received > 0 && received < total / 2, `the batch upload sent ${received} bytes`);
    assert.ok(sent > 0 && sent < total / 2, `the batch read received ${sent} bytes`);
    assert.deepEqual(
      back.map((b) => b.data),
      blobs.map((b) => b.data),
    );
    const stored = await plain.batchRead(blobs.map((b) => b.digest));
    assert.deepEqual(
      stored.map((b) => b.data),
      blobs.map((b) => b.data),
      'an uncompressed read returns the same bytes',
    );
  });

  it('sends a blob that zstd cannot shrink as it is', async () => {
    const data = randomBlob(64 * KIB);
    const received = await counted(
      server,
      'tessera_received_bytes_total',
      ['BatchUpdateBlobs'],
      () => zstd.batchUpdate([{ digest: asDigest(data), data }]),
    );
    assert.equal(received, data.length);
  });

  it('writes and reads a large blob through compressed ByteStream calls', async () => {
    const data = compressibleBlob(3 * MIB);
    const digest = asDigest(data);

    const received = await counted(server, 'tessera_received_bytes_total', ['Write'], () =>
      zstd.write(digest, once(data)),
    );
    let compressedRead: Buffer = Buffer.alloc(0);
    const sent = await counted(server, 'tessera_sent_bytes_total', ['Read'], async () => {
      compressedRead = await readAll(zstd, digest);
    });
    let plainRead: Buffer = Buffer.alloc(0);
    const sentPlain = await counted(server, 'tessera_sent_bytes_total', ['Read'], async () => {
      plainRead = await readAll(plain, digest);
    });

    assert.ok(received > 0 && received < data.length / 2, `the write sent ${received} bytes`);
    assert.ok(sent > 0 && sent < data.length / 2, `the read received ${sent} bytes`);
    assert.equal(sentPlain, data.length, 'the same read uncompressed carries every byte');
    assert.ok(compressedRead.equals(data));
    assert.ok(plainRead.equals(data), 'the blob is stored as itself');
  });

  it('reads from an offset that counts uncompressed bytes', async () => {
    const data = compressibleBlob(2 * MIB + 333);
    const digest = asDigest(data);
    await plain.write(digest, once(data));

    const offset = MIB + 5;
    const parts: Buffer[] = [];
    for await (const chunk of zstd.read(digest, offset)) parts.push(chunk);

    assert.ok(Buffer.concat(parts).equals(data.subarray(offset)));
  });

  it('ends a compressed write early when the server already has the blob', async () => {
    const data = compressibleBlob(2 * MIB);
    const digest = asDigest(data);
    await zstd.write(digest, once(data));

    const received = await counted(server, 'tessera_received_bytes_total', ['Write'], () =>
      zstd.write(digest, once(data)),
    );

    assert.equal(received, 0, 'the server answered before any data');
  });

  it('refuses a source that holds fewer bytes than the digest, and commits nothing', async () => {
    const data = compressibleBlob(2 * MIB);
    const digest = asDigest(data);

    await assert.rejects(
      zstd.write(digest, once(data.subarray(0, MIB))),
      /has 1048576 bytes; it changed since it was hashed/,
    );

    assert.equal(await server.isCommitted(digest), false);
  });

  describe('tessera upload, download and cat with --compression zstd', () => {
    let work: string;

    before(async () => {
      work = await mkdtemp(join(tmpdir(), 'tessera-zstd-cli-'));
    });
    after(async () => {
      await rm(work, { recursive: true, force: true });
    });

    it('moves the tree compressed both ways and restores it exactly', async () => {
      const tree = join(work, 'tree');
      await mkdir(join(tree, 'small'), { recursive: true });
      const big = compressibleBlob(4 * MIB);
      await writeFile(join(tree, 'big.o'), big);
      const small: Buffer[] = [];
      for (let i = 0; i < 20; i += 1) {
        small.push(compressibleBlob(8 * KIB + i));
        await writeFile(join(tree, 'small', `f${i}.o`), small[i] as Buffer);
      }
      const fileBytes = big.length + small.reduce((sum, b) => sum + b.length, 0);
      const env = { TESSERA_SERVER: server.address };
      const flags = ['--compression', 'zstd'];
      const uploads = ['Write', 'BatchUpdateBlobs'];
      const reads = ['Read', 'BatchReadBlobs'];

      let digest = '';
      const received = await counted(server, 'tessera_received_bytes_total', uploads, async () => {
        const run = await runTessera(['upload', ...flags, tree], env);
        assert.equal(run.status, 0, run.stderr);
        digest = run.stdout.toString('utf8').trim();
      });
      const out = join(work, 'out');
      const sent = await counted(server, 'tessera_sent_bytes_total', reads, async () => {
        const run = await runTessera(['download', ...flags, digest, out], env);
        assert.equal(run.status, 0, run.stderr);
      });
      const bigDigest = `${digestOf(big).hash}/${big.length}`;
      let catted: Buffer = Buffer.alloc(0);
      const sentCat = await counted(server, 'tessera_sent_bytes_total', ['Read'], async () => {
        const run = await runTessera(['cat', ...flags, bigDigest], env);
        assert.equal(run.status, 0, run.stderr);
        catted = run.stdout;
      });

      assert.ok(received < fileBytes / 2, `upload sent ${received} of ${fileBytes} bytes`);
      assert.ok(sent < fileBytes / 2, `download received ${sent} of ${fileBytes} bytes`);
      assert.ok(sentCat < big.length / 2, `cat received ${sentCat} of ${big.length} bytes`);
      assert.ok((await readFile(join(out, 'big.o'))).equals(big));
      for (let i = 0; i < small.length; i += 1) {
        const file = await readFile(join(out, 'small', `f${i}.o`));
        assert.ok(file.equals(small[i] as Buffer), `small/f${i}.o`);
      }
      assert.ok(catted.equals(big));
    });

    it('exits 2 for a compressor it does not know', async () => {
      const run = await runTessera(['cat', '--compression', 'gzip', `${'0'.repeat(64)}/1`]);
      assert.equal(run.status, 2);
      assert.match(run.stderr, /--compression "gzip" is not one of zstd, none/);
    });
  });
});
