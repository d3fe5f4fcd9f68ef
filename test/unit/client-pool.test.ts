// The client's bounded parallelism and its batch planning: never more than `jobs` tasks at once,
// nothing new after a failure, nothing left running when the failure is reported, and batches
// that fit the server's limit.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Digest } from '../../src/cas/digest.ts';
import { BATCH_OVERHEAD_PER_BLOB_BYTES, planBatches } from '../../src/client/batching.ts';
import { STREAM_CHUNK_BYTES } from '../../src/client/connection.ts';
import { createPool, settle } from '../../src/client/pool.ts';

function gate(): { promise: Promise<void>; open: () => void } {
  let open = () => {};
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

describe('createPool', () => {
  it('runs at most `jobs` tasks at once, including tasks submitted while others run', async () => {
    const pool = createPool(3);
    let running = 0;
    let highest = 0;
    const track = async (wait: Promise<void>) => {
      running += 1;
      highest = Math.max(highest, running);
      await wait;
      running -= 1;
    };
    const gates = Array.from({ length: 10 }, gate);
    const tasks = gates.map((g) => pool.run(() => track(g.promise)));
    for (const g of gates) {
      g.open();
      tasks.push(pool.run(() => track(Promise.resolve())));
    }
    await settle(tasks);
    assert.equal(highest, 3);
  });

  it('starts nothing after a failure, and reports it once running tasks settled', async () => {
    const pool = createPool(2);
    const slow = gate();
    let slowFinished = false;
    let laterStarted = false;
    const tasks = [
      pool.run(async () => {
        await slow.promise;
        slowFinished = true;
      }),
      pool.run(async () => {
        throw new Error('first failure');
      }),
      pool.run(async () => {
        laterStarted = true;
      }),
    ];
    const outcome = settle(tasks);
    slow.open();
    await assert.rejects(outcome, /first failure/);
    assert.equal(slowFinished, true);
    assert.equal(laterStarted, false);
  });

  it('refuses a job count below one', () => {
    assert.throws(() => createPool(0), /jobs 0/);
  });
});

describe('planBatches', () => {
  const blob = (size: number) => ({ digest: { fn: 'SHA256', hash: 'h', size } as Digest });

  it('keeps every batch within the limit, per-blob overhead counted', () => {
    const limit = 10_000;
    const blobs = Array.from({ length: 100 }, (_, i) => blob(i * 37));
    const { batches, streams } = planBatches(blobs, limit);
    assert.equal(streams.length, 0);
    assert.equal(batches.flat().length, 100);
    for (const batch of batches) {
      const cost = batch.reduce((sum, b) => sum + b.digest.size + BATCH_OVERHEAD_PER_BLOB_BYTES, 0);
      assert.ok(cost <= limit, `batch of ${cost} bytes`);
    }
  });

  it('streams blobs over 1 MiB or too large for any batch', () => {
    const big = planBatches([blob(STREAM_CHUNK_BYTES + 1), blob(10)], 64 * 1024 * 1024);
    assert.deepEqual(
      big.streams.map((b) => b.digest.size),
      [STREAM_CHUNK_BYTES + 1],
    );
    const tight = planBatches([blob(5_000)], 4_096);
    assert.equal(tight.streams.length, 1);
    assert.equal(tight.batches.length, 0);
  });
});
