// A client that stops reading a large download must cost the server a bounded amount of memory,
// must not hold up anyone else, and must let go of the blob once its deadline passes or it
// cancels. The server runs as a real process so its resident memory can be read from /proc.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import {
  type ClientReadableStream,
  type ClientWritableStream,
  type ServiceError,
  status,
} from '@grpc/grpc-js';
import {
  blobName,
  codeOf,
  connect,
  type Digest,
  digestOf,
  randomBlob,
  type TestClient,
  uploadName,
} from '../support/client.ts';
import { startTessera, type TesseraProcess } from '../support/tessera.ts';

const MIB = 1024 * 1024;
const BLOB_BYTES = 200 * MIB;
/** How much more resident memory the server may use while readers stall. */
const RSS_HEADROOM_BYTES = 100 * MIB;
const POLL_DEADLINE_MS = 20_000;
const POLL_INTERVAL_MS = 50;

async function residentBytes(pid: number): Promise<number> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = /^VmRSS:\s+(\d+) kB$/m.exec(text)?.[1];
  assert.ok(kib, 'VmRSS missing from /proc status');
  return Number(kib) * 1024;
}

/** How many file descriptors the process holds open on files whose path contains `needle`. */
async function openFilesMatching(pid: number, needle: string): Promise<number> {
  const fds = await readdir(`/proc/${pid}/fd`);
  const targets = await Promise.all(
    fds.map((fd) => readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')),
  );
  return targets.filter((target) => target.includes(needle)).length;
}

async function eventually(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + POLL_DEADLINE_MS;
  while (Date.now() < deadline) {
    if (await check()) return;
    await delay(POLL_INTERVAL_MS);
  }
  assert.fail(`${what} did not happen within ${POLL_DEADLINE_MS} ms`);
}

/** 200 MiB of a repeated 1 MiB block, written with backpressure; returns its digest. */
async function uploadLargeBlob(client: TestClient): Promise<Digest> {
  const block = randomBlob(MIB);
  const hasher = createHash('sha256');
  for (let at = 0; at < BLOB_BYTES; at += MIB) hasher.update(block);
  const digest = { hash: hasher.digest('hex'), sizeBytes: BLOB_BYTES };
  const name = uploadName(digest);
  let call: ClientWritableStream<object> | undefined;
  const done = new Promise<number>((resolve, reject) => {
    call = (
      client.byteStream.Write as (
        cb: (e: ServiceError | null, r: { committedSize: number }) => void,
      ) => ClientWritableStream<object>
    ).call(client.byteStream, (error, response) =>
      error ? reject(error) : resolve(response.committedSize),
    );
  });
  const stream = call as ClientWritableStream<object>;
  for (let at = 0; at < BLOB_BYTES; at += MIB) {
    const more = stream.write({
      resourceName: at === 0 ? name : '',
      writeOffset: at,
      data: block,
      finishWrite: at + MIB === BLOB_BYTES,
    });
    if (!more) await new Promise((resolve) => stream.once('drain', resolve));
  }
  stream.end();
  assert.equal(await done, BLOB_BYTES);
  return digest;
}

interface StalledRead {
  readonly call: ClientReadableStream<{ data: Buffer }>;
  /** The status the call ended with. */
  readonly ended: Promise<number | undefined>;
}

/** Starts a Read and pauses it for good once `pauseAfter` bytes arrived. */
async function stallRead(
  client: TestClient,
  digest: Digest,
  pauseAfter: number,
  deadline?: Date,
): Promise<StalledRead> {
  const read = client.byteStream.Read as (
    request: object,
    options: object,
  ) => ClientReadableStream<{ data: Buffer }>;
  const call = read.call(
    client.byteStream,
    { resourceName: blobName(digest), readOffset: 0, readLimit: 0 },
    deadline ? { deadline } : {},
  );
  const ended = new Promise<number | undefined>((resolve) => {
    call.on('error', (error) => resolve(codeOf(error)));
    call.on('end', () => resolve(status.OK));
  });
  let received = 0;
  await new Promise<void>((resolve) => {
    const onData = (message: { data: Buffer }) => {
      received += message.data.length;
      if (received < pauseAfter) return;
      call.pause();
      call.off('data', onData);
      resolve();
    };
    call.on('data', onData);
  });
  return { call, ended };
}

describe('a client that stops reading a large download', () => {
  let dataDir: string;
  let server: TesseraProcess;
  let client: TestClient;
  let pid: number;
  let digest: Digest;

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'tessera-backpressure-'));
    server = await startTessera({ env: { TESSERA_DATA_DIR: dataDir } });
    pid = server.child.pid as number;
    client = connect(server.address);
    digest = await uploadLargeBlob(client);
  });
  after(async () => {
    client.close();
    await server.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('keeps memory bounded and serves others until the stalled read is cancelled', async () => {
    const baseline = await residentBytes(pid);
    let peak = baseline;
    const sample = async () => {
      peak = Math.max(peak, await residentBytes(pid));
    };

    const stalled = await stallRead(client, digest, 4 * MIB);
    assert.equal(await openFilesMatching(pid, digest.hash), 1, 'the read holds the blob open');

    // Others keep being served while the stalled read waits, on another connection too.
    const other = connect(server.address);
    try {
      for (let i = 0; i < 8; i += 1) {
        const data = randomBlob(2 * MIB);
        const small = digestOf(data);
        assert.equal(await other.write(uploadName(small), data), data.length);
        assert.ok((await other.read(blobName(small))).data.equals(data));
        await sample();
      }
      const partial = await other.read(blobName(digest), { offset: 100 * MIB, limit: MIB });
      assert.equal(partial.data.length, MIB);
    } finally {
      other.close();
    }
    for (let i = 0; i < 20; i += 1) {
      await sample();
      await delay(POLL_INTERVAL_MS);
    }
    assert.ok(
      peak - baseline < RSS_HEADROOM_BYTES,
      `server RSS grew by ${Math.round((peak - baseline) / MIB)} MiB while a 200 MiB read stalled`,
    );
    assert.equal(await openFilesMatching(pid, digest.hash), 1, 'the stalled read is still open');

    stalled.call.cancel();
    assert.equal(await stalled.ended, status.CANCELLED);
    await eventually('the server closing the blob after the cancel', async () => {
      return (await openFilesMatching(pid, digest.hash)) === 0;
    });
  });

  it('ends a stalled read at its deadline and frees the stream', async () => {
    const stalled = await stallRead(client, digest, 4 * MIB, new Date(Date.now() + 2_000));
    assert.equal(await stalled.ended, status.DEADLINE_EXCEEDED);
    await eventually('the server closing the blob after the deadline', async () => {
      return (await openFilesMatching(pid, digest.hash)) === 0;
    });
    const again = await client.read(blobName(digest), { offset: BLOB_BYTES - MIB });
    assert.equal(again.data.length, MIB);
  });
});
