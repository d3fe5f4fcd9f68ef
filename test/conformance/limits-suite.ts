// Resource limits every storage mode keeps: how many uploads may be open at once, how much
// staging space they may reserve, and how long an idle upload lives. Each case starts its own
// server with the limit under test and checks what clients see and what is left in staging.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { type ClientWritableStream, status } from '@grpc/grpc-js';
import {
  codeOf,
  connect,
  type Digest,
  digestOf,
  randomBlob,
  type TestClient,
  uploadName,
  writeProgress,
} from '../support/client.ts';
import type { ServerFactory, ServerUnderTest } from './harness.ts';

const KIB = 1024;
const POLL_DEADLINE_MS = 15_000;
const POLL_INTERVAL_MS = 25;

interface OpenWrite {
  readonly name: string;
  readonly digest: Digest;
  /** Sends `data[from, to)`, with finish_write when `to` is the end. */
  send(from: number, to: number): void;
  /** Half-closes the stream. */
  end(): void;
  cancel(): void;
  /** The call's outcome; never rejects. */
  readonly outcome: Promise<{ code?: number; message?: string; committedSize?: number }>;
}

function openWrite(client: TestClient, data: Buffer): OpenWrite {
  const digest = digestOf(data);
  const name = uploadName(digest);
  let settle: (value: { code?: number; message?: string; committedSize?: number }) => void;
  const outcome = new Promise<{ code?: number; message?: string; committedSize?: number }>(
    (resolve) => {
      settle = resolve;
    },
  );
  const start = client.byteStream.Write as (
    cb: (error: Error | null, response?: { committedSize: number }) => void,
  ) => ClientWritableStream<object>;
  const call = start.call(client.byteStream, (error, response) =>
    settle(
      error
        ? { code: codeOf(error), message: error.message }
        : { committedSize: response?.committedSize },
    ),
  );
  call.on('error', () => undefined);
  return {
    name,
    digest,
    send(from, to) {
      call.write({
        resourceName: name,
        writeOffset: from,
        data: data.subarray(from, to),
        finishWrite: to === data.length,
      });
    },
    end: () => call.end(),
    cancel: () => call.cancel(),
    outcome,
  };
}

/** Polls `check` until it returns true; fails with `what` after the deadline. */
async function eventually(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + POLL_DEADLINE_MS;
  while (Date.now() < deadline) {
    if (await check()) return;
    await delay(POLL_INTERVAL_MS);
  }
  assert.fail(`${what} did not happen within ${POLL_DEADLINE_MS} ms`);
}

export function describeLimits(mode: string, start: ServerFactory): void {
  describe(`resource limits: ${mode}`, () => {
    const servers: ServerUnderTest[] = [];
    const clients: TestClient[] = [];
    after(async () => {
      for (const client of clients) client.close();
      await Promise.all(servers.map((server) => server.stop()));
    });
    const serve = async (env: Record<string, string>) => {
      const server = await start(env);
      const client = connect(server.address);
      servers.push(server);
      clients.push(client);
      return { server, client };
    };
    const progressOf = writeProgress;
    const received = (client: TestClient, upload: OpenWrite, bytes: number) =>
      eventually(`the server receiving ${bytes} bytes of ${upload.name}`, async () => {
        return (await progressOf(client, upload.name)) === bytes;
      });
    const rejectsWith = async (promise: Promise<unknown>, code: status, pattern: RegExp) => {
      await assert.rejects(promise, (error: Error) => {
        assert.equal(codeOf(error), code, `expected ${status[code]}, got: ${error.message}`);
        assert.match(error.message, pattern);
        return true;
      });
    };
    const batchUpload = async (client: TestClient, data: Buffer) => {
      const reply = await client.unary<{
        responses: { status: { code: number; message: string } }[];
      }>(client.cas, 'BatchUpdateBlobs', { requests: [{ digest: digestOf(data), data }] });
      return reply.responses[0]?.status;
    };

    it('refuses an upload beyond max_concurrent_uploads while all are being written', async () => {
      const { client } = await serve({ TESSERA_MAX_CONCURRENT_UPLOADS: '2' });
      const first = openWrite(client, randomBlob(64 * KIB));
      const second = openWrite(client, randomBlob(64 * KIB));
      first.send(0, 16 * KIB);
      second.send(0, 16 * KIB);
      await received(client, first, 16 * KIB);
      await received(client, second, 16 * KIB);

      const third = randomBlob(8 * KIB);
      await rejectsWith(
        client.write(uploadName(digestOf(third)), third),
        status.RESOURCE_EXHAUSTED,
        /max_concurrent_uploads \(2\)/,
      );
      // Batches are not upload sessions: they still go through.
      assert.equal((await batchUpload(client, randomBlob(4 * KIB)))?.code, status.OK);

      first.send(16 * KIB, 64 * KIB);
      first.end();
      assert.equal((await first.outcome).committedSize, 64 * KIB);
      assert.equal(await client.write(uploadName(digestOf(third)), third), third.length);
      second.cancel();
    });

    it('evicts the upload parked longest to admit a new one', async () => {
      const { client, server } = await serve({ TESSERA_MAX_CONCURRENT_UPLOADS: '2' });
      const parked: OpenWrite[] = [];
      for (const data of [randomBlob(32 * KIB), randomBlob(32 * KIB)]) {
        const upload = openWrite(client, data);
        upload.send(0, 8 * KIB);
        upload.end();
        // One after the other, so which one was parked longest is known.
        assert.equal((await upload.outcome).code, status.INVALID_ARGUMENT);
        parked.push(upload);
      }
      assert.equal(await progressOf(client, parked[0]?.name ?? ''), 8 * KIB);

      const fresh = randomBlob(16 * KIB);
      assert.equal(await client.write(uploadName(digestOf(fresh)), fresh), fresh.length);
      assert.equal(await progressOf(client, parked[0]?.name ?? ''), undefined);
      assert.equal(await progressOf(client, parked[1]?.name ?? ''), 8 * KIB);
      assert.equal((await server.stagingFiles()).length, 1);
    });

    it('refuses a write that would pass staging_max_bytes before storing a byte', async () => {
      const { client, server } = await serve({ TESSERA_STAGING_MAX_BYTES: String(256 * KIB) });
      const holder = openWrite(client, randomBlob(192 * KIB));
      holder.send(0, 8 * KIB);
      await received(client, holder, 8 * KIB);
      assert.equal((await server.stagingFiles()).length, 1);

      const other = randomBlob(128 * KIB);
      await rejectsWith(
        client.write(uploadName(digestOf(other)), other),
        status.RESOURCE_EXHAUSTED,
        /needs 131072 bytes of staging space; 196608 of the 262144 bytes staging_max_bytes/,
      );
      const batch = await batchUpload(client, other);
      assert.equal(batch?.code, status.RESOURCE_EXHAUSTED);
      assert.match(batch?.message ?? '', /staging_max_bytes/);
      const huge = randomBlob(300 * KIB);
      await rejectsWith(
        client.write(uploadName(digestOf(huge)), huge),
        status.RESOURCE_EXHAUSTED,
        /can never fit/,
      );
      assert.equal((await server.stagingFiles()).length, 1);

      holder.send(8 * KIB, 192 * KIB);
      holder.end();
      assert.equal((await holder.outcome).committedSize, 192 * KIB);
      assert.equal(await client.write(uploadName(digestOf(other)), other), other.length);
      assert.deepEqual(await server.stagingFiles(), []);
    });

    it('drops a broken-off upload with its files after the idle timeout', async () => {
      const { client, server } = await serve({ TESSERA_UPLOAD_IDLE_TIMEOUT_SECONDS: '1' });
      const upload = openWrite(client, randomBlob(64 * KIB));
      upload.send(0, 16 * KIB);
      upload.end();
      assert.equal((await upload.outcome).code, status.INVALID_ARGUMENT);
      await eventually('the parked upload being dropped', async () => {
        const files = await server.stagingFiles();
        return files.length === 0 && (await progressOf(client, upload.name)) === undefined;
      });
    });

    it('ends a stalled Write after the idle timeout, freeing its slot', async () => {
      const { client, server } = await serve({
        TESSERA_UPLOAD_IDLE_TIMEOUT_SECONDS: '2',
        TESSERA_MAX_CONCURRENT_UPLOADS: '1',
      });
      const stalled = openWrite(client, randomBlob(64 * KIB));
      stalled.send(0, 16 * KIB);
      await received(client, stalled, 16 * KIB);
      const next = randomBlob(8 * KIB);
      await rejectsWith(
        client.write(uploadName(digestOf(next)), next),
        status.RESOURCE_EXHAUSTED,
        /max_concurrent_uploads \(1\)/,
      );

      const outcome = await stalled.outcome;
      assert.equal(outcome.code, status.DEADLINE_EXCEEDED, outcome.message);
      assert.match(outcome.message ?? '', /upload_idle_timeout_seconds/);
      assert.deepEqual(await server.stagingFiles(), []);
      assert.equal(await progressOf(client, stalled.name), undefined);
      assert.equal(await client.write(uploadName(digestOf(next)), next), next.length);
    });
  });
}
