// The three scenarios. Each trial runs the baseline and Tessera back to back, in an order that
// rotates from trial to trial so neither side always gets the warmer (or the noisier) slot. Each
// Tessera row has its own freshly started server, so the VmHWM read before it stops is that row's
// peak.
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import type { RunningServices, S3Settings } from '../test/support/services/index.ts';
import { type BenchFile, generateFile, restamp } from './files.ts';
import { MIB } from './measure.ts';
import { benchRss, type Measurement, type RowResult, type ScenarioResult } from './report.ts';
import { type BenchServer, scratchS3, startBenchServer } from './servers.ts';
import {
  byteStreamRead,
  byteStreamWrite,
  type DownloadTiming,
  type MultipartSettings,
  sdkDownload,
  sdkUpload,
} from './transfer.ts';
import { hashCheck, measure, rotate } from './trial.ts';

export interface BenchContext {
  readonly running: RunningServices;
  /** A client of the shared S3 server, for the baseline. */
  readonly s3Client: S3Client;
  /** Every object key and Redis key this run creates starts with it. */
  readonly runPrefix: string;
  readonly tmpDir: string;
  readonly trials: number;
  readonly multipart: MultipartSettings;
  readonly multipartThresholdBytes: number;
  /** Node flags for every server on top of the scenario's own (a CPU profile, for example). */
  readonly serverNodeArgs: readonly string[];
  progress(line: string): void;
}

/** What the write scenario leaves in place for the read scenario. */
export interface WrittenBlobs {
  readonly baselineKey: string;
  readonly baselineFile: BenchFile;
  readonly tesseraFile: BenchFile;
}

const BAZEL_CHUNK_BYTES = 16 * 1024;

export async function runWriteScenario(
  ctx: BenchContext,
  file: BenchFile,
): Promise<{ result: ScenarioResult; written: WrittenBlobs }> {
  const size = `${file.size / MIB} MiB`;
  const rows: { label: string; chunkBytes: number; env: Record<string, string> }[] = [
    { label: `${size} write, 1 MiB messages`, chunkBytes: MIB, env: {} },
    {
      label: `${size} write, 16 KiB messages (Bazel's size)`,
      chunkBytes: BAZEL_CHUNK_BYTES,
      env: {},
    },
    // What resuming on another replica costs: a WebAssembly hash whose state goes into Redis.
    {
      label: `${size} write, 1 MiB messages, resumeAcrossReplicas`,
      chunkBytes: MIB,
      env: { TESSERA_RESUME_ACROSS_REPLICAS: 'true' },
    },
  ];
  const baseline: Measurement[] = [];
  const tessera: Measurement[][] = rows.map(() => []);
  let written: Partial<WrittenBlobs> = {};

  const { peaks } = await withServers(
    ctx,
    rows.map((row, i) => ({
      label: `write-${i}`,
      s3: ctx.running.services.s3,
      nodeArgs: [],
      env: row.env,
    })),
    async (servers) => {
      for (let trial = 0; trial < ctx.trials; trial++) {
        for (const step of rotate([-1, ...rows.keys()], trial)) {
          const stamped = await restamp(file, `${ctx.runPrefix}/write/${trial}/${step}`);
          if (step === -1) {
            const key = `${ctx.runPrefix}/baseline/write-${trial}`;
            const target = { bucket: ctx.running.services.s3.bucket, key };
            const m = await measure(undefined, file.size, () =>
              sdkUpload(ctx.s3Client, target, stamped, ctx.multipart),
            );
            baseline.push(m);
            written = { ...written, baselineKey: key, baselineFile: stamped };
            ctx.progress(`write trial ${trial + 1}: baseline ${m.rate.toFixed(0)} MB/s`);
            continue;
          }
          const row = rows[step] as (typeof rows)[number];
          const server = servers[step] as BenchServer;
          const name = `uploads/${randomUUID()}/blobs/${stamped.sha256}/${stamped.size}`;
          const m = await measure(server, file.size, () =>
            byteStreamWrite(server.client, name, stamped, row.chunkBytes),
          );
          (tessera[step] as Measurement[]).push(m);
          if (step === 0) written = { ...written, tesseraFile: stamped };
          ctx.progress(
            `write trial ${trial + 1}: tessera ${row.label} ${m.rate.toFixed(0)} MB/s ` +
              `(${m.afterLastByteSeconds?.toFixed(2)} s after the last byte)`,
          );
        }
      }
    },
  );

  const { baselineKey, baselineFile, tesseraFile } = written;
  if (!baselineKey || !baselineFile || !tesseraFile) throw new Error('no trial wrote a blob');
  const rss = benchRss();
  return {
    result: {
      title: `a. ${size} write`,
      method:
        `Baseline: lib-storage \`Upload\` of the file straight to RGW (part size ` +
        `${ctx.multipart.partSizeBytes / MIB} MiB, queue size ${ctx.multipart.queueSize}, ` +
        `Tessera's settings). Tessera: ByteStream Write of the same file, streamed from disk, ` +
        `timed until the server answers, which it does only after the blob is in S3 and ` +
        `committed in Redis. Every upload is a blob neither side has seen. The first two rows ` +
        `run with the default settings (a native SHA-256 on the event loop; an upload resumes ` +
        `on the replica that holds it); the third with resumeAcrossReplicas on, whose ` +
        `WebAssembly SHA-256 in a worker thread saves its state with every part.`,
      rows: rows.map((row, i) => ({
        label: row.label,
        baseline,
        tessera: tessera[i] as Measurement[],
        serverPeakRssBytes: peaks[i] as number,
      })),
      checks: ['every Write was answered with committed_size equal to the blob size'],
      benchRssBytes: rss.now,
      benchPeakRssBytes: rss.peak,
    },
    written: { baselineKey, baselineFile, tesseraFile },
  };
}

export async function runReadScenario(
  ctx: BenchContext,
  written: WrittenBlobs,
): Promise<ScenarioResult> {
  const { baselineFile, tesseraFile } = written;
  const target = { bucket: ctx.running.services.s3.bucket, key: written.baselineKey };
  const name = `blobs/${tesseraFile.sha256}/${tesseraFile.size}`;
  const baseline: Measurement[] = [];
  const tessera: Measurement[] = [];
  const matched = { baseline: 0, tessera: 0 };

  const { peaks } = await withServers(
    ctx,
    [{ label: 'read', s3: ctx.running.services.s3, nodeArgs: [] }],
    async ([server]) => {
      if (!server) throw new Error('the read server did not start');
      for (let trial = 0; trial < ctx.trials; trial++) {
        for (const step of rotate(['baseline', 'tessera'] as const, trial)) {
          let timing: DownloadTiming | undefined;
          const m = await measure(
            step === 'tessera' ? server : undefined,
            tesseraFile.size,
            async () => {
              timing =
                step === 'tessera'
                  ? await byteStreamRead(server.client, name)
                  : await sdkDownload(ctx.s3Client, target);
              return timing;
            },
          );
          const expected = step === 'tessera' ? tesseraFile : baselineFile;
          const ok = timing?.sha256 === expected.sha256 && timing.bytes === expected.size;
          if (ok) matched[step]++;
          (step === 'tessera' ? tessera : baseline).push(m);
          ctx.progress(
            `read trial ${trial + 1}: ${step} ${m.rate.toFixed(0)} MB/s, ` +
              `sha256 ${ok ? 'ok' : 'MISMATCH'}`,
          );
        }
      }
    },
  );

  const rss = benchRss();
  return {
    title: `b. ${tesseraFile.size / MIB} MiB read`,
    method:
      'Baseline: SDK GetObject of the object the write scenario uploaded, streamed and counted. ' +
      'Tessera: ByteStream Read of the blob it committed, from a freshly started server (chunks ' +
      'of the server default, 256 KiB), streamed and counted. Both sides hash what they receive ' +
      'with sha256, so the client does the same work on each.',
    rows: [{ label: 'read', baseline, tessera, serverPeakRssBytes: peaks[0] as number }],
    checks: [
      `sha256 and length of what Tessera returned matched the blob in ${matched.tessera} of ` +
        `${ctx.trials} reads; the baseline's matched in ${matched.baseline} of ${ctx.trials}`,
    ],
    benchRssBytes: rss.now,
    benchPeakRssBytes: rss.peak,
  };
}

export async function runLargeScenario(ctx: BenchContext, size: number): Promise<ScenarioResult> {
  const label = `${size / 1024 / MIB} GiB`;
  ctx.progress(`large: generating a ${label} file`);
  const file = await generateFile(join(ctx.tmpDir, 'large.bin'), size);
  const baseline: Measurement[] = [];
  const tessera: Measurement[] = [];
  const checks: string[] = [];

  const base = await scratchS3(ctx.running, ctx.runPrefix);
  try {
    const target = { bucket: base.s3.bucket, key: `${ctx.runPrefix}/baseline/large` };
    const up = await measure(undefined, size, () =>
      sdkUpload(base.client, target, file, ctx.multipart),
    );
    ctx.progress(`large: baseline write ${up.rate.toFixed(0)} MB/s`);
    let timing: DownloadTiming | undefined;
    const down = await measure(undefined, size, async () => {
      timing = await sdkDownload(base.client, target);
      return timing;
    });
    ctx.progress(`large: baseline read ${down.rate.toFixed(0)} MB/s`);
    baseline.push(up, down);
    checks.push(`baseline read back ${hashCheck(timing, file)}`);
  } finally {
    await base.release();
  }

  const scratch = await scratchS3(ctx.running, ctx.runPrefix);
  let peak: number;
  try {
    const nodeArgs = ['--max-old-space-size=256'];
    const { peaks } = await withServers(
      ctx,
      [{ label: 'large', s3: scratch.s3, nodeArgs }],
      async ([server]) => {
        if (!server) throw new Error('the large-blob server did not start');
        const up = await measure(server, size, () =>
          byteStreamWrite(
            server.client,
            `uploads/${randomUUID()}/blobs/${file.sha256}/${size}`,
            file,
            MIB,
          ),
        );
        ctx.progress(
          `large: tessera write ${up.rate.toFixed(0)} MB/s ` +
            `(${up.afterLastByteSeconds?.toFixed(2)} s after the last byte)`,
        );
        let timing: DownloadTiming | undefined;
        const down = await measure(server, size, async () => {
          timing = await byteStreamRead(server.client, `blobs/${file.sha256}/${size}`);
          return timing;
        });
        ctx.progress(`large: tessera read ${down.rate.toFixed(0)} MB/s`);
        tessera.push(up, down);
        checks.push(`Tessera read back ${hashCheck(timing, file)}`);
      },
    );
    peak = peaks[0] ?? Number.NaN;
  } finally {
    await scratch.release();
  }

  const rss = benchRss();
  const rows: RowResult[] = [
    {
      label: `${label} write, 1 MiB messages`,
      baseline: baseline.slice(0, 1),
      tessera: tessera.slice(0, 1),
      serverPeakRssBytes: peak,
    },
    {
      label: `${label} read`,
      baseline: baseline.slice(1, 2),
      tessera: tessera.slice(1, 2),
      serverPeakRssBytes: peak,
    },
  ];
  return {
    title: `c. ${label} blob through a server with --max-old-space-size=256`,
    method: largeMethod(label, ctx.running.started.includes('rgw')),
    rows,
    checks,
    benchRssBytes: rss.now,
    benchPeakRssBytes: rss.peak,
  };
}

function largeMethod(label: string, privateRgw: boolean): string {
  const baselineWhere = privateRgw ? ', on an empty RGW of its own' : '';
  const tesseraWhere = privateRgw
    ? `, on another empty RGW (the memstore of the shared one has no room left for ${label}; ` +
      'see bench/servers.ts)'
    : '';
  return (
    'The file is generated on disk a MiB at a time. Baseline: lib-storage `Upload` then a ' +
    `streamed GetObject${baselineWhere}. Tessera: ByteStream Write (1 MiB messages) then Read, ` +
    `both through one server started with --max-old-space-size=256${tesseraWhere}. The peak ` +
    "RSS is the server's over both rows."
  );
}

export interface ServerSpec {
  readonly label: string;
  readonly s3: S3Settings;
  readonly nodeArgs: readonly string[];
  readonly redisPrefix?: string;
  readonly env?: Readonly<Record<string, string>>;
}

/**
 * Starts one server per spec, runs `body`, then stops them and returns each one's peak RSS. On a
 * failure the servers are stopped too, and the first error is the one thrown.
 */
export async function withServers(
  ctx: BenchContext,
  specs: readonly ServerSpec[],
  body: (servers: readonly BenchServer[]) => Promise<void>,
): Promise<{ peaks: number[] }> {
  const servers: BenchServer[] = [];
  try {
    for (const spec of specs) {
      servers.push(
        await startBenchServer({
          label: spec.label,
          s3: spec.s3,
          redisUrl: ctx.running.services.redisUrl,
          runPrefix: ctx.runPrefix,
          stagingDir: join(ctx.tmpDir, 'staging'),
          multipart: ctx.multipart,
          multipartThresholdBytes: ctx.multipartThresholdBytes,
          nodeArgs: [...ctx.serverNodeArgs, ...spec.nodeArgs],
          ...(spec.redisPrefix === undefined ? {} : { redisPrefix: spec.redisPrefix }),
          ...(spec.env === undefined ? {} : { env: spec.env }),
        }),
      );
    }
    await body(servers);
    const peaks: number[] = [];
    for (const server of servers.splice(0)) peaks.push(await server.finish());
    return { peaks };
  } finally {
    await Promise.allSettled(servers.map((server) => server.finish()));
  }
}
