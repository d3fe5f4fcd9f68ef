// Crash-point testing, reduced for CI: a few trials at each crash point and at random moments.
// `npm run torture` runs hundreds and prints the same report.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WRITE_PATH_CRASH_POINTS } from '../../src/observability/crash-points.ts';
import { runTorture } from './torture.ts';

describe('a replica killed anywhere on the write path', () => {
  it('never loses an acknowledged blob nor serves a partial one', {
    timeout: 600_000,
  }, async () => {
    const report = await runTorture({ trials: 15 });
    console.log(`crash-point trials: ${JSON.stringify(report)}`);
    assert.deepEqual(report.violations, []);
    for (const point of WRITE_PATH_CRASH_POINTS) {
      assert.ok((report.crashes[point] ?? 0) > 0, `no trial crashed at ${point}`);
    }
    assert.ok(report.acknowledged > 0, 'some uploads were acknowledged');
  });
});
