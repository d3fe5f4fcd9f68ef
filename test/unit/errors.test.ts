import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  CasError,
  invalidArgument,
  notFound,
  outOfRange,
  toCasError,
  unavailable,
} from '../../src/cas/errors.ts';
import { OffsetMismatchError } from '../../src/cas/upload-sink.ts';

describe('CasError', () => {
  it('is an Error that carries its code, message and cause', () => {
    const cause = new Error('socket hang up');
    const error = new CasError('unavailable', 's3 is unreachable', { cause });
    assert.ok(error instanceof Error);
    assert.equal(error.name, 'CasError');
    assert.equal(error.code, 'unavailable');
    assert.equal(error.message, 's3 is unreachable');
    assert.equal(error.cause, cause);
  });

  it('is built with the right code by each helper', () => {
    assert.equal(invalidArgument('a').code, 'invalid_argument');
    assert.equal(notFound('b').code, 'not_found');
    assert.equal(outOfRange('c').code, 'out_of_range');
    const cause = new Error('ECONNRESET');
    const down = unavailable('redis is unreachable', cause);
    assert.equal(down.code, 'unavailable');
    assert.equal(down.message, 'redis is unreachable');
    assert.equal(down.cause, cause);
  });
});

/** Objects that String() cannot convert: their conversion hooks are replaced by other values. */
const oddObject = fc.dictionary(fc.constantFrom('toString', 'valueOf'), fc.anything(), {
  minKeys: 1,
});

describe('toCasError', () => {
  it('returns a CasError unchanged', () => {
    const error = notFound('blob sha256/abc/3 is not in the cas');
    assert.equal(toCasError(error), error);
  });

  it('returns a CasError subclass unchanged', () => {
    const error = new OffsetMismatchError('write offset 4 does not continue the upload');
    const normalised = toCasError(error);
    assert.equal(normalised, error);
    assert.equal(normalised.code, 'invalid_argument');
  });

  it('turns an Error into an internal CasError that keeps it as the cause', () => {
    for (const thrown of [new Error('boom'), new TypeError('x is not a function')]) {
      const normalised = toCasError(thrown);
      assert.ok(normalised instanceof CasError);
      assert.equal(normalised.code, 'internal');
      assert.equal(normalised.cause, thrown);
      assert.match(normalised.message, /^internal error/);
    }
  });

  it('turns a thrown non-Error value into an internal CasError that keeps it as the cause', () => {
    for (const thrown of ['text', 42, undefined, null, { status: 500 }, Symbol('s'), 7n]) {
      const normalised = toCasError(thrown);
      assert.ok(normalised instanceof CasError);
      assert.equal(normalised.code, 'internal');
      assert.equal(normalised.cause, thrown);
    }
  });

  it('turns a thrown object without a prototype into an internal CasError', () => {
    const thrown: unknown = Object.create(null);
    const normalised = toCasError(thrown);
    assert.equal(normalised.code, 'internal');
    assert.equal(normalised.cause, thrown);
  });

  it('turns a thrown object whose toString throws into an internal CasError', () => {
    const thrown = {
      toString(): string {
        throw new Error('no string for you');
      },
    };
    const normalised = toCasError(thrown);
    assert.equal(normalised.code, 'internal');
    assert.equal(normalised.cause, thrown);
  });

  it('always returns a CasError, whatever was thrown (property)', () => {
    fc.assert(
      fc.property(fc.oneof(fc.anything(), oddObject), (thrown) => {
        const normalised = toCasError(thrown);
        assert.ok(normalised instanceof CasError);
        if (!(thrown instanceof CasError)) assert.equal(normalised.code, 'internal');
      }),
      { numRuns: 300 },
    );
  });
});
