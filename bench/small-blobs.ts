// Many small blobs: the batch RPCs (1,000 × 4 KiB), ByteStream at concurrency 64 (10,000 ×
// 64 KiB), and FindMissingBlobs of 10,000 digests, each against the same work done directly: the
// SDK's PutObject and GetObject at the same concurrency, and one pipelined Redis round trip over
// the same keys.
//
// Every trial uploads blobs neither side has seen (an already committed blob ends a Write at
// once), so each trial has its own contents: one random base buffer per set, with the trial and
// the blob's index written into its first bytes. The scenarios run on a private RGW when the bench
// started RGW itself: 10,000 × 64 KiB per trial and side would not fit in the shared memstore.
import { createHash, randomBytes } from 'node:crypto';
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Redis } from 'ioredis';
import { mapConcurrently } from '../src/cas/concurrency.ts';
import type { TestClient } from '../test/support/client.ts';
import { benchRss, type Measurement, type RateUnit, type ScenarioResult } from './report.ts';
import { type BenchContext, withServers } from './scenarios.ts';
import { type BenchServer, scratchS3 } from './servers.ts';
import { measure, rotate } from './trial.ts';

const KIB = 1024;
const BATCH_BLOBS = 1_000;
const BATCH_BLOB_BYTES = 4 * KIB;
/** 250 × 4 KiB is 1 MiB a request, well under the 4 MiB batch limit Bazel would fill. */
const BATCH_REQUEST_BLOBS = 250;
/**
 * Four batch requests in flight, each committed 16 blobs at a time by the server
 * (BATCH_CONCURRENCY in src/grpc/cas-service.ts): 64 S3 requests at once, as for the SDK.
 */
const S3_CONCURRENCY = 64;
const STREAM_BLOBS = 10_000;
const STREAM_BLOB_BYTES = 64 * KIB;
const STREAM_CONCURRENCY = 64;
/** One trial: each writes 640 MiB per side, and a trial takes minutes on a busy machine. */
const STREAM_TRIALS = 1;
const FIND_MISSING_DIGESTS = 10_000;
const FIND_MISSING_TRIALS = 5;
/** Tessera's default commit lease, which a lookup refreshes (GETEX) just as the baseline does. */
const LEASE_MS = 30 * 24 * 3600 * 1000;

const BLOBS_PER_SECOND: RateUnit = { rate: 'blobs/s', per: '1000 blobs', perUnits: 1000 };
const DIGESTS_PER_SECOND: RateUnit = {
  rate: 'digests/s',
  per: '10,000 digests',
  perUnits: 10_000,
};

interface BlobSet {
  readonly label: string;
  readonly count: number;
  readonly size: number;
  readonly base: Buffer;
}

interface Blob {
  readonly data: Buffer;
  readonly hash: string;
}

function newSet(label: string, count: number, size: number): BlobSet {
  return { label, count, size, base: randomBytes(size) };
}

/** The blob `index` of `trial`: the base with both numbers in its first 8 bytes. */
function blobOf(set: BlobSet, trial: number, index: number): Blob {
  const data = Buffer.from(set.base);
  data.writeUInt32BE(trial, 0);
  data.writeUInt32BE(index, 4);
  return { data, hash: createHash('sha256').update(data).digest('hex') };
}

function blobsOf(set: BlobSet, trial: number): Blob[] {
  return Array.from({ length: set.count }, (_, i) => blobOf(set, trial, i));
}

function wire(blob: Blob): { hash: string; sizeBytes: number } {
  return { hash: blob.hash, sizeBytes: blob.data.length };
}

interface Tally {
  ok: number;
  failed: number;
}

function check(tally: Tally, ok: boolean): void {
  if (ok) tally.ok++;
  else tally.failed++;
}

function describeTally(what: string, tally: Tally): string {
  return tally.failed === 0
    ? `${what}: all ${tally.ok} checked ok`
    : `${what}: ${tally.failed} of ${tally.ok + tally.failed} MISMATCH or failed`;
}

async function sdkPutAll(
  s3: S3Client,
  bucket: string,
  prefix: string,
  blobs: readonly Blob[],
): Promise<{ seconds: number }> {
  const started = performance.now();
  await mapConcurrently(blobs, S3_CONCURRENCY, (blob, i) =>
    s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: `${prefix}/${i}`,
        Body: blob.data,
        ContentLength: blob.data.length,
      }),
    ),
  );
  return { seconds: (performance.now() - started) / 1000 };
}

async function sdkGetAll(
  s3: S3Client,
  bucket: string,
  prefix: string,
  blobs: readonly Blob[],
  tally: Tally,
): Promise<{ seconds: number }> {
  const started = performance.now();
  await mapConcurrently(blobs, S3_CONCURRENCY, async (blob, i) => {
    const answer = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: `${prefix}/${i}` }));
    const hash = createHash('sha256');
    for await (const chunk of answer.Body as AsyncIterable<Uint8Array>) hash.update(chunk);
    check(tally, hash.digest('hex') === blob.hash);
  });
  return { seconds: (performance.now() - started) / 1000 };
}

interface BatchUpdateResponse {
  responses: { status?: { code?: number } }[];
}

interface BatchReadResponse {
  responses: { digest?: { hash?: string }; data: Buffer; status?: { code?: number } }[];
}

function requestsOf<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let at = 0; at < items.length; at += size) out.push(items.slice(at, at + size));
  return out;
}

async function batchUpdate(
  client: TestClient,
  blobs: readonly Blob[],
  tally: Tally,
): Promise<{ seconds: number }> {
  const started = performance.now();
  await Promise.all(
    requestsOf(blobs, BATCH_REQUEST_BLOBS).map(async (batch) => {
      const reply = await client.unary<BatchUpdateResponse>(client.cas, 'BatchUpdateBlobs', {
        requests: batch.map((blob) => ({ digest: wire(blob), data: blob.data })),
      });
      for (const response of reply.responses) check(tally, (response.status?.code ?? 0) === 0);
    }),
  );
  return { seconds: (performance.now() - started) / 1000 };
}

async function batchRead(
  client: TestClient,
  blobs: readonly Blob[],
  tally: Tally,
): Promise<{ seconds: number }> {
  const started = performance.now();
  await Promise.all(
    requestsOf(blobs, BATCH_REQUEST_BLOBS).map(async (batch) => {
      const reply = await client.unary<BatchReadResponse>(client.cas, 'BatchReadBlobs', {
        digests: batch.map(wire),
      });
      for (const response of reply.responses) {
        const hash = createHash('sha256').update(response.data).digest('hex');
        check(tally, (response.status?.code ?? 0) === 0 && hash === response.digest?.hash);
      }
    }),
  );
  return { seconds: (performance.now() - started) / 1000 };
}

async function streamWriteAll(
  client: TestClient,
  blobs: readonly Blob[],
  tally: Tally,
): Promise<{ seconds: number }> {
  const started = performance.now();
  await mapConcurrently(blobs, STREAM_CONCURRENCY, async (blob) => {
    const name = `uploads/${randomBytes(8).toString('hex')}/blobs/${blob.hash}/${blob.data.length}`;
    const committed = await client.write(name, blob.data, { chunkBytes: STREAM_BLOB_BYTES });
    check(tally, committed === blob.data.length);
  });
  return { seconds: (performance.now() - started) / 1000 };
}

async function streamReadAll(
  client: TestClient,
  blobs: readonly Blob[],
  tally: Tally,
): Promise<{ seconds: number }> {
  const started = performance.now();
  await mapConcurrently(blobs, STREAM_CONCURRENCY, async (blob) => {
    const { data } = await client.read(`blobs/${blob.hash}/${blob.data.length}`);
    check(tally, createHash('sha256').update(data).digest('hex') === blob.hash);
  });
  return { seconds: (performance.now() - started) / 1000 };
}

interface SideBySide {
  readonly baseline: Measurement[];
  readonly tessera: Measurement[];
}

function sides(): SideBySide {
  return { baseline: [], tessera: [] };
}

/** d. BatchUpdateBlobs and BatchReadBlobs of 1,000 × 4 KiB, and ByteStream of 10,000 × 64 KiB. */
export async function runSmallBlobScenarios(ctx: BenchContext): Promise<ScenarioResult[]> {
  const batchSet = newSet('batch', BATCH_BLOBS, BATCH_BLOB_BYTES);
  const streamSet = newSet('stream', STREAM_BLOBS, STREAM_BLOB_BYTES);
  const rows = {
    batchUpdate: sides(),
    batchRead: sides(),
    streamWrite: sides(),
    streamRead: sides(),
  };
  const tallies = {
    batchUpdate: { ok: 0, failed: 0 },
    batchRead: { ok: 0, failed: 0 },
    baselineRead: { ok: 0, failed: 0 },
    streamWrite: { ok: 0, failed: 0 },
    streamRead: { ok: 0, failed: 0 },
  };
  const redisPrefix = `${ctx.runPrefix}:small:`;
  const findMissing = sides();
  const findChecks: string[] = [];
  let peaks: number[] = [];

  const scratch = await scratchS3(ctx.running, ctx.runPrefix);
  try {
    const { bucket } = scratch.s3;
    const baseKey = (set: BlobSet) => `${ctx.runPrefix}/baseline/${set.label}`;
    ({ peaks } = await withServers(
      ctx,
      [
        { label: 'batch', s3: scratch.s3, nodeArgs: [] },
        { label: 'stream', s3: scratch.s3, nodeArgs: [], redisPrefix },
      ],
      async ([batchServer, streamServer]) => {
        if (!batchServer || !streamServer) throw new Error('the small-blob servers did not start');
        for (let trial = 0; trial < ctx.trials; trial++) {
          const blobs = blobsOf(batchSet, trial);
          for (const step of rotate(['baseline', 'tessera'] as const, trial)) {
            if (step === 'baseline') {
              const up = await measure(
                undefined,
                blobs.length,
                () => sdkPutAll(scratch.client, bucket, baseKey(batchSet), blobs),
                1,
              );
              const down = await measure(
                undefined,
                blobs.length,
                () =>
                  sdkGetAll(scratch.client, bucket, baseKey(batchSet), blobs, tallies.baselineRead),
                1,
              );
              rows.batchUpdate.baseline.push(up);
              rows.batchRead.baseline.push(down);
            } else {
              const client = batchServer.client;
              const up = await measure(
                batchServer,
                blobs.length,
                () => batchUpdate(client, blobs, tallies.batchUpdate),
                1,
              );
              const down = await measure(
                batchServer,
                blobs.length,
                () => batchRead(client, blobs, tallies.batchRead),
                1,
              );
              rows.batchUpdate.tessera.push(up);
              rows.batchRead.tessera.push(down);
            }
          }
          ctx.progress(
            `small trial ${trial + 1}: batch update ${ratioText(rows.batchUpdate)}, ` +
              `batch read ${ratioText(rows.batchRead)}`,
          );
        }

        let written: Blob[] = [];
        for (let trial = 0; trial < STREAM_TRIALS; trial++) {
          const blobs = blobsOf(streamSet, trial);
          for (const step of rotate(['baseline', 'tessera'] as const, trial)) {
            if (step === 'baseline') {
              const key = baseKey(streamSet);
              rows.streamWrite.baseline.push(
                await measure(
                  undefined,
                  blobs.length,
                  () => sdkPutAll(scratch.client, bucket, key, blobs),
                  1,
                ),
              );
              rows.streamRead.baseline.push(
                await measure(
                  undefined,
                  blobs.length,
                  () => sdkGetAll(scratch.client, bucket, key, blobs, tallies.baselineRead),
                  1,
                ),
              );
            } else {
              const client = streamServer.client;
              rows.streamWrite.tessera.push(
                await measure(
                  streamServer,
                  blobs.length,
                  () => streamWriteAll(client, blobs, tallies.streamWrite),
                  1,
                ),
              );
              rows.streamRead.tessera.push(
                await measure(
                  streamServer,
                  blobs.length,
                  () => streamReadAll(client, blobs, tallies.streamRead),
                  1,
                ),
              );
              written = blobs;
            }
          }
          ctx.progress(
            `small trial ${trial + 1}: ByteStream write ${ratioText(rows.streamWrite)}, ` +
              `read ${ratioText(rows.streamRead)}`,
          );
        }

        findChecks.push(
          ...(await runFindMissing(ctx, streamServer, redisPrefix, written, findMissing)),
        );
      },
    ));
  } finally {
    await scratch.release();
  }

  const rss = benchRss();
  const concurrency =
    `${S3_CONCURRENCY} S3 requests in flight on both sides (${BATCH_BLOBS / BATCH_REQUEST_BLOBS} ` +
    `batch requests of ${BATCH_REQUEST_BLOBS} at once, each committed or read ${16} blobs at a ` +
    'time by the server)';
  const where = ctx.running.started.includes('rgw') ? ' on a private RGW' : '';
  return [
    {
      title:
        `d. small blobs: ${BATCH_BLOBS.toLocaleString('en')} × 4 KiB in batches, ` +
        `${STREAM_BLOBS.toLocaleString('en')} × 64 KiB over ByteStream`,
      unit: BLOBS_PER_SECOND,
      method:
        `Batch rows: ${BATCH_BLOBS.toLocaleString('en')} new 4 KiB blobs per trial, written with ` +
        `BatchUpdateBlobs and read back with BatchReadBlobs, ${concurrency}; baseline: the same ` +
        'blobs as PutObject, then GetObject, with the SDK. ByteStream rows: ' +
        `${STREAM_BLOBS.toLocaleString('en')} new 64 KiB blobs per trial, one Write each (one ` +
        `message), then one Read each, ${STREAM_CONCURRENCY} calls in flight; baseline: PutObject ` +
        `and GetObject at the same concurrency. Every read is hashed and checked on both sides. ` +
        `${ctx.trials} trials for the batch rows, ${STREAM_TRIALS} for ByteStream (each writes ` +
        `640 MiB per side)${where}. The server peak RSS is that of the server of those rows.`,
      rows: [
        row('BatchUpdateBlobs 1,000 × 4 KiB', rows.batchUpdate, peaks[0]),
        row('BatchReadBlobs 1,000 × 4 KiB', rows.batchRead, peaks[0]),
        row('ByteStream Write 10,000 × 64 KiB, 64 at once', rows.streamWrite, peaks[1]),
        row('ByteStream Read 10,000 × 64 KiB, 64 at once', rows.streamRead, peaks[1]),
      ],
      checks: [
        describeTally('BatchUpdateBlobs statuses', tallies.batchUpdate),
        describeTally('BatchReadBlobs contents', tallies.batchRead),
        describeTally('ByteStream Write committed sizes', tallies.streamWrite),
        describeTally('ByteStream Read contents', tallies.streamRead),
        describeTally('baseline GetObject contents', tallies.baselineRead),
      ],
      benchRssBytes: rss.now,
      benchPeakRssBytes: rss.peak,
    },
    {
      title: `e. FindMissingBlobs of ${FIND_MISSING_DIGESTS.toLocaleString('en')} digests, half present`,
      unit: DIGESTS_PER_SECOND,
      method:
        `One FindMissingBlobs of ${FIND_MISSING_DIGESTS.toLocaleString('en')} digests: half of ` +
        'them blobs the ByteStream rows committed, half never uploaded. Baseline: the Redis ' +
        'commands Tessera sends for them (GETEX with the lease, on the same keys), in one ' +
        "pipeline from the bench process: Redis's own round trip. The time of one call is in the " +
        "seconds column. The server is the ByteStream rows' one.",
      rows: [row('FindMissingBlobs', findMissing, peaks[1])],
      checks: findChecks,
      benchRssBytes: rss.now,
      benchPeakRssBytes: rss.peak,
    },
  ];
}

async function runFindMissing(
  ctx: BenchContext,
  server: BenchServer,
  redisPrefix: string,
  written: readonly Blob[],
  into: SideBySide,
): Promise<string[]> {
  const half = FIND_MISSING_DIGESTS / 2;
  if (written.length < half) throw new Error(`only ${written.length} blobs to look up`);
  const present = written.slice(0, half).map(wire);
  const absent = Array.from({ length: half }, () => ({
    hash: randomBytes(32).toString('hex'),
    sizeBytes: STREAM_BLOB_BYTES,
  }));
  const digests = [...present, ...absent];
  const keys = digests.map((d) => `${redisPrefix}cas:sha256:${d.hash}`);
  const redis = new Redis(ctx.running.services.redisUrl, { lazyConnect: true });
  await redis.connect();
  const checks: string[] = [];
  try {
    let tesseraMissing = -1;
    let redisFound = -1;
    for (let trial = 0; trial < FIND_MISSING_TRIALS; trial++) {
      for (const step of rotate(['baseline', 'tessera'] as const, trial)) {
        if (step === 'baseline') {
          into.baseline.push(
            await measure(
              undefined,
              digests.length,
              async () => {
                const started = performance.now();
                const pipeline = redis.pipeline();
                for (const key of keys) pipeline.getex(key, 'PX', LEASE_MS);
                const replies = (await pipeline.exec()) ?? [];
                redisFound = replies.filter(([error, value]) => !error && value !== null).length;
                return { seconds: (performance.now() - started) / 1000 };
              },
              1,
            ),
          );
        } else {
          into.tessera.push(
            await measure(
              server,
              digests.length,
              async () => {
                const started = performance.now();
                const { client } = server;
                const reply = await client.unary<{ missingBlobDigests: unknown[] }>(
                  client.cas,
                  'FindMissingBlobs',
                  { blobDigests: digests },
                );
                tesseraMissing = reply.missingBlobDigests.length;
                return { seconds: (performance.now() - started) / 1000 };
              },
              1,
            ),
          );
        }
      }
    }
    ctx.progress(`find missing: ${ratioText(into)}`);
    checks.push(
      `Tessera reported ${tesseraMissing} of ${digests.length} missing (expected ${half})` +
        (tesseraMissing === half ? '' : ' MISMATCH'),
      `the baseline pipeline found ${redisFound} of ${digests.length} keys (expected ${half})` +
        (redisFound === half ? '' : ' MISMATCH'),
    );
  } finally {
    redis.disconnect();
  }
  return checks;
}

function row(label: string, side: SideBySide, peak: number | undefined) {
  return {
    label,
    baseline: side.baseline,
    tessera: side.tessera,
    serverPeakRssBytes: peak ?? Number.NaN,
  };
}

function ratioText(side: SideBySide): string {
  const b = side.baseline.at(-1)?.rate;
  const t = side.tessera.at(-1)?.rate;
  if (b === undefined || t === undefined) return 'n/a';
  return `${t.toFixed(0)} vs ${b.toFixed(0)} per s (${(t / b).toFixed(2)})`;
}
