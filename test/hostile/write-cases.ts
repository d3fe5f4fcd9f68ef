// Hostile ByteStream Write streams: offsets that skip ahead or overlap, finish_write twice, data
// after it, resource names that change mid-stream, too many or too few bytes, wrong bytes, and
// streams that break off (those keep their session for a resume).
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { compressWhole } from '../../src/cas/zstd.ts';
import { type Digest, digestOf } from '../support/client.ts';
import {
  blob,
  type CaseContext,
  chunk,
  type HostileCase,
  literal,
  readName,
  SHA256_EMPTY,
  writeName,
} from './cases.ts';

const SIZE = 1000;

interface Upload {
  readonly data: Buffer;
  readonly digest: Digest;
  readonly name: string;
}

function upload(tag: string, size = SIZE): Upload {
  const data = blob(`write:${tag}`, size);
  const digest = digestOf(data);
  return { data, digest, name: writeName(digest) };
}

/** The same bytes with every byte of `[start, end)` flipped. */
export function corrupt(data: Buffer, start = 0, end = data.length): Buffer {
  const copy = Buffer.from(data);
  for (let i = start; i < end; i++) copy[i] = (copy[i] ?? 0) ^ 0xff;
  return copy;
}

/** A check that the blob committed under `u.digest` reads back as exactly `u.data`. */
export function readsBack(u: { data: Buffer; digest: Digest }) {
  return async ({ client, server }: CaseContext) => {
    const { data } = await client.read(readName(u.digest));
    assert.ok(data.equals(u.data), 'the committed blob differs from the bytes sent');
    assert.deepEqual(await server.stagingFiles(), []);
  };
}

const ok = (name: string, u: Upload, requests: object[]): HostileCase => ({
  name,
  rpc: 'Write',
  requests,
  code: status.OK,
  message: /^OK$/,
  verify: readsBack(u),
});

const refused = (
  name: string,
  u: Upload,
  requests: object[],
  message: RegExp,
  keeps?: number,
): HostileCase => ({
  name,
  rpc: 'Write',
  requests,
  code: status.INVALID_ARGUMENT,
  message,
  uncommitted: [u.digest],
  ...(keeps === undefined ? {} : { keepsSession: { resourceName: u.name, received: keeps } }),
});

export function writeCases(): HostileCase[] {
  const u = (tag: string, size?: number) => upload(tag, size);
  const cases: HostileCase[] = [];

  const twice = u('finish twice');
  cases.push(
    ok('Write: finish_write twice succeeds once and commits the blob', twice, [
      chunk(twice.data, 0, { resourceName: twice.name, finishWrite: true }),
      chunk(Buffer.alloc(0), SIZE, { finishWrite: true }),
    ]),
  );
  const after = u('data after finish');
  cases.push(
    ok('Write: data after finish_write is ignored and the blob is right', after, [
      chunk(after.data.subarray(0, 600), 0, { resourceName: after.name }),
      chunk(after.data.subarray(600), 600, { finishWrite: true }),
      chunk(blob('junk', 500), SIZE),
    ]),
  );
  const overlap = u('overlap');
  cases.push(
    ok('Write: a message that overlaps what was received has the overlap skipped', overlap, [
      chunk(overlap.data.subarray(0, 600), 0, { resourceName: overlap.name }),
      chunk(overlap.data.subarray(400), 400, { finishWrite: true }),
    ]),
  );
  const resent = u('overlap resent');
  cases.push(
    ok('Write: the same message sent twice commits the blob once', resent, [
      chunk(resent.data.subarray(0, 500), 0, { resourceName: resent.name }),
      chunk(resent.data.subarray(0, 500), 0),
      chunk(resent.data.subarray(500), 500, { finishWrite: true }),
    ]),
  );
  const skipped = u('overlap differs');
  cases.push(
    ok('Write: bytes in an overlap are skipped unread, so the blob is still right', skipped, [
      chunk(skipped.data.subarray(0, 600), 0, { resourceName: skipped.name }),
      chunk(corrupt(skipped.data, 400, 600).subarray(400), 400, { finishWrite: true }),
    ]),
  );
  const metadata = u('metadata');
  cases.push(
    ok('Write: a later message may repeat the name with other metadata', metadata, [
      chunk(metadata.data.subarray(0, 500), 0, { resourceName: `${metadata.name}/meta/1` }),
      chunk(metadata.data.subarray(500), 500, {
        resourceName: `${metadata.name}/meta/2`,
        finishWrite: true,
      }),
    ]),
  );
  const empty = { data: Buffer.alloc(0), digest: { hash: SHA256_EMPTY, sizeBytes: 0 } };
  cases.push(
    ok('Write: the empty blob', { ...empty, name: writeName(empty.digest) }, [
      chunk(Buffer.alloc(0), 0, { resourceName: writeName(empty.digest), finishWrite: true }),
    ]),
  );

  const unnamed = u('unnamed');
  cases.push(
    refused(
      'Write: a first message without a resource name',
      unnamed,
      [chunk(unnamed.data, 0, { finishWrite: true })],
      /resource name is empty/,
    ),
  );
  cases.push({
    name: 'Write: a stream with no message at all',
    rpc: 'Write',
    requests: [],
    code: status.INVALID_ARGUMENT,
    message: /Write stream carried no request/,
  });
  for (const [label, rename] of [
    ['another upload id', (x: Upload) => writeName(x.digest)],
    ['another size', (x: Upload) => x.name.replace(/\/1000$/, '/1001')],
    ['another instance', (x: Upload) => `team/${x.name}`],
    ['another digest function', (x: Upload) => x.name.replace('/blobs/', '/blobs/blake3/')],
    ['a malformed name', (x: Upload) => x.name.replace(/\/1000$/, '/-1')],
  ] as const) {
    const changed = u(`renamed ${label}`);
    const later = rename(changed);
    cases.push(
      refused(
        `Write: a later message naming ${label}`,
        changed,
        [
          chunk(changed.data.subarray(0, 500), 0, { resourceName: changed.name }),
          chunk(changed.data.subarray(500), 500, { resourceName: later, finishWrite: true }),
        ],
        label === 'a malformed name' ? /size "-1"/ : literal(`"${later}" differs from the first`),
      ),
    );
  }

  const ahead = u('skip ahead');
  cases.push(
    refused(
      'Write: an offset that skips ahead keeps the upload resumable',
      ahead,
      [
        chunk(ahead.data.subarray(0, 500), 0, { resourceName: ahead.name }),
        chunk(ahead.data.subarray(600), 600, { finishWrite: true }),
      ],
      /write offset 600 does not continue .* which has 500 bytes; resume at 500/,
      500,
    ),
  );
  for (const offset of [10, -1, 2 ** 62]) {
    const first = u(`first offset ${offset}`);
    cases.push(
      refused(
        `Write: a first message at offset ${offset}`,
        first,
        [chunk(first.data.subarray(0, 100), offset, { resourceName: first.name })],
        new RegExp(`write offset ${String(offset).slice(0, 15)}\\d* does not continue .* has 0`),
        0,
      ),
    );
  }
  const past = u('overlap past end');
  cases.push(
    refused(
      'Write: an overlapping message that runs past the digest size',
      past,
      [
        chunk(past.data.subarray(0, 600), 0, { resourceName: past.name }),
        chunk(Buffer.concat([past.data.subarray(400), Buffer.alloc(10)]), 400),
      ],
      /would reach 1010 bytes, more than the digest size 1000/,
    ),
  );
  const more = u('more');
  cases.push(
    refused(
      'Write: more data than the digest size',
      more,
      [chunk(Buffer.concat([more.data, Buffer.from('!')]), 0, { resourceName: more.name })],
      /would reach 1001 bytes, more than the digest size 1000/,
    ),
  );
  const less = u('less');
  cases.push(
    refused(
      'Write: fewer bytes than the digest size at finish_write',
      less,
      [chunk(less.data.subarray(0, 999), 0, { resourceName: less.name, finishWrite: true })],
      /digest size 1000 does not match 999 bytes received/,
    ),
  );
  const wrong = u('wrong bytes');
  cases.push(
    refused(
      'Write: bytes that do not hash to the digest',
      wrong,
      [chunk(corrupt(wrong.data, 10, 11), 0, { resourceName: wrong.name, finishWrite: true })],
      new RegExp(`data hashes to [0-9a-f]{64}, not to ${wrong.digest.hash}`),
    ),
  );
  const other = digestOf(blob('write:not empty', 10)).hash;
  const emptyWrong = { ...empty, digest: { hash: other, sizeBytes: 0 } };
  cases.push(
    refused(
      'Write: zero bytes for a size-0 digest that is not the empty blob',
      { ...emptyWrong, name: '' },
      [
        chunk(Buffer.alloc(0), 0, {
          resourceName: writeName(emptyWrong.digest),
          finishWrite: true,
        }),
      ],
      new RegExp(`data hashes to ${SHA256_EMPTY}, not to ${other}`),
    ),
  );
  const unfinished = u('unfinished');
  cases.push(
    refused(
      'Write: a stream that ends without finish_write keeps its session',
      unfinished,
      [chunk(unfinished.data.subarray(0, 700), 0, { resourceName: unfinished.name })],
      /ended without finish_write; resume at the offset QueryWriteStatus reports/,
      700,
    ),
  );
  const notZstd = u('zstd');
  const notZstdName = notZstd.name.replace('/blobs/', '/compressed-blobs/zstd/');
  cases.push(
    refused(
      'Write: a zstd upload whose data is not a zstd frame',
      notZstd,
      [chunk(notZstd.data, 0, { resourceName: notZstdName, finishWrite: true })],
      /compressed-blobs\/zstd upload of sha256\/[0-9a-f]{64}\/1000: invalid zstd data/,
    ),
  );
  // A zstd bomb: 64 KiB of zeros compress to a few dozen bytes, declared as a 1000-byte blob.
  const bomb = u('zstd bomb');
  const bombName = bomb.name.replace('/blobs/', '/compressed-blobs/zstd/');
  cases.push(
    refused(
      'Write: a zstd frame that decodes past the declared size',
      bomb,
      [chunk(compressWhole(Buffer.alloc(64 * 1024)), 0, { resourceName: bombName })],
      /decodes to more than the 1000 bytes the digest declares/,
    ),
  );
  const deflate = u('deflate');
  cases.push(
    refused(
      'Write: a deflate upload, which is not supported',
      deflate,
      [
        chunk(deflate.data, 0, {
          resourceName: deflate.name.replace('/blobs/', '/compressed-blobs/deflate/'),
          finishWrite: true,
        }),
      ],
      /compressor "deflate" is not supported/,
    ),
  );
  return cases;
}
