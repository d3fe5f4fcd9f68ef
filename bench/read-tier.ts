// What the local read tier buys (docs/ARCHITECTURE.md, "Local read tier"), measured against the
// same Tessera without it, back to back on the same bucket and Redis: two servers share one store,
// one with TESSERA_READ_CACHE_BYTES set, and every trial runs both in alternating order.
// - a warm Bazel build (the fixture of test/e2e/bazel, 50 MiB output included) after `bazel
//   clean`, every action a remote cache hit;
// - a 64 MiB blob read through ByteStream (MB/s), and 200 blobs of 64 KiB read one after another
//   (reads per second): large reads are bound by the hash check and the disk, small ones by the
//   S3 round trip the tier saves.
// - the warm Bazel build again with S3 behind a TCP proxy that delays every packet by
//   REMOTE_DELAY_MS each way, as an S3 in another building or region would: what the tier buys
//   where S3 is not on loopback.
// It also measures zstd on build outputs (bench/compression.ts). `npm run bench` runs it as the
// `read-tier` scenario and appends its section to bench/RESULTS.md.
import { createHash, randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { parseProcessSummary, prepareWorkspace, runBazel } from '../test/support/bazel.ts';
import { connect, digestOf, type TestClient, uploadName } from '../test/support/client.ts';
import type { RunningServices } from '../test/support/services/index.ts';
import { startTcpProxy } from '../test/support/tcp-proxy.ts';
import { startTessera, type TesseraProcess } from '../test/support/tessera.ts';
import { measureCompression, renderCompression } from './compression.ts';
import { MIB } from './measure.ts';

const TRIALS = 3;
/** Warm builds vary by a few tenths of a second; more of them make the median hold still. */
const BAZEL_TRIALS = 5;
const LARGE_BYTES = 64 * MIB;
const SMALL_COUNT = 200;
const SMALL_BYTES = 64 * 1024;
const CACHE_BYTES = 1024 * MIB;
const FILL_DEADLINE_MS = 60_000;
/** Each way, so 2x this is added to every S3 round trip: a nearby region, not the same host. */
const REMOTE_DELAY_MS = 5;

export interface ReadTierContext {
  readonly running: RunningServices;
  readonly runPrefix: string;
  readonly tmpDir: string;
  readonly progress: (line: string) => void;
}

interface Server {
  readonly label: 'off' | 'on';
  readonly process: TesseraProcess;
  readonly client: TestClient;
}

/** Where the servers' S3 requests go: straight to RGW, or through the delaying proxy. */
type Link = 'loopback' | 'remote';

async function startServer(
  ctx: ReadTierContext,
  label: 'off' | 'on',
  link: Link = 'loopback',
  endpoint = ctx.running.services.s3.endpoint,
): Promise<Server> {
  const { s3, redisUrl } = ctx.running.services;
  const process = await startTessera({
    env: {
      TESSERA_S3_ENDPOINT: endpoint,
      TESSERA_S3_BUCKET: s3.bucket,
      TESSERA_S3_REGION: s3.region,
      TESSERA_S3_FORCE_PATH_STYLE: String(s3.forcePathStyle),
      TESSERA_S3_PREFIX: `${ctx.runPrefix}/read-tier/`,
      TESSERA_REDIS_URL: redisUrl,
      TESSERA_REDIS_PREFIX: `${ctx.runPrefix}:read-tier:`,
      TESSERA_STAGING_DIR: join(ctx.tmpDir, `read-tier-${link}-${label}-staging`),
      TESSERA_READ_CACHE_BYTES: label === 'on' ? String(CACHE_BYTES) : '0',
      TESSERA_READ_CACHE_DIR: cacheDir(ctx, link),
      AWS_ACCESS_KEY_ID: s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
      TESSERA_LOG_LEVEL: 'info',
    },
  });
  return { label, process, client: connect(process.address) };
}

const cacheDir = (ctx: ReadTierContext, link: Link = 'loopback') =>
  join(ctx.tmpDir, `read-tier-cache-${link}`);

async function readAll(client: TestClient, hash: string, size: number): Promise<string> {
  const { data } = await client.read(`blobs/${hash}/${size}`);
  return createHash('sha256').update(data).digest('hex');
}

/** Waits until the read tier holds `count` copies (fills run in the background). */
async function waitForCopies(ctx: ReadTierContext, count: number): Promise<void> {
  const deadline = Date.now() + FILL_DEADLINE_MS;
  while ((await readdir(cacheDir(ctx))).filter((n) => !n.endsWith('.tmp')).length < count) {
    if (Date.now() > deadline) throw new Error(`the read tier did not reach ${count} copies`);
    await delay(50);
  }
}

const median = (values: readonly number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
};

export async function runReadTierBench(ctx: ReadTierContext): Promise<string> {
  const off = await startServer(ctx, 'off');
  const on = await startServer(ctx, 'on');
  const servers = [off, on];
  const rows: string[] = [];
  const notes: string[] = [];
  try {
    // Bazel: a cold build fills the cache through `off`; warm builds prime `on`'s tier (a blob is
    // copied at its second read), then each trial runs a warm build on both.
    ctx.progress('read tier: cold bazel build');
    const ws = await prepareWorkspace();
    try {
      const build = async (server: Server) => {
        const clean = await runBazel(ws, ['clean']);
        if (clean.code !== 0) throw new Error(`bazel clean failed: ${clean.stderr}`);
        const started = performance.now();
        const result = await runBazel(ws, ['build', '//...'], {
          remoteCache: server.process.address,
        });
        const seconds = (performance.now() - started) / 1000;
        if (result.code !== 0) throw new Error(`bazel build failed: ${result.stderr}`);
        return { seconds, summary: parseProcessSummary(result.stderr) };
      };
      const cold = await build(off);
      notes.push(`cold build: ${cold.summary.total} processes, ${cold.seconds.toFixed(1)} s`);
      /** Primes `pair`'s tier with two builds, then times warm builds on both, alternating. */
      const warmBuilds = async (pair: readonly Server[], link: Link) => {
        for (const server of [...pair, ...pair]) await build(server);
        const times: Record<'off' | 'on', number[]> = { off: [], on: [] };
        let hits = '';
        for (let trial = 0; trial < BAZEL_TRIALS; trial++) {
          for (const server of trial % 2 === 0 ? pair : [...pair].reverse()) {
            const warm = await build(server);
            times[server.label].push(warm.seconds);
            hits = `${warm.summary.remoteCacheHits} remote cache hits, ${warm.summary.executed} run`;
            ctx.progress(
              `read tier: warm bazel build, S3 ${link}, tier ${server.label}: ` +
                `${warm.seconds.toFixed(2)} s`,
            );
          }
        }
        const primed = (await readdir(cacheDir(ctx, link))).filter((n) => !n.endsWith('.tmp'));
        notes.push(`S3 ${link}: ${primed.length} copies in the read tier; ${hits} (last trial)`);
        return times;
      };
      const loopbackTimes = await warmBuilds(servers, 'loopback');
      rows.push(row('warm Bazel build after `bazel clean` (s, lower is better)', loopbackTimes, 1));

      const proxy = await startTcpProxy(new URL(ctx.running.services.s3.endpoint).host);
      proxy.setMode({ kind: 'latency', ms: REMOTE_DELAY_MS });
      const remote: Server[] = [];
      try {
        for (const label of ['off', 'on'] as const) {
          remote.push(await startServer(ctx, label, 'remote', `http://${proxy.address}`));
        }
        const remoteTimes = await warmBuilds(remote, 'remote');
        rows.push(
          row(
            `the same, S3 ${2 * REMOTE_DELAY_MS} ms further away (s, lower is better)`,
            remoteTimes,
            1,
          ),
        );
      } finally {
        for (const server of remote) {
          server.client.close();
          await server.process.stop();
        }
        await proxy.close();
      }
    } finally {
      await ws.cleanup();
    }

    // One large blob and many small ones, written through `off`, primed through `on`.
    ctx.progress('read tier: blob reads');
    const large = randomBytes(LARGE_BYTES);
    const smalls = Array.from({ length: SMALL_COUNT }, () => randomBytes(SMALL_BYTES));
    for (const blob of [large, ...smalls]) {
      await off.client.write(uploadName(digestOf(blob)), blob, { chunkBytes: MIB });
    }
    const copiesBefore = (await readdir(cacheDir(ctx))).length;
    for (let pass = 0; pass < 2; pass++) {
      for (const blob of [large, ...smalls]) {
        const d = digestOf(blob);
        await readAll(on.client, d.hash, d.sizeBytes);
      }
    }
    await waitForCopies(ctx, copiesBefore + 1 + SMALL_COUNT);

    const largeDigest = digestOf(large);
    const largeMBps: Record<'off' | 'on', number[]> = { off: [], on: [] };
    const smallPerSecond: Record<'off' | 'on', number[]> = { off: [], on: [] };
    let mismatches = 0;
    for (let trial = 0; trial < TRIALS; trial++) {
      for (const server of trial % 2 === 0 ? servers : [...servers].reverse()) {
        let started = performance.now();
        const hash = await readAll(server.client, largeDigest.hash, largeDigest.sizeBytes);
        if (hash !== largeDigest.hash) mismatches++;
        largeMBps[server.label].push(LARGE_BYTES / 1e6 / ((performance.now() - started) / 1000));
        started = performance.now();
        for (const blob of smalls) {
          const d = digestOf(blob);
          if ((await readAll(server.client, d.hash, d.sizeBytes)) !== d.hash) mismatches++;
        }
        smallPerSecond[server.label].push(SMALL_COUNT / ((performance.now() - started) / 1000));
      }
    }
    rows.push(row(`${LARGE_BYTES / MIB} MiB ByteStream read (MB/s)`, largeMBps, 0));
    rows.push(
      row(
        `${SMALL_COUNT} × ${SMALL_BYTES / 1024} KiB reads, one at a time (reads/s)`,
        smallPerSecond,
        0,
      ),
    );
    notes.push(`sha256 mismatches in timed reads: ${mismatches}`);
  } finally {
    for (const server of servers) {
      server.client.close();
      await server.process.stop();
    }
  }

  ctx.progress('read tier: zstd on build outputs');
  const compression = renderCompression(await measureCompression());
  return [
    '## Local read tier and zstd',
    '',
    'Two Tessera servers on the same bucket and Redis, one with the read tier on ' +
      `(TESSERA_READ_CACHE_BYTES=${CACHE_BYTES / MIB} MiB, admit after 2 reads), primed until ` +
      `every blob read had a copy; ${BAZEL_TRIALS} trials of the build and ${TRIALS} of the ` +
      'reads, alternating which server goes first. The second build row uses a second pair ' +
      `whose S3 requests pass a TCP proxy delaying every packet by ${REMOTE_DELAY_MS} ms each ` +
      'way. Medians; ' +
      'the ratio is on over off per trial, then its median.',
    '',
    '| what | tier off | tier on | on / off |',
    '|---|---:|---:|---:|',
    ...rows,
    '',
    ...notes.map((note) => `- ${note}`),
    '',
    'zstd on files of the test machine (bench/compression.ts; single core, best of 3; SHA-256 of ' +
      'the same bytes as the in-run baseline):',
    '',
    compression,
    '',
  ].join('\n');
}

function row(label: string, values: Record<'off' | 'on', number[]>, digits: number): string {
  const ratios = values.on.map((on, i) => on / (values.off[i] ?? Number.NaN));
  return (
    `| ${label} | ${median(values.off).toFixed(digits)} | ${median(values.on).toFixed(digits)} | ` +
    `${median(ratios).toFixed(2)} |`
  );
}
