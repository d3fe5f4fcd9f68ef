import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  type AssetRecord,
  assetKey,
  canonicalQualifiers,
  decodeAssetRecord,
  encodeAssetRecord,
  recordNames,
} from '../../src/asset/asset-record.ts';
import type { CasError } from '../../src/cas/errors.ts';

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');
const qualifier = fc.record({ name: fc.string({ minLength: 1 }), value: fc.string() });

describe('asset keys', () => {
  it('hash the documented canonical serialisation', () => {
    const qualifiers = canonicalQualifiers([
      { name: 'b', value: '2' },
      { name: 'a', value: '1' },
    ]);
    assert.equal(
      assetKey('directory', 'urn:x', qualifiers),
      sha256('["tessera-asset/1","directory","urn:x",[["a","1"],["b","2"]]]'),
    );
  });

  it('do not depend on the order qualifiers are listed in', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(qualifier, { selector: (q) => q.name, maxLength: 8 }),
        fc.string(),
        (list, uri) => {
          const reversed = canonicalQualifiers([...list].reverse());
          assert.equal(
            assetKey('blob', uri, canonicalQualifiers(list)),
            assetKey('blob', uri, reversed),
          );
        },
      ),
    );
  });

  it('tell apart names that plain concatenation would merge', () => {
    const keys = new Set([
      assetKey('blob', 'x', [{ name: 'a', value: 'b:c' }]),
      assetKey('blob', 'x', [{ name: 'a:b', value: 'c' }]),
      assetKey('blob', 'x:a', [{ name: 'b', value: 'c' }]),
      assetKey('blob', 'x', []),
      assetKey('directory', 'x', []),
    ]);
    assert.equal(keys.size, 5);
  });

  it('refuse a qualifier name given twice or empty', () => {
    assert.throws(
      () =>
        canonicalQualifiers([
          { name: 'q', value: '1' },
          { name: 'q', value: '1' },
        ]),
      (error: CasError) =>
        error.code === 'invalid_argument' && /"q" is given twice/.test(error.message),
    );
    assert.throws(
      () => canonicalQualifiers([{ name: '', value: 'v' }]),
      (error: CasError) => error.code === 'invalid_argument',
    );
  });
});

describe('asset records', () => {
  const record: AssetRecord = {
    kind: 'directory',
    uri: 'urn:fdc:buildstream.build:2020:v1:p/e/abc',
    qualifiers: [{ name: 'a', value: '1' }],
    target: { fn: 'SHA256', hash: 'ab'.repeat(32), size: 120 },
    referencedBlobs: [{ fn: 'SHA256', hash: 'cd'.repeat(32), size: 0 }],
    referencedDirectories: [],
    pushedAtMs: 1_700_000_000_123,
    expiresAtMs: undefined,
  };

  it('decode to what was encoded', () => {
    assert.deepEqual(decodeAssetRecord(encodeAssetRecord(record)), record);
    const expiring = { ...record, expiresAtMs: 1_800_000_000_000 };
    assert.deepEqual(decodeAssetRecord(encodeAssetRecord(expiring)), expiring);
  });

  it('know the name they were stored under', () => {
    assert.ok(recordNames(record, 'directory', record.uri, record.qualifiers));
    assert.ok(!recordNames(record, 'blob', record.uri, record.qualifiers));
    assert.ok(!recordNames(record, 'directory', record.uri, []));
  });

  it('turn unreadable bytes into an internal error that keeps the cause', () => {
    for (const bytes of ['not json', '{"v":2}', JSON.stringify({ v: 1, kind: 'file' })]) {
      assert.throws(
        () => decodeAssetRecord(Buffer.from(bytes)),
        (error: CasError) => error.code === 'internal' && error.cause !== undefined,
      );
    }
  });
});
