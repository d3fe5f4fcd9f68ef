import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CasError } from '../../src/cas/errors.ts';
import { StagingBudget } from '../../src/staging/budget.ts';

describe('StagingBudget', () => {
  it('refuses a reservation past the limit, naming what is in use and the limit', () => {
    const budget = new StagingBudget(100);
    budget.reserve(60, 'the first upload');
    assert.throws(
      () => budget.reserve(50, 'the second upload'),
      (error: unknown) =>
        error instanceof CasError &&
        error.code === 'resource_exhausted' &&
        /the second upload needs 50 bytes of staging space; 60 of the 100 bytes/.test(
          error.message,
        ),
    );
    assert.equal(budget.reservedBytes, 60);
  });

  it('gives the bytes back once, however often a reservation is released', () => {
    const budget = new StagingBudget(100);
    const first = budget.reserve(60, 'a');
    const second = budget.reserve(40, 'b');
    first.release();
    first.release();
    assert.equal(budget.reservedBytes, 40);
    second.release();
    assert.equal(budget.reservedBytes, 0);
  });

  it('says when a blob can never fit', () => {
    const budget = new StagingBudget(100);
    assert.throws(() => budget.reserve(101, 'a huge upload'), /can never fit/);
  });

  it('has no limit at 0', () => {
    const budget = new StagingBudget(0);
    budget.reserve(Number.MAX_SAFE_INTEGER, 'anything');
    assert.equal(budget.reservedBytes, Number.MAX_SAFE_INTEGER);
  });
});
