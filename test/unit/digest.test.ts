import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { blake3 } from 'hash-wasm';
import {
  assertMatches,
  createHasher,
  DIGEST_FUNCTIONS,
  type DigestFunction,
  emptyDigest,
  fromWireDigest,
  hashBytes,
  isEmptyDigest,
  MAX_BLOB_SIZE_BYTES,
  resolveDigestFunction,
  toDigest,
} from '../../src/cas/digest.ts';
import { CasError } from '../../src/cas/errors.ts';

const HEX_LENGTH: Record<DigestFunction, number> = {
  MD5: 32,
  SHA1: 40,
  SHA256: 64,
  SHA384: 96,
  SHA512: 128,
  BLAKE3: 64,
};

/** Reference hashes computed without the code under test. */
async function referenceHash(fn: DigestFunction, bytes: Uint8Array): Promise<string> {
  if (fn === 'BLAKE3') return blake3(bytes);
  return createHash(fn === 'SHA1' ? 'sha1' : fn.toLowerCase())
    .update(bytes)
    .digest('hex');
}

function rejectsWith(run: () => unknown, pattern: RegExp): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof CasError, `expected a CasError, got ${String(error)}`);
    assert.equal(error.code, 'invalid_argument');
    assert.match(error.message, pattern);
    return true;
  });
}

describe('resolveDigestFunction', () => {
  it('infers each length-distinguishable function from the hash length when none is named', () => {
    const byLength: Array<[number, DigestFunction]> = [
      [32, 'MD5'],
      [40, 'SHA1'],
      [64, 'SHA256'],
      [96, 'SHA384'],
      [128, 'SHA512'],
    ];
    for (const [length, fn] of byLength) {
      const hash = 'a'.repeat(length);
      assert.equal(resolveDigestFunction(undefined, hash), fn);
      assert.equal(resolveDigestFunction('UNKNOWN', hash), fn);
      assert.equal(resolveDigestFunction(0, hash), fn);
      assert.equal(resolveDigestFunction('', hash), fn);
    }
  });

  it('treats a 64-digit hash without a named function as SHA256, never BLAKE3', () => {
    assert.equal(resolveDigestFunction(undefined, 'f'.repeat(64)), 'SHA256');
  });

  it('rejects a hash whose length matches no function, naming the length', () => {
    for (const length of [0, 1, 31, 33, 63, 65, 127, 129]) {
      rejectsWith(
        () => resolveDigestFunction(undefined, 'a'.repeat(length)),
        new RegExp(`has ${length} hex digits`),
      );
    }
  });

  it('returns an explicitly named supported function whatever the hash length', () => {
    for (const fn of DIGEST_FUNCTIONS) {
      assert.equal(resolveDigestFunction(fn, 'a'.repeat(64)), fn);
      assert.equal(resolveDigestFunction(fn, 'abc'), fn);
    }
  });

  it('rejects unsupported functions and names the value and the supported list', () => {
    for (const value of ['VSO', 'MURMUR3', 'SHA256TREE', 'GITSHA1', 'sha256', 99, 7]) {
      rejectsWith(
        () => resolveDigestFunction(value, 'a'.repeat(64)),
        new RegExp(`digest function ${String(value)} is not supported; supported: SHA256`),
      );
    }
  });
});

describe('toDigest', () => {
  it('accepts a lower-case hash of the right length and a whole size', () => {
    for (const fn of DIGEST_FUNCTIONS) {
      const hash = '0123456789abcdef'.repeat(8).slice(0, HEX_LENGTH[fn]);
      assert.deepEqual(toDigest(fn, hash, 42), { fn, hash, size: 42 });
    }
  });

  it('rejects an upper-case hash', () => {
    rejectsWith(() => toDigest('SHA256', 'A'.repeat(64), 1), /is not lower-case hexadecimal/);
  });

  it('rejects a hash with non-hex characters, or one that is not a string', () => {
    rejectsWith(() => toDigest('SHA256', `${'a'.repeat(63)}g`, 1), /not lower-case hexadecimal/);
    rejectsWith(() => toDigest('SHA256', '', 1), /not lower-case hexadecimal/);
    rejectsWith(() => toDigest('SHA256', 1234, 1), /hash "1234" is not lower-case/);
    rejectsWith(() => toDigest('SHA256', undefined, 1), /not lower-case hexadecimal/);
  });

  it('rejects a hash whose length does not fit the function, naming both lengths', () => {
    rejectsWith(() => toDigest('SHA256', 'a'.repeat(40), 1), /has 40 hex digits; SHA256 needs 64/);
    rejectsWith(() => toDigest('BLAKE3', 'a'.repeat(128), 1), /128 hex digits; BLAKE3 needs 64/);
    rejectsWith(() => toDigest('MD5', 'a'.repeat(64), 1), /64 hex digits; MD5 needs 32/);
  });

  it('shortens an over-long hash in the message', () => {
    assert.throws(
      () => toDigest('SHA256', 'a'.repeat(5000), 1),
      (error: unknown) => error instanceof CasError && error.message.length < 400,
    );
  });

  it('rejects negative, fractional, non-finite, unsafe and non-number sizes', () => {
    const bad = [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53, 1e300, '12', 12n, null];
    for (const size of bad) {
      rejectsWith(
        () => toDigest('SHA256', 'a'.repeat(64), size),
        new RegExp(`digest size .* is not a whole number between 0 and ${MAX_BLOB_SIZE_BYTES}`),
      );
    }
  });

  it('accepts the sizes at both ends of the range', () => {
    assert.equal(toDigest('SHA256', 'a'.repeat(64), 0).size, 0);
    assert.equal(toDigest('SHA256', 'a'.repeat(64), MAX_BLOB_SIZE_BYTES).size, 2 ** 53 - 1);
  });
});

describe('fromWireDigest', () => {
  it('infers the function from the hash when the request names none', () => {
    const hash = 'b'.repeat(40);
    assert.deepEqual(fromWireDigest({ hash, sizeBytes: 3 }, 'UNKNOWN'), {
      fn: 'SHA1',
      hash,
      size: 3,
    });
  });

  it('uses the function the request names', () => {
    const hash = 'c'.repeat(64);
    assert.equal(fromWireDigest({ hash, sizeBytes: 0 }, 'BLAKE3').fn, 'BLAKE3');
  });

  it('rejects a missing digest and an empty or absent hash', () => {
    rejectsWith(() => fromWireDigest(null, 'SHA256'), /digest is missing/);
    rejectsWith(() => fromWireDigest(undefined, 'SHA256'), /digest is missing/);
    rejectsWith(() => fromWireDigest({ hash: '', sizeBytes: 0 }, 'SHA256'), /hash is empty/);
    rejectsWith(() => fromWireDigest({ sizeBytes: 0 }, 'SHA256'), /hash is empty/);
    rejectsWith(() => fromWireDigest({ hash: 5, sizeBytes: 0 }, 'SHA256'), /hash is empty/);
  });

  it('rejects a hash that does not fit the named function', () => {
    rejectsWith(
      () => fromWireDigest({ hash: 'a'.repeat(32), sizeBytes: 1 }, 'SHA256'),
      /32 hex digits; SHA256 needs 64/,
    );
  });

  it('rejects a negative size', () => {
    rejectsWith(
      () => fromWireDigest({ hash: 'a'.repeat(64), sizeBytes: -5 }, 'SHA256'),
      /digest size -5/,
    );
  });
});

describe('emptyDigest and isEmptyDigest', () => {
  it('gives the hash of no bytes for every function', async () => {
    for (const fn of DIGEST_FUNCTIONS) {
      const empty = emptyDigest(fn);
      assert.deepEqual(empty, { fn, hash: await referenceHash(fn, new Uint8Array(0)), size: 0 });
      assert.equal(isEmptyDigest(empty), true);
    }
  });

  it('does not take a non-empty size or another hash for the empty blob', () => {
    for (const fn of DIGEST_FUNCTIONS) {
      const empty = emptyDigest(fn);
      assert.equal(isEmptyDigest({ ...empty, size: 1 }), false);
      assert.equal(isEmptyDigest({ ...empty, hash: '0'.repeat(HEX_LENGTH[fn]) }), false);
    }
  });

  it("does not take SHA256's empty hash for the empty BLAKE3 blob", () => {
    assert.equal(isEmptyDigest({ ...emptyDigest('SHA256'), fn: 'BLAKE3' }), false);
  });
});

describe('createHasher', () => {
  it('hashes like the reference implementation for every function', async () => {
    const bytes = new TextEncoder().encode('the quick brown fox');
    for (const fn of DIGEST_FUNCTIONS) {
      assert.equal(await hashBytes(fn, bytes), await referenceHash(fn, bytes));
    }
  });

  it('gives the same hash fed in any chunking as fed at once (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...DIGEST_FUNCTIONS),
        fc.uint8Array({ maxLength: 4096 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        async (fn, bytes, cutSeeds) => {
          const cuts = [...new Set(cutSeeds.map((seed) => seed % (bytes.length + 1)))].sort(
            (a, b) => a - b,
          );
          const hasher = await createHasher(fn);
          let start = 0;
          for (const cut of [...cuts, bytes.length]) {
            hasher.update(bytes.subarray(start, cut));
            start = cut;
          }
          assert.equal(hasher.digest(), await referenceHash(fn, bytes));
        },
      ),
      { numRuns: 150 },
    );
  });

  it('gives independent hashers that do not share state', async () => {
    const first = await createHasher('BLAKE3');
    const second = await createHasher('BLAKE3');
    first.update(new Uint8Array([1, 2, 3]));
    assert.equal(second.digest(), emptyDigest('BLAKE3').hash);
    assert.equal(first.digest(), await blake3(new Uint8Array([1, 2, 3])));
  });
});

describe('assertMatches', () => {
  const digest = toDigest('SHA256', 'd'.repeat(64), 1_048_576);

  it('accepts a matching size and hash', () => {
    assert.doesNotThrow(() => assertMatches(digest, 1_048_576, 'd'.repeat(64)));
  });

  it('names the digest size, the received size and the digest on a size mismatch', () => {
    rejectsWith(
      () => assertMatches(digest, 1_048_000, 'd'.repeat(64)),
      new RegExp(
        `digest size 1048576 does not match 1048000 bytes received for sha256/${'d'.repeat(64)}`,
      ),
    );
  });

  it('names the received hash, the expected hash and the function on a hash mismatch', () => {
    rejectsWith(
      () => assertMatches(digest, 1_048_576, 'e'.repeat(64)),
      new RegExp(`data hashes to ${'e'.repeat(64)}, not to ${'d'.repeat(64)} \\(sha256\\)`),
    );
  });
});
