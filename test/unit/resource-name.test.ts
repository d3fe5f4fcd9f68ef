import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { DIGEST_FUNCTIONS, type Digest, type DigestFunction } from '../../src/cas/digest.ts';
import { CasError } from '../../src/cas/errors.ts';
import {
  COMPRESSORS,
  type Compressor,
  parseInstanceName,
  parseReadResourceName,
  parseWriteResourceName,
} from '../../src/grpc/resource-name.ts';

const SHA256 = createHash('sha256').update('hello').digest('hex');
const MD5 = createHash('md5').update('hello').digest('hex');
const SHA1 = createHash('sha1').update('hello').digest('hex');
const SHA384 = createHash('sha384').update('hello').digest('hex');
const SHA512 = createHash('sha512').update('hello').digest('hex');
const UUID = '3f1c2a9e-7b4d-4e0a-9c51-2d8f6b7a1e03';
const RESERVED = [
  'blobs',
  'uploads',
  'compressed-blobs',
  'actions',
  'actionResults',
  'operations',
  'capabilities',
];

const HEX_LENGTH: Record<DigestFunction, number> = {
  MD5: 32,
  SHA1: 40,
  SHA256: 64,
  SHA384: 96,
  SHA512: 128,
  BLAKE3: 64,
};

function rejects(run: () => unknown, pattern?: RegExp): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof CasError, `expected a CasError, got ${String(error)}`);
    assert.equal(error.code, 'invalid_argument');
    if (pattern) assert.match(error.message, pattern);
    return true;
  });
}

function blobPart(digest: Digest, compressor: Compressor, compressedForm: boolean): string {
  // REAPI: only functions that cannot be told apart by hash length carry a function segment.
  const fnSegment = digest.fn === 'BLAKE3' ? 'blake3/' : '';
  const kind =
    compressor === 'identity' && !compressedForm ? 'blobs' : `compressed-blobs/${compressor}`;
  return `${kind}/${fnSegment}${digest.hash}/${digest.size}`;
}

const prefixed = (instance: string, rest: string) =>
  instance === '' ? rest : `${instance}/${rest}`;

describe('parseReadResourceName', () => {
  it('parses a blob with an empty instance and infers SHA256 from the hash length', () => {
    assert.deepEqual(parseReadResourceName(`blobs/${SHA256}/5`), {
      instance: '',
      digest: { fn: 'SHA256', hash: SHA256, size: 5 },
      compressor: 'identity',
    });
  });

  it('infers MD5, SHA1, SHA384 and SHA512 from the hash length', () => {
    const cases: Array<[string, DigestFunction]> = [
      [MD5, 'MD5'],
      [SHA1, 'SHA1'],
      [SHA384, 'SHA384'],
      [SHA512, 'SHA512'],
    ];
    for (const [hash, fn] of cases) {
      assert.equal(parseReadResourceName(`main/blobs/${hash}/5`).digest.fn, fn);
    }
  });

  it('keeps a multi-segment instance name whole', () => {
    const parsed = parseReadResourceName(`team/ci/linux-x86_64/blobs/${SHA256}/5`);
    assert.equal(parsed.instance, 'team/ci/linux-x86_64');
  });

  it('reads BLAKE3 from a blake3 segment', () => {
    const parsed = parseReadResourceName(`main/blobs/blake3/${SHA256}/5`);
    assert.deepEqual(parsed.digest, { fn: 'BLAKE3', hash: SHA256, size: 5 });
  });

  it('accepts an explicit sha256 segment', () => {
    const parsed = parseReadResourceName(`main/blobs/sha256/${SHA256}/5`);
    assert.deepEqual(parsed.digest, { fn: 'SHA256', hash: SHA256, size: 5 });
  });

  it('rejects a hash whose length does not fit the named function', () => {
    rejects(() => parseReadResourceName(`blobs/sha256/${MD5}/5`), /SHA256 needs 64/);
    rejects(() => parseReadResourceName(`blobs/blake3/${SHA1}/5`), /BLAKE3 needs 64/);
  });

  it('rejects an unknown digest function segment and names it', () => {
    for (const fn of ['sha999', 'vso', 'murmur3', 'sha256tree', 'gitsha1']) {
      rejects(
        () => parseReadResourceName(`main/blobs/${fn}/${SHA256}/5`),
        new RegExp(`digest function "${fn}"`),
      );
    }
  });

  it('rejects a hash in upper case', () => {
    rejects(() => parseReadResourceName(`blobs/${SHA256.toUpperCase()}/5`));
  });

  it('reports a malformed hash as a hash, not as an unknown digest function', () => {
    rejects(
      () => parseReadResourceName(`blobs/${'g'.repeat(64)}/5`),
      /hash "g{64}" is not lower-case hexadecimal/,
    );
    rejects(() => parseWriteResourceName(`uploads/${UUID}/blobs/xyz/5`), /hash "xyz"/);
    rejects(() => parseReadResourceName(`blobs/SHA256/${SHA256}/5`), /digest function "SHA256"/);
  });

  it('reads the compressor of a compressed-blobs name', () => {
    for (const compressor of COMPRESSORS) {
      const parsed = parseReadResourceName(`main/compressed-blobs/${compressor}/${SHA256}/5`);
      assert.equal(parsed.compressor, compressor);
      assert.equal(parsed.digest.hash, SHA256);
    }
    const blake = parseReadResourceName(`compressed-blobs/zstd/blake3/${SHA256}/5`);
    assert.deepEqual(blake.digest, { fn: 'BLAKE3', hash: SHA256, size: 5 });
  });

  it('rejects an unknown or missing compressor and lists the known ones', () => {
    rejects(
      () => parseReadResourceName(`compressed-blobs/gzip/${SHA256}/5`),
      /compressor "gzip" .* is unknown; known: identity, zstd, deflate, brotli/,
    );
    rejects(() => parseReadResourceName(`compressed-blobs/ZSTD/${SHA256}/5`), /"ZSTD"/);
    rejects(() => parseReadResourceName('compressed-blobs'), /compressor "" /);
  });

  it('rejects segments after the size', () => {
    rejects(
      () => parseReadResourceName(`blobs/${SHA256}/5/extra`),
      /extra segments after the size/,
    );
    rejects(() => parseReadResourceName(`blobs/${SHA256}/5/`), /extra segments/);
  });

  it('rejects a name without a blobs or compressed-blobs segment', () => {
    rejects(() => parseReadResourceName(`main/${SHA256}/5`), /no "blobs" or "compressed-blobs"/);
  });

  it('rejects a missing hash or size', () => {
    rejects(() => parseReadResourceName(`blobs/${SHA256}`), /lacks a hash and size/);
    rejects(() => parseReadResourceName('blobs'), /lacks a hash and size/);
    rejects(() => parseReadResourceName('blobs//5'), /lacks a hash and size/);
    rejects(() => parseReadResourceName(`blobs/${SHA256}/`), /size "" /);
  });

  it('rejects sizes with leading zeros, signs, fractions, exponents or spaces', () => {
    for (const size of ['007', '00', '+5', '-5', '-0', '5.0', '1e3', ' 5', '5 ', '0x10', 'five']) {
      rejects(() => parseReadResourceName(`blobs/${SHA256}/${size}`));
    }
  });

  it('accepts sizes up to 2^53 - 1 and rejects anything larger', () => {
    const max = parseReadResourceName(`blobs/${SHA256}/9007199254740991`);
    assert.equal(max.digest.size, Number.MAX_SAFE_INTEGER);
    assert.equal(parseReadResourceName(`blobs/${SHA256}/0`).digest.size, 0);
    for (const size of ['9007199254740992', '9007199254740993', '9999999999999999']) {
      rejects(() => parseReadResourceName(`blobs/${SHA256}/${size}`));
    }
    rejects(() => parseReadResourceName(`blobs/${SHA256}/99999999999999999`), /size "/);
  });

  it('rejects an empty name and a name that is not a string', () => {
    rejects(() => parseReadResourceName(''), /resource name is empty/);
    rejects(() => parseReadResourceName(undefined), /resource name is empty/);
    rejects(() => parseReadResourceName(42), /resource name is empty/);
  });

  it('rejects a name over 4096 characters and names its length and the limit', () => {
    const room = 4096 - `/blobs/${SHA256}/5`.length;
    const instance = `${'i'.repeat(999)}/`.repeat(4).padEnd(room, 'j');
    assert.equal(parseReadResourceName(`${instance}/blobs/${SHA256}/5`).instance, instance);
    rejects(
      () => parseReadResourceName(`${instance}x/blobs/${SHA256}/5`),
      /4097 characters long; the limit is 4096/,
    );
  });
});

describe('parseWriteResourceName', () => {
  it('parses an upload with an empty instance', () => {
    assert.deepEqual(parseWriteResourceName(`uploads/${UUID}/blobs/${SHA256}/5`), {
      instance: '',
      uploadId: UUID,
      digest: { fn: 'SHA256', hash: SHA256, size: 5 },
      compressor: 'identity',
    });
  });

  it('parses a compressed upload with a multi-segment instance', () => {
    const parsed = parseWriteResourceName(
      `a/b/c/uploads/${UUID}/compressed-blobs/zstd/blake3/${SHA256}/5`,
    );
    assert.deepEqual(parsed, {
      instance: 'a/b/c',
      uploadId: UUID,
      digest: { fn: 'BLAKE3', hash: SHA256, size: 5 },
      compressor: 'zstd',
    });
  });

  it('ignores metadata after the size', () => {
    const parsed = parseWriteResourceName(
      `main/uploads/${UUID}/blobs/${SHA256}/5/build/target.o/uploads/blobs`,
    );
    assert.deepEqual(parsed.digest, { fn: 'SHA256', hash: SHA256, size: 5 });
    assert.equal(parsed.instance, 'main');
  });

  it('accepts upload ids made of letters, digits and "-", "_", ".", "~"', () => {
    for (const id of [UUID, 'a', 'Z_9.x~y-z', 'u'.repeat(200)]) {
      assert.equal(parseWriteResourceName(`uploads/${id}/blobs/${SHA256}/5`).uploadId, id);
    }
  });

  it('rejects upload ids with other characters, over 200 characters, or missing', () => {
    for (const id of ['bad$id', 'with space', 'tab\tid', 'ü', 'u'.repeat(201), '']) {
      rejects(() => parseWriteResourceName(`uploads/${id}/blobs/${SHA256}/5`), /upload id/);
    }
    rejects(() => parseWriteResourceName('main/uploads'), /needs an upload id/);
  });

  it('rejects a name without an uploads segment, naming the expected layout', () => {
    rejects(
      () => parseWriteResourceName(`main/blobs/${SHA256}/5`),
      /no "uploads" segment; expected \{instance\}\/uploads\/\{uuid\}\/blobs/,
    );
  });

  it('rejects a name without blobs after the upload id', () => {
    rejects(
      () => parseWriteResourceName(`uploads/${UUID}/${SHA256}/5`),
      /needs "blobs" after the upload id/,
    );
    rejects(() => parseWriteResourceName(`uploads/${UUID}`), /needs "blobs"/);
  });

  it('rejects an unknown compressor and an unknown digest function', () => {
    rejects(
      () => parseWriteResourceName(`uploads/${UUID}/compressed-blobs/lz4/${SHA256}/5`),
      /compressor "lz4"/,
    );
    rejects(
      () => parseWriteResourceName(`uploads/${UUID}/blobs/vso/${SHA256}/5`),
      /digest function "vso"/,
    );
  });

  it('rejects a missing size and a size with leading zeros or a sign', () => {
    rejects(() => parseWriteResourceName(`uploads/${UUID}/blobs/${SHA256}`), /lacks a hash/);
    for (const size of ['05', '+5', '-5']) {
      rejects(() => parseWriteResourceName(`uploads/${UUID}/blobs/${SHA256}/${size}`), /size "/);
    }
  });

  it('rejects sizes above 2^53 - 1', () => {
    rejects(() => parseWriteResourceName(`uploads/${UUID}/blobs/${SHA256}/9007199254740992`));
  });
});

describe('instance names', () => {
  it('rejects every reserved segment inside the instance, in reads, writes and requests', () => {
    for (const word of RESERVED) {
      const instance = `team/${word}/x`;
      const pattern = new RegExp(`reserved word "${word}"`);
      rejects(() => parseInstanceName(instance), pattern);
      rejects(() => parseWriteResourceName(`${instance}/uploads/${UUID}/blobs/${SHA256}/5`));
      if (word !== 'blobs' && word !== 'compressed-blobs') {
        rejects(() => parseReadResourceName(`${instance}/blobs/${SHA256}/5`), pattern);
      }
    }
  });

  it('does not take a segment that merely contains a reserved word for it', () => {
    assert.equal(parseInstanceName('myblobs/uploads-old/Blobs'), 'myblobs/uploads-old/Blobs');
  });

  it('rejects ".", ".." and empty segments', () => {
    for (const instance of ['.', '..', 'a/./b', 'a/../b', 'a//b', '/a', 'a/']) {
      rejects(() => parseInstanceName(instance), /empty, "\." or "\.\." segment/);
      rejects(
        () => parseReadResourceName(`${instance}/blobs/${SHA256}/5`),
        /empty, "\." or "\.\." segment/,
      );
    }
    rejects(() => parseReadResourceName(`/blobs/${SHA256}/5`), /empty/);
  });

  it('allows dots inside a segment', () => {
    assert.equal(parseInstanceName('v1.2/...x/.hidden'), 'v1.2/...x/.hidden');
  });

  it('rejects control characters', () => {
    for (const control of ['\u0000', '\n', '\r', '\t', '\u001b', '\u007f']) {
      rejects(() => parseInstanceName(`ab${control}cd`), /control character/);
      rejects(
        () => parseWriteResourceName(`ab${control}cd/uploads/${UUID}/blobs/${SHA256}/5`),
        /control character/,
      );
    }
  });

  it('names the control character it found', () => {
    rejects(() => parseInstanceName('ab\u001bcd'), /control character \(U\+001B\)/);
    rejects(() => parseReadResourceName(`a\u0000/blobs/${SHA256}/5`), /\(U\+0000\)/);
  });

  it('allows non-ASCII letters and punctuation in a segment', () => {
    assert.equal(parseInstanceName('équipe/構築/a:b@c%20'), 'équipe/構築/a:b@c%20');
  });

  it('rejects a segment over 1024 characters and names its length', () => {
    assert.equal(parseInstanceName('s'.repeat(1024)).length, 1024);
    rejects(() => parseInstanceName('s'.repeat(1025)), /segment of 1025 characters exceeds 1024/);
  });

  it('treats an absent or empty instance name as the default instance', () => {
    assert.equal(parseInstanceName(undefined), '');
    assert.equal(parseInstanceName(null), '');
    assert.equal(parseInstanceName(''), '');
  });

  it('rejects an instance name that is not a string', () => {
    rejects(() => parseInstanceName(7), /must be a string/);
    rejects(() => parseInstanceName({ name: 'main' }), /must be a string/);
  });
});

const instanceSegment = fc
  .string({ unit: fc.constantFrom(...'abcxyzABC019-_.:@%+ é漢'), minLength: 1, maxLength: 12 })
  .filter((segment) => segment !== '.' && segment !== '..' && !RESERVED.includes(segment));
const instanceName = fc
  .array(instanceSegment, { maxLength: 4 })
  .map((segments) => segments.join('/'));
const uploadId = fc.oneof(fc.uuid(), fc.stringMatching(/^[A-Za-z0-9._~-]{1,200}$/));
const digestArb: fc.Arbitrary<Digest> = fc.constantFrom(...DIGEST_FUNCTIONS).chain((fn) =>
  fc
    .record({
      fn: fc.constant(fn),
      hash: fc.string({
        unit: fc.constantFrom(...'0123456789abcdef'),
        minLength: HEX_LENGTH[fn],
        maxLength: HEX_LENGTH[fn],
      }),
      size: fc.oneof(fc.nat(), fc.maxSafeNat()),
    })
    .map((digest) => ({ ...digest })),
);
const compressorArb = fc.constantFrom(...COMPRESSORS);
const metadata = fc.array(fc.string({ unit: 'grapheme-ascii', maxLength: 10 }), { maxLength: 3 });

describe('resource name round trips (property)', () => {
  it('parses a formatted upload name back to its instance, upload id, digest, compressor', () => {
    fc.assert(
      fc.property(
        instanceName,
        uploadId,
        digestArb,
        compressorArb,
        fc.boolean(),
        metadata,
        (instance, id, digest, compressor, compressedForm, extra) => {
          const tail = extra.length > 0 ? `/${extra.join('/')}` : '';
          const name = prefixed(
            instance,
            `uploads/${id}/${blobPart(digest, compressor, compressedForm)}${tail}`,
          );
          assert.deepEqual(parseWriteResourceName(name), {
            instance,
            uploadId: id,
            digest,
            compressor,
          });
        },
      ),
      { numRuns: 300 },
    );
  });

  it('parses a formatted read name back to its instance, digest and compressor', () => {
    fc.assert(
      fc.property(
        instanceName,
        digestArb,
        compressorArb,
        fc.boolean(),
        (instance, digest, compressor, compressedForm) => {
          const name = prefixed(instance, blobPart(digest, compressor, compressedForm));
          assert.deepEqual(parseReadResourceName(name), { instance, digest, compressor });
          assert.equal(parseInstanceName(instance), instance);
        },
      ),
      { numRuns: 300 },
    );
  });
});

const TOKENS = [
  ...RESERVED,
  ...COMPRESSORS,
  'gzip',
  'blake3',
  'sha256',
  'md5',
  'sha999',
  'vso',
  '',
  '.',
  '..',
  '0',
  '007',
  '-1',
  '9007199254740992',
  '__proto__',
  'constructor',
  SHA256,
  MD5,
  SHA1,
  SHA512,
  UUID,
];
const nameLike = fc.oneof(
  fc
    .array(
      fc.oneof(
        fc.constantFrom(...TOKENS),
        fc.nat().map(String),
        fc.string({ unit: 'binary', maxLength: 8 }),
      ),
      { maxLength: 10 },
    )
    .map((segments) => segments.join('/')),
  fc.string({ unit: 'binary', maxLength: 300 }),
  fc.string({ unit: fc.constantFrom('/', 'a', 'b', '.', '0'), maxLength: 5000 }),
);

function returnsOrRejectsAsInvalid(run: () => unknown): void {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof CasError, `threw ${String(error)}`);
    assert.equal(error.code, 'invalid_argument');
  }
}

describe('parsers on arbitrary input (property)', () => {
  it('either return or throw an invalid_argument CasError for any string', () => {
    fc.assert(
      fc.property(nameLike, (name) => {
        returnsOrRejectsAsInvalid(() => parseReadResourceName(name));
        returnsOrRejectsAsInvalid(() => parseWriteResourceName(name));
        returnsOrRejectsAsInvalid(() => parseInstanceName(name));
      }),
      { numRuns: 1000 },
    );
  });

  it('either return or throw an invalid_argument CasError for any value', () => {
    fc.assert(
      fc.property(fc.anything(), (value) => {
        returnsOrRejectsAsInvalid(() => parseReadResourceName(value));
        returnsOrRejectsAsInvalid(() => parseWriteResourceName(value));
        returnsOrRejectsAsInvalid(() => parseInstanceName(value));
      }),
      { numRuns: 300 },
    );
  });
});
