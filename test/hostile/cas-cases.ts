// Hostile ContentAddressableStorage requests: malformed digests and digest functions, batches with
// one bad entry or over the size limit, and FindMissingBlobs over its digest limit.
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { compressWhole } from '../../src/cas/zstd.ts';
import { type Digest, digestOf } from '../support/client.ts';
import {
  blob,
  type CaseContext,
  type HostileCase,
  invalid,
  literal,
  SEGMENT_FAULT,
} from './cases.ts';
import type { Outcome } from './raw-client.ts';
import { readsBack } from './write-cases.ts';

/** The default max_batch_total_size_bytes, which the servers under test keep. */
export const BATCH_LIMIT_BYTES = 4 * 1024 * 1024 - 64 * 1024;

const H = digestOf(blob('cas', 10)).hash;

/** Digests that are wrong in one field, with the message that must name the fault. */
export const BAD_DIGESTS: [string, object, RegExp][] = [
  ['a negative size', { hash: H, sizeBytes: -1 }, /digest size -1 is not a whole number/],
  ['a size of 2^53', { hash: H, sizeBytes: 2 ** 53 }, /digest size 9007199254740992 is not/],
  ['a size of 2^60', { hash: H, sizeBytes: 2 ** 60 }, /digest size 1152921504606847000 is not/],
  ['an upper-case hash', { hash: H.toUpperCase(), sizeBytes: 10 }, /not lower-case hex/],
  ['a 63-digit hash', { hash: H.slice(1), sizeBytes: 10 }, /has 63 hex digits/],
  ['a non-hex hash', { hash: 'z'.repeat(64), sizeBytes: 10 }, /hash "z{64}" is not lower-case/],
  ['an empty hash', { hash: '', sizeBytes: 10 }, /digest hash is empty/],
  ['no fields at all', {}, /digest hash is empty/],
];

const UNKNOWN_FUNCTIONS: [string | number, RegExp][] = [
  [99, /digest function 99 is not supported/],
  ['VSO', /digest function VSO is not supported/],
  ['MURMUR3', /digest function MURMUR3 is not supported/],
  ['SHA256TREE', /digest function SHA256TREE is not supported/],
  ['GITSHA1', /digest function GITSHA1 is not supported/],
];

function findMissingCases(): HostileCase[] {
  const good = digestOf(blob('cas:good', 10));
  const cases = BAD_DIGESTS.map(([label, digest, message]) =>
    invalid(
      `FindMissingBlobs: ${label}`,
      'FindMissingBlobs',
      { blobDigests: [good, digest] },
      message,
    ),
  );
  for (const [fn, message] of UNKNOWN_FUNCTIONS) {
    cases.push(
      invalid(
        `FindMissingBlobs: digest function ${fn}`,
        'FindMissingBlobs',
        {
          blobDigests: [good],
          digestFunction: fn,
        },
        message,
      ),
    );
  }
  cases.push(
    invalid(
      'FindMissingBlobs: BLAKE3 named with a 40-digit hash',
      'FindMissingBlobs',
      { blobDigests: [{ hash: H.slice(0, 40), sizeBytes: 1 }], digestFunction: 'BLAKE3' },
      /BLAKE3 needs 64/,
    ),
    invalid(
      'FindMissingBlobs: an instance name with ".."',
      'FindMissingBlobs',
      { instanceName: 'a/../b', blobDigests: [good] },
      SEGMENT_FAULT,
    ),
    invalid(
      'FindMissingBlobs: 100,001 digests',
      'FindMissingBlobs',
      { blobDigests: Array.from({ length: 100_001 }, () => good) },
      /asks for 100001 digests; the limit is 100000/,
    ),
  );
  return cases;
}

/** Per-entry statuses of a batch response, as [code, message] pairs. */
function entries(outcome: Outcome): [number, string][] {
  const [response] = outcome.responses as {
    responses: { status: { code: number; message: string } }[];
  }[];
  return (response?.responses ?? []).map((r) => [r.status.code, r.status.message]);
}

function batchUpdateCases(): HostileCase[] {
  const cases: HostileCase[] = [];
  const entry = (tag: string, size = 100) => {
    const data = blob(`batch:${tag}`, size);
    return { data, digest: digestOf(data) };
  };
  const faults: [string, (e: { data: Buffer; digest: Digest }) => object, RegExp][] = [
    [
      'a digest whose hash does not match',
      (e) => ({ digest: digestOf(blob('batch:other', 100)), data: e.data }),
      /data hashes to [0-9a-f]{64}, not to/,
    ],
    [
      'a digest whose size does not match',
      (e) => ({ digest: { ...e.digest, sizeBytes: 101 }, data: e.data }),
      /digest size 101 does not match 100 bytes received/,
    ],
    [
      'compressor ZSTD with bytes that are not zstd',
      (e) => ({ ...e, compressor: 'ZSTD' }),
      /zstd batch blob sha256\/[0-9a-f]{64}\/100: invalid zstd data/,
    ],
    [
      'compressor ZSTD with a frame that decodes past the digest size',
      (e) => ({ ...e, compressor: 'ZSTD', data: compressWhole(Buffer.alloc(4096)) }),
      /decodes to more than the 100 bytes the digest declares/,
    ],
    ['compressor 99', (e) => ({ ...e, compressor: 99 }), /compressor 99 is not supported/],
    [
      'an upper-case hash',
      (e) => ({ ...e, digest: { ...e.digest, hash: e.digest.hash.toUpperCase() } }),
      /not lower-case hexadecimal/,
    ],
    ['no digest', (e) => ({ data: e.data }), /digest is missing|digest hash is empty/],
  ];
  for (const [label, spoil, message] of faults) {
    const [first, bad, last] = [entry(`${label} 1`), entry(`${label} 2`), entry(`${label} 3`)];
    const sent = spoil(bad) as { digest?: Digest };
    const wellFormed = sent.digest && /^[0-9a-f]{64}$/.test(sent.digest.hash) ? [sent.digest] : [];
    cases.push({
      name: `BatchUpdateBlobs: ${label} fails that entry only`,
      rpc: 'BatchUpdateBlobs',
      requests: [{ requests: [first, sent, last] }],
      code: status.OK,
      message: /^OK$/,
      uncommitted: wellFormed,
      verify: async (ctx: CaseContext, outcome: Outcome) => {
        const statuses = entries(outcome);
        assert.deepEqual(
          statuses.map(([code]) => code),
          [status.OK, status.INVALID_ARGUMENT, status.OK],
        );
        assert.match(statuses[1]?.[1] ?? '', message);
        await readsBack(first)(ctx);
        await readsBack(last)(ctx);
      },
    });
  }
  for (const fn of [99, 'VSO']) {
    const e = entry(`function ${fn}`);
    cases.push({
      name: `BatchUpdateBlobs: digest function ${fn} fails every entry`,
      rpc: 'BatchUpdateBlobs',
      requests: [{ requests: [e], digestFunction: fn }],
      code: status.OK,
      message: /^OK$/,
      uncommitted: [e.digest],
      verify: async (_ctx, outcome) => {
        const [only] = entries(outcome);
        assert.equal(only?.[0], status.INVALID_ARGUMENT);
        assert.match(only?.[1] ?? '', new RegExp(`digest function ${fn} is not supported`));
      },
    });
  }
  const big = entry('over limit big', 3 * 1024 * 1024);
  const rest = entry('over limit rest', BATCH_LIMIT_BYTES + 1 - big.data.length);
  cases.push(
    invalid(
      'BatchUpdateBlobs: one byte over max_batch_total_size_bytes',
      'BatchUpdateBlobs',
      { requests: [big, rest] },
      literal(
        `carries ${BATCH_LIMIT_BYTES + 1} bytes of blobs; max_batch_total_size_bytes is ` +
          `${BATCH_LIMIT_BYTES}`,
      ),
      { uncommitted: [big.digest, rest.digest] },
    ),
  );
  return cases;
}

function batchReadCases(): HostileCase[] {
  const present = blob('batch read:present', 100);
  const absent = digestOf(blob('batch read:absent', 100));
  const half = Math.floor(BATCH_LIMIT_BYTES / 2);
  return [
    invalid(
      'BatchReadBlobs: one malformed digest',
      'BatchReadBlobs',
      { digests: [digestOf(present), { hash: 'zz', sizeBytes: 1 }] },
      /hash "zz" has 2 hex digits/,
    ),
    invalid(
      'BatchReadBlobs: sizes one byte over max_batch_total_size_bytes',
      'BatchReadBlobs',
      {
        digests: [
          { hash: H, sizeBytes: half },
          { hash: H, sizeBytes: BATCH_LIMIT_BYTES - half + 1 },
        ],
      },
      literal(`carries ${BATCH_LIMIT_BYTES + 1} bytes of blobs; max_batch_total_size_bytes is`),
    ),
    invalid(
      'BatchReadBlobs: two digests of the largest size',
      'BatchReadBlobs',
      {
        digests: [
          { hash: H, sizeBytes: 2 ** 53 - 1 },
          { hash: H, sizeBytes: 2 ** 53 - 1 },
        ],
      },
      /max_batch_total_size_bytes is/,
    ),
    invalid(
      'BatchReadBlobs: digest function MURMUR3',
      'BatchReadBlobs',
      { digests: [digestOf(present)], digestFunction: 'MURMUR3' },
      /digest function MURMUR3 is not supported/,
    ),
    {
      name: 'BatchReadBlobs: a missing blob fails that entry only',
      rpc: 'BatchReadBlobs',
      requests: [{ digests: [digestOf(present), absent] }],
      code: status.OK,
      message: /^OK$/,
      setup: async (ctx) => void (await ctx.commit(present)),
      uncommitted: [absent],
      verify: async (_ctx, outcome) => {
        const statuses = entries(outcome);
        assert.deepEqual(
          statuses.map(([code]) => code),
          [status.OK, status.NOT_FOUND],
        );
        assert.match(statuses[1]?.[1] ?? '', new RegExp(absent.hash));
      },
    },
  ];
}

export function casCases(): HostileCase[] {
  return [...findMissingCases(), ...batchUpdateCases(), ...batchReadCases()];
}
