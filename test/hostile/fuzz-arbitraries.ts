// Generators of hostile values for the gRPC-level properties: resource names made of the words
// a parser cares about (and of anything else), and digests and digest functions that are right,
// nearly right or nonsense.
import fc from 'fast-check';

const HEX = '0123456789abcdef';
const hexOf = (length: number) =>
  fc.string({ unit: fc.constantFrom(...HEX), minLength: length, maxLength: length });

/** Hashes of every length a function uses, one off, upper-case, not hex at all, or empty. */
export const hashArb: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(32, 40, 64, 64, 96, 128).chain(hexOf),
  fc.constantFrom(0, 1, 31, 33, 39, 63, 65, 127, 129).chain(hexOf),
  hexOf(64).map((hash) => hash.toUpperCase()),
  fc.string({ minLength: 64, maxLength: 64 }),
  fc.string({ maxLength: 140 }),
);

export const sizeArb: fc.Arbitrary<number> = fc.oneof(
  fc.integer({ min: -3, max: 3000 }),
  fc.constantFrom(-1, 2 ** 31, 2 ** 53 - 1, 2 ** 53, 2 ** 62, -(2 ** 62), 64 * 1024 * 1024 + 1),
);

/** Digest function enum values: every name the protocol has, and numbers it does not. */
export const digestFunctionArb: fc.Arbitrary<string | number> = fc.oneof(
  fc.constantFrom(
    'UNKNOWN',
    'SHA256',
    'SHA1',
    'MD5',
    'VSO',
    'SHA384',
    'SHA512',
    'MURMUR3',
    'SHA256TREE',
    'BLAKE3',
    'GITSHA1',
  ),
  fc.integer({ min: 0, max: 300 }),
);

export const wireDigestArb = fc.record({ hash: hashArb, sizeBytes: sizeArb });

export const instanceArb: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: fc.constant(''), weight: 4 },
  fc.constantFrom('team', 'a/b', '..', 'a//b', 'blobs', 'uploads', 'x\u0000y', 'é/構'),
  fc.string({ maxLength: 20 }),
);

/** The words resource-name parsing turns on, and a few it must survive. */
const WORDS = [
  'blobs',
  'uploads',
  'compressed-blobs',
  'identity',
  'zstd',
  'deflate',
  'lz4',
  'sha256',
  'sha1',
  'md5',
  'blake3',
  'vso',
  'murmur3',
  'SHA256',
  '..',
  '.',
  '',
  'team',
  'u-1',
  '0',
  '1',
  '300',
  '-1',
  '01',
  '1.5',
  '9007199254740991',
  '9007199254740992',
  'meta',
  '\u0001',
];

const segmentArb: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: fc.constantFrom(...WORDS), weight: 4 },
  { arbitrary: hashArb, weight: 2 },
  fc.nat({ max: 5000 }).map(String),
  fc.string({ maxLength: 10 }),
);

/** Names shaped like the real layouts, in which any segment may be wrong. */
const layoutArb = fc
  .record({
    instance: instanceArb,
    upload: fc.constantFrom('', 'uploads/u-1/', 'uploads/', 'uploads/u 1/'),
    kind: fc.constantFrom(
      'blobs/',
      'compressed-blobs/zstd/',
      'compressed-blobs/identity/',
      'blob/',
      '',
    ),
    fn: fc.constantFrom('', '', 'sha256/', 'blake3/', 'md5/', 'vso/'),
    hash: hashArb,
    size: fc.oneof(sizeArb.map(String), segmentArb),
    tail: fc.constantFrom('', '', '/meta', '/', '/x/y'),
  })
  .map((p) => {
    const prefix = p.instance === '' ? '' : `${p.instance}/`;
    return `${prefix}${p.upload}${p.kind}${p.fn}${p.hash}/${p.size}${p.tail}`;
  });

export const resourceNameArb: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: layoutArb, weight: 4 },
  { arbitrary: fc.array(segmentArb, { maxLength: 9 }).map((s) => s.join('/')), weight: 3 },
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.string({ unit: fc.constantFrom('a', '/', '.', 'b'), minLength: 4000, maxLength: 4200 }),
);
