// SIGTERM on a replica: it stops taking new calls, lets uploads in flight finish within the grace
// period, and hands the ones that do not finish over to other replicas instead of dropping them.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import type { ClientWritableStream } from '@grpc/grpc-js';
import { checkCommitEntries } from '../crash/torture.ts';
import { blobName, connect, digestOf, type TestClient, uploadName } from '../support/client.ts';
import {
  createSharedStore,
  errorEntries,
  removeSharedStore,
  type SharedStore,
  startReplica,
} from '../support/replicas.ts';

const MIB = 1024 * 1024;
const ENV = {
  // Handing an upload over needs a checkpoint another replica can continue.
  TESSERA_RESUME_ACROSS_REPLICAS: 'true',
  TESSERA_S3_MULTIPART_THRESHOLD_BYTES: String(6 * MIB),
  TESSERA_S3_PART_SIZE_BYTES: String(5 * MIB),
};

/** Opens a Write and sends `bytes` of `data` without finishing; resolves with the call's outcome. */
function openWrite(client: TestClient, name: string, data: Buffer, bytes: number) {
  let settle: (outcome: { error: Error | null; committedSize?: number }) => void = () => {};
  const outcome = new Promise<{ error: Error | null; committedSize?: number }>((resolve) => {
    settle = resolve;
  });
  const call = (
    client.byteStream.Write as (
      cb: (e: Error | null, r?: { committedSize: number }) => void,
    ) => ClientWritableStream<object>
  ).call(client.byteStream, (error, response) =>
    settle({ error, committedSize: response?.committedSize }),
  );
  call.on('error', () => undefined);
  for (let at = 0; at < bytes; at += MIB) {
    const end = Math.min(at + MIB, bytes);
    call.write({
      resourceName: at === 0 ? name : '',
      writeOffset: at,
      data: data.subarray(at, end),
    });
  }
  return { call, outcome };
}

async function progress(client: TestClient, name: string): Promise<number> {
  const answer = await client
    .unary<{ committedSize: number }>(client.byteStream, 'QueryWriteStatus', { resourceName: name })
    .catch(() => ({ committedSize: 0 }));
  return answer.committedSize;
}

describe('a replica told to stop', () => {
  let store: SharedStore;
  before(async () => {
    store = await createSharedStore('shutdown');
  });
  after(() => removeSharedStore(store));

  it('finishes an upload in flight, refuses new calls, and exits cleanly', async () => {
    const a = await startReplica(store, { env: { ...ENV, TESSERA_SHUTDOWN_GRACE_SECONDS: '30' } });
    const b = await startReplica(store, { env: ENV });
    const data = randomBytes(24 * MIB);
    const digest = digestOf(data);
    const name = uploadName(digest);
    const toA = connect(a.address);
    const toB = connect(b.address);
    const { call, outcome } = openWrite(toA, name, data, 10 * MIB);
    while ((await progress(toA, name)) < 5 * MIB) await new Promise((r) => setTimeout(r, 20));

    const exited = once(a.server.child, 'exit');
    a.server.child.kill('SIGTERM');
    while (!a.server.logs.some((line) => line.msg === 'shutting down')) {
      await new Promise((r) => setTimeout(r, 10));
    }
    // A new connection is refused while the old call goes on.
    const late = connect(a.address);
    await assert.rejects(late.unary(late.capabilities, 'GetCapabilities', {}));
    late.close();
    for (let at = 10 * MIB; at < data.length; at += MIB) {
      const end = Math.min(at + MIB, data.length);
      call.write({
        writeOffset: at,
        data: data.subarray(at, end),
        finishWrite: end === data.length,
      });
    }
    call.end();
    const result = await outcome;
    assert.equal(result.error, null);
    assert.equal(result.committedSize, data.length);
    const [code] = await exited;
    assert.equal(code, 0);
    assert.ok((await toB.read(blobName(digest))).data.equals(data));
    assert.deepEqual(errorEntries(a.server.logs), []);
    toA.close();
    toB.close();
    await b.stop();
    assert.deepEqual(await checkCommitEntries(store), []);
  });

  it('hands an upload that does not finish in time over to another replica', async () => {
    const a = await startReplica(store, { env: { ...ENV, TESSERA_SHUTDOWN_GRACE_SECONDS: '1' } });
    const b = await startReplica(store, { env: ENV });
    const data = randomBytes(30 * MIB);
    const digest = digestOf(data);
    const name = uploadName(digest);
    const toA = connect(a.address);
    const toB = connect(b.address);
    const { outcome } = openWrite(toA, name, data, 20 * MIB);
    while ((await progress(toB, name)) < 10 * MIB) await new Promise((r) => setTimeout(r, 20));

    const started = Date.now();
    assert.equal(await a.stop(), 0);
    assert.ok(Date.now() - started < 15_000, 'the replica stopped within its grace period');
    assert.notEqual((await outcome).error, null, 'the unfinished call was cut off');

    const resumeAt = await progress(toB, name);
    assert.ok(resumeAt >= 10 * MIB, `another replica resumes at ${resumeAt}`);
    assert.equal(await toB.write(name, data, { offset: resumeAt, chunkBytes: MIB }), data.length);
    assert.ok((await toB.read(blobName(digest))).data.equals(data));
    toA.close();
    toB.close();
    await b.stop();
  });
});
