// Server memory with 32 transfers of 1 GiB blobs at once: what a busy cache sees when a build
// farm fetches and uploads large outputs together.
//
// What fits here: RGW's memstore holds about 5.7 GiB and gives deleted space back only hours
// later, so 32 whole 1 GiB uploads (32 GiB) cannot be stored; and 32 whole reads (32 GiB through
// the server) took over four minutes on this busy machine, more than the bench can spend. So every
// transfer is of a 1 GiB blob, and each is cut off by its client once it is in its steady state:
// a read after 128 MiB (the server streams a GET of the whole object until the cancel), an upload
// after 48 MiB (the digest names 1 GiB; parts stream to S3 as they fill and are checkpointed).
// Nothing the server holds per transfer depends on how far it has got, only on the part size,
// the chunk size and the socket buffers. The peak resident set of the server is reset between the
// phases (/proc/<pid>/clear_refs), so each row has its own.
import { randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClientWritableStream, ServiceError } from '@grpc/grpc-js';
import { connect, type TestClient, writeProgress } from '../test/support/client.ts';
import { generateFile } from './files.ts';
import { MB, MIB, peakRssBytes } from './measure.ts';
import { benchRss, type ScenarioResult } from './report.ts';
import { type BenchContext, withServers } from './scenarios.ts';
import { CLIENT_CHANNEL_OPTIONS, scratchS3 } from './servers.ts';
import { byteStreamWrite } from './transfer.ts';

const TRANSFERS = 32;
const BLOB_BYTES = 1024 * MIB;
const READ_CUT_BYTES = 128 * MIB;
const WRITE_CUT_BYTES = 48 * MIB;
const MESSAGE_BYTES = MIB;

interface Phase {
  readonly label: string;
  readonly bytes: number;
  readonly seconds: number;
  readonly serverCpuSeconds: number;
  readonly peakRssBytes: number;
  readonly check: string;
}

export async function runConcurrentScenario(ctx: BenchContext): Promise<ScenarioResult> {
  ctx.progress(`concurrent: generating a ${BLOB_BYTES / MIB} MiB file`);
  const file = await generateFile(join(ctx.tmpDir, 'concurrent.bin'), BLOB_BYTES);
  const phases: Phase[] = [];
  const scratch = await scratchS3(ctx.running, ctx.runPrefix);
  try {
    await withServers(
      ctx,
      [{ label: 'concurrent', s3: scratch.s3, nodeArgs: [] }],
      async ([server]) => {
        if (!server) throw new Error('the concurrent-transfer server did not start');
        const name = `blobs/${file.sha256}/${file.size}`;
        await byteStreamWrite(server.client, `uploads/${randomUUID()}/${name}`, file, MIB);
        ctx.progress('concurrent: 1 GiB blob committed');

        const address = server.address;
        const clients = Array.from({ length: TRANSFERS }, () =>
          connect(address, { channelOptions: CLIENT_CHANNEL_OPTIONS }),
        );
        try {
          writeFileSync(`/proc/${server.pid}/clear_refs`, '5');
          let cpu = server.cpuSeconds();
          let started = performance.now();
          const counts = await Promise.all(clients.map((client) => cutRead(client, name)));
          let seconds = (performance.now() - started) / 1000;
          const whole = counts.filter((n) => n >= READ_CUT_BYTES).length;
          phases.push({
            label: `${TRANSFERS} reads of one 1 GiB blob at once, cut at 128 MiB`,
            bytes: counts.reduce((a, b) => a + b, 0),
            seconds,
            serverCpuSeconds: server.cpuSeconds() - cpu,
            peakRssBytes: peakRssBytes(server.pid),
            check:
              `${whole} of ${TRANSFERS} reads received their first ${READ_CUT_BYTES / MIB} MiB` +
              (whole === TRANSFERS ? '' : ' MISMATCH'),
          });
          ctx.progress(`concurrent: reads done in ${seconds.toFixed(1)} s`);

          writeFileSync(`/proc/${server.pid}/clear_refs`, '5');
          cpu = server.cpuSeconds();
          started = performance.now();
          const uploads = await Promise.all(clients.map((client) => cutWrite(client)));
          seconds = (performance.now() - started) / 1000;
          const sent = uploads.map((u) => u.sent);
          const full = sent.filter((n) => n === WRITE_CUT_BYTES).length;
          const progress = await Promise.all(
            uploads.map((u, i) => writeProgress(clients[i] as TestClient, u.resourceName)),
          );
          const checkpointed = progress.reduce<number>((a, b) => a + (b ?? 0), 0);
          phases.push({
            label: `${TRANSFERS} uploads of 1 GiB blobs at once, cut at 48 MiB`,
            bytes: sent.reduce((a, b) => a + b, 0),
            seconds,
            serverCpuSeconds: server.cpuSeconds() - cpu,
            peakRssBytes: peakRssBytes(server.pid),
            check:
              `${full} of ${TRANSFERS} uploads sent their first ${WRITE_CUT_BYTES / MIB} MiB` +
              (full === TRANSFERS ? '' : ' MISMATCH') +
              `; afterwards the server reported ${checkpointed / MIB} MiB of them checkpointed ` +
              '(whole parts confirmed by S3 and hashed; QueryWriteStatus)',
          });
          ctx.progress(`concurrent: writes done in ${seconds.toFixed(1)} s`);
        } finally {
          for (const client of clients) client.close();
        }
      },
    );
  } finally {
    await scratch.release();
  }

  const rss = benchRss();
  return {
    title: `f. server memory with ${TRANSFERS} transfers of 1 GiB blobs at once`,
    method:
      'One freshly started server, no heap flags. Reads: one committed 1 GiB blob read by ' +
      `${TRANSFERS} clients at once, each on its own connection, counting bytes, each cancelled ` +
      `after ${READ_CUT_BYTES / MIB} MiB. Writes: ${TRANSFERS} ByteStream Writes of distinct ` +
      `1 GiB blobs at once, in 1 MiB messages, each cut off by its client after ` +
      `${WRITE_CUT_BYTES / MIB} MiB. Why cut: the memstore cannot hold 32 GiB and 32 whole ` +
      'reads take minutes here; what the server holds per transfer does not grow with how far ' +
      'it has got (see bench/concurrent.ts). The peak RSS is reset before each row. Target: ' +
      'under 300 MiB.',
    rows: [],
    table: [
      '| row | MB moved | seconds | MB/s | server CPU s per GB | server peak RSS |',
      '|---|---|---|---|---|---|',
      ...phases.map(
        (p) =>
          `| ${p.label} | ${(p.bytes / MB).toFixed(0)} | ${p.seconds.toFixed(1)} | ` +
          `${(p.bytes / MB / p.seconds).toFixed(0)} | ` +
          `${((p.serverCpuSeconds * 1e9) / p.bytes).toFixed(1)} | ` +
          `${(p.peakRssBytes / MIB).toFixed(0)} MiB |`,
      ),
    ],
    checks: phases.map((p) => p.check),
    benchRssBytes: rss.now,
    benchPeakRssBytes: rss.peak,
  };
}

/**
 * Reads the whole blob until READ_CUT_BYTES have arrived, counting bytes, then cancels; the
 * content of reads is checked by the other scenarios.
 */
async function cutRead(client: TestClient, name: string): Promise<number> {
  const read = client.byteStream.Read as (
    request: object,
  ) => AsyncIterable<{ data: Buffer }> & { cancel(): void };
  const call = read.call(client.byteStream, { resourceName: name, readOffset: 0, readLimit: 0 });
  let bytes = 0;
  try {
    for await (const message of call) {
      bytes += message.data.length;
      if (bytes >= READ_CUT_BYTES) break;
    }
  } finally {
    call.cancel();
  }
  return bytes;
}

type WriteCallback = (error: ServiceError | null) => void;

/** Sends the first WRITE_CUT_BYTES of a 1 GiB upload with backpressure, then cancels it. */
async function cutWrite(client: TestClient): Promise<{ resourceName: string; sent: number }> {
  const hash = randomBytes(32).toString('hex');
  const resourceName = `uploads/${randomUUID()}/blobs/${hash}/${BLOB_BYTES}`;
  const data = randomBytes(MESSAGE_BYTES);
  const start = client.byteStream.Write as (callback: WriteCallback) => ClientWritableStream<{
    resourceName: string;
    writeOffset: number;
    data: Buffer;
    finishWrite: boolean;
  }>;
  let failure: ServiceError | undefined;
  const call = start.call(client.byteStream, (error) => {
    if (error) failure = error;
  });
  const ended = once(call, 'status').catch(() => undefined);
  let offset = 0;
  while (offset < WRITE_CUT_BYTES && !failure) {
    const ok = call.write({
      resourceName: offset === 0 ? resourceName : '',
      writeOffset: offset,
      data,
      finishWrite: false,
    });
    offset += data.length;
    if (!ok) await Promise.race([once(call, 'drain'), ended]);
  }
  const failedEarly = failure !== undefined;
  call.cancel();
  await ended;
  return { resourceName, sent: failedEarly ? 0 : offset };
}
