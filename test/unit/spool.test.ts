import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { blake3 } from 'hash-wasm';
import { type Digest, emptyDigest, toDigest } from '../../src/cas/digest.ts';
import { CasError } from '../../src/cas/errors.ts';
import { OffsetMismatchError } from '../../src/cas/upload-sink.ts';
import {
  prepareStagingDir,
  removeStagedFile,
  Spool,
  spoolBuffer,
  sweepStaging,
} from '../../src/staging/spool.ts';

let root = '';
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'tessera-spool-test-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

let dirCount = 0;
/** A fresh staging directory per case, so file listings belong to that case alone. */
async function freshDir(): Promise<string> {
  const dir = join(root, `staging-${dirCount++}`);
  await prepareStagingDir(dir);
  return dir;
}

function sha256Of(bytes: Uint8Array): Digest {
  return toDigest('SHA256', createHash('sha256').update(bytes).digest('hex'), bytes.length);
}

const bytesOf = (text: string) => new TextEncoder().encode(text);

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

async function rejectsWithCode(run: Promise<unknown>, code: string, pattern?: RegExp) {
  await assert.rejects(run, (error: unknown) => {
    assert.ok(error instanceof CasError, `expected a CasError, got ${String(error)}`);
    assert.equal(error.code, code);
    if (pattern) assert.match(error.message, pattern);
    return true;
  });
}

describe('Spool', () => {
  it('appends chunks at consecutive offsets and stages exactly the bytes received', async () => {
    const dir = await freshDir();
    const data = bytesOf('hello, staged world');
    const spool = await Spool.create(sha256Of(data), { dir, durable: false });
    await spool.append(0, data.subarray(0, 5));
    await spool.append(5, data.subarray(5, 12));
    await spool.append(12, data.subarray(12));
    assert.equal(spool.size, data.length);

    const staged = await spool.finish();
    assert.deepEqual(staged.digest, sha256Of(data));
    assert.equal(dirname(staged.path), dir);
    assert.match(staged.path, /\.spool$/);
    assert.deepEqual(new Uint8Array(await readFile(staged.path)), data);
  });

  it('stages a durable upload the same way', async () => {
    const dir = await freshDir();
    const data = bytesOf('fsync me');
    const staged = await spoolBuffer(sha256Of(data), data, { dir, durable: true });
    assert.deepEqual(new Uint8Array(await readFile(staged.path)), data);
  });

  it('verifies BLAKE3 uploads too', async () => {
    const dir = await freshDir();
    const data = bytesOf('blake three');
    const digest = toDigest('BLAKE3', await blake3(data), data.length);
    const staged = await spoolBuffer(digest, data, { dir, durable: false });
    assert.deepEqual(new Uint8Array(await readFile(staged.path)), data);
  });

  it('stages the empty blob with no appends', async () => {
    const dir = await freshDir();
    const spool = await Spool.create(emptyDigest('SHA256'), { dir, durable: false });
    const staged = await spool.finish();
    assert.equal((await stat(staged.path)).size, 0);
  });

  it('accepts an empty chunk at the current offset without changing anything', async () => {
    const dir = await freshDir();
    const data = bytesOf('abc');
    const spool = await Spool.create(sha256Of(data), { dir, durable: false });
    await spool.append(0, new Uint8Array(0));
    await spool.append(0, data);
    await spool.append(3, new Uint8Array(0));
    assert.equal(spool.size, 3);
    await spool.finish();
  });

  it('rejects a skipped offset with OffsetMismatchError and keeps the data', async () => {
    const dir = await freshDir();
    const data = bytesOf('0123456789');
    const spool = await Spool.create(sha256Of(data), { dir, durable: false });
    await spool.append(0, data.subarray(0, 4));

    await assert.rejects(spool.append(6, data.subarray(6)), (error: unknown) => {
      assert.ok(error instanceof OffsetMismatchError);
      assert.equal(error.code, 'invalid_argument');
      assert.match(error.message, /write offset 6 .* has 4 bytes; resume at 4/);
      return true;
    });
    assert.equal(spool.size, 4);

    await spool.append(4, data.subarray(4));
    const staged = await spool.finish();
    assert.deepEqual(new Uint8Array(await readFile(staged.path)), data);
  });

  it('skips the already-received bytes of a write that starts before the end', async () => {
    const dir = await freshDir();
    const data = bytesOf('0123456789');
    const spool = await Spool.create(sha256Of(data), { dir, durable: false });
    await spool.append(0, data.subarray(0, 6));

    await spool.append(3, data.subarray(3, 5));
    assert.equal(spool.size, 6, 'a write wholly inside what was received changes nothing');
    await spool.append(3, data.subarray(3, 8));
    assert.equal(spool.size, 8);
    await spool.append(0, data);
    const staged = await spool.finish();
    assert.deepEqual(new Uint8Array(await readFile(staged.path)), data);
  });

  it('rejects a chunk that would pass the digest size and keeps what it had', async () => {
    const dir = await freshDir();
    const data = bytesOf('exactly sixteen!');
    const spool = await Spool.create(sha256Of(data), { dir, durable: false });
    await spool.append(0, data.subarray(0, 10));

    await assert.rejects(spool.append(10, bytesOf('0123456789')), (error: unknown) => {
      assert.ok(error instanceof CasError);
      assert.ok(!(error instanceof OffsetMismatchError));
      assert.equal(error.code, 'invalid_argument');
      assert.match(error.message, /would reach 20 bytes, more than the digest size 16/);
      return true;
    });
    assert.equal(spool.size, 10);

    await spool.append(10, data.subarray(10));
    await spool.finish();
  });

  it('removes the file and names both hashes when the data hashes to something else', async () => {
    const dir = await freshDir();
    const digest = sha256Of(bytesOf('expected'));
    const spool = await Spool.create(digest, { dir, durable: false });
    await spool.append(0, bytesOf('received'));

    const actual = createHash('sha256').update('received').digest('hex');
    await rejectsWithCode(
      spool.finish(),
      'invalid_argument',
      new RegExp(`data hashes to ${actual}, not to ${digest.hash}`),
    );
    assert.equal(await exists(spool.path), false);
    assert.deepEqual(await readdir(dir), []);
  });

  it('removes the file when fewer bytes arrived than the digest size', async () => {
    const dir = await freshDir();
    const data = bytesOf('truncated upload');
    const spool = await Spool.create(sha256Of(data), { dir, durable: false });
    await spool.append(0, data.subarray(0, 9));

    await rejectsWithCode(
      spool.finish(),
      'invalid_argument',
      /digest size 16 does not match 9 bytes received/,
    );
    assert.equal(await exists(spool.path), false);
  });

  it('refuses appends and a second finish once finished', async () => {
    const dir = await freshDir();
    const data = bytesOf('done');
    const spool = await Spool.create(sha256Of(data), { dir, durable: false });
    await spool.append(0, data);
    await spool.finish();

    await rejectsWithCode(spool.append(4, new Uint8Array(0)), 'failed_precondition', /closed/);
    await rejectsWithCode(spool.finish(), 'failed_precondition');
  });

  it('removes the file on discard, and a second discard does nothing', async () => {
    const dir = await freshDir();
    const data = bytesOf('abandoned');
    const spool = await Spool.create(sha256Of(data), { dir, durable: false });
    await spool.append(0, data.subarray(0, 3));
    assert.equal(await exists(spool.path), true);

    await spool.discard();
    await spool.discard();
    assert.equal(await exists(spool.path), false);
    await rejectsWithCode(spool.append(3, data.subarray(3)), 'failed_precondition');
  });

  it('gives each upload of the same digest its own file', async () => {
    const dir = await freshDir();
    const digest = sha256Of(bytesOf('twin'));
    const first = await Spool.create(digest, { dir, durable: false });
    const second = await Spool.create(digest, { dir, durable: false });
    assert.notEqual(first.path, second.path);
    await first.discard();
    await second.discard();
  });

  it('fails to create a spool in a missing directory with unavailable', async () => {
    const dir = join(root, 'never-created');
    await rejectsWithCode(
      Spool.create(sha256Of(bytesOf('x')), { dir, durable: false }),
      'unavailable',
      /cannot create a staging file/,
    );
  });

  it('stages any data fed in any chunking (property)', async () => {
    const dir = await freshDir();
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 2048 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        async (data, cutSeeds) => {
          const cuts = [...new Set(cutSeeds.map((seed) => seed % (data.length + 1)))].sort(
            (a, b) => a - b,
          );
          const spool = await Spool.create(sha256Of(data), { dir, durable: false });
          let start = 0;
          for (const cut of [...cuts, data.length]) {
            await spool.append(start, data.subarray(start, cut));
            start = cut;
          }
          const staged = await spool.finish();
          assert.deepEqual(new Uint8Array(await readFile(staged.path)), data);
          await rm(staged.path);
        },
      ),
      { numRuns: 40 },
    );
  });
});

describe('spoolBuffer', () => {
  it('leaves no file behind when the buffer is larger than the digest says', async () => {
    const dir = await freshDir();
    const digest = sha256Of(bytesOf('short'));
    await rejectsWithCode(
      spoolBuffer(digest, bytesOf('much longer than that'), { dir, durable: false }),
      'invalid_argument',
      /more than the digest size 5/,
    );
    assert.deepEqual(await readdir(dir), []);
  });

  it('leaves no file behind when the buffer does not match the hash', async () => {
    const dir = await freshDir();
    const digest = sha256Of(bytesOf('right'));
    await rejectsWithCode(
      spoolBuffer(digest, bytesOf('wrong'), { dir, durable: false }),
      'invalid_argument',
    );
    assert.deepEqual(await readdir(dir), []);
  });
});

describe('sweepStaging', () => {
  it('removes only .spool files and counts them', async () => {
    const dir = await freshDir();
    await writeFile(join(dir, 'a1b2.spool'), 'orphan');
    await writeFile(join(dir, 'c3d4.spool'), 'orphan');
    await writeFile(join(dir, 'notes.txt'), 'keep');
    await writeFile(join(dir, 'blob.spool.bak'), 'keep');
    await writeFile(join(dir, 'spool'), 'keep');

    assert.equal(await sweepStaging(dir), 2);
    assert.deepEqual((await readdir(dir)).sort(), ['blob.spool.bak', 'notes.txt', 'spool']);
  });

  it('finds nothing to remove in an empty directory', async () => {
    assert.equal(await sweepStaging(await freshDir()), 0);
  });

  it('removes the files of an interrupted upload at the next start', async () => {
    const dir = await freshDir();
    const spool = await Spool.create(sha256Of(bytesOf('interrupted')), { dir, durable: false });
    await spool.append(0, bytesOf('inter'));

    assert.equal(await prepareStagingDir(dir), 1);
    assert.deepEqual(await readdir(dir), []);
    await spool.discard();
  });

  it('creates a missing staging directory', async () => {
    const dir = join(root, 'nested', 'staging');
    assert.equal(await prepareStagingDir(dir), 0);
    assert.ok((await stat(dir)).isDirectory());
  });
});

describe('removeStagedFile', () => {
  it('removes a file, and does nothing when it is already gone', async () => {
    const dir = await freshDir();
    const path = join(dir, 'done.spool');
    await writeFile(path, 'bytes');
    await removeStagedFile(path);
    assert.equal(await exists(path), false);
    await removeStagedFile(path);
  });

  it('reports a path it cannot remove instead of ignoring it', async () => {
    const dir = await freshDir();
    const path = join(dir, 'not-a-file.spool');
    await mkdir(path);
    await assert.rejects(removeStagedFile(path), (error: NodeJS.ErrnoException) =>
      ['EISDIR', 'EPERM'].includes(error.code ?? ''),
    );
  });
});
