// `npm run bench`: Tessera's ByteStream throughput against the AWS SDK talking to the same S3
// server directly, measured back to back because this machine is shared and noisy; only the
// ratios mean anything elsewhere. Starts Redis and RGW once (or uses the ones the environment
// names, see test/support/services), runs the scenarios, writes bench/RESULTS.md, and leaves
// nothing behind: its temp dir, servers and daemons are gone and its keys deleted when it exits.
//
// BENCH_SERVER_CPU_PROF_DIR=<dir> starts every server with --cpu-prof, writing the profiles there.
// BENCH_SERVER_NODE_ARGS="<flag> ..." starts every server with these node flags (for A/B runs of
// V8 settings such as --max-semi-space-size); RESULTS.md names them.
// BENCH_ONLY=<name>[,<name>...] runs only the scenarios named (see SCENARIOS), for profiling one
// path; RESULTS.md is then written next to it as RESULTS.partial.md instead.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { createTestS3Client, startServices } from '../test/support/services/index.ts';
import { runBazelScenario } from './bazel-build.ts';
import { runConcurrentScenario } from './concurrent.ts';
import { generateFile } from './files.ts';
import { MIB } from './measure.ts';
import { runReadTierBench } from './read-tier.ts';
import { currentLoad, renderResults, type ScenarioResult } from './report.ts';
import {
  type BenchContext,
  runLargeScenario,
  runReadScenario,
  runWriteScenario,
} from './scenarios.ts';
import { deleteUnder } from './servers.ts';
import { runSmallBlobScenarios } from './small-blobs.ts';

const RESULTS_PATH = fileURLToPath(new URL('./RESULTS.md', import.meta.url));
/** Hand-written: what each change bought and what limits each figure; appended to RESULTS.md. */
const ANALYSIS_PATH = fileURLToPath(new URL('./ANALYSIS.md', import.meta.url));

/**
 * Three trials of the 256 MiB scenarios write 3 GiB to the shared RGW (a baseline and three
 * Tessera rows each), whose memstore refuses writes a little before its device size (6 GiB,
 * test/support/services/ceph-rgw.ts) and does not reclaim deleted objects during the run.
 */
const TRIALS = 3;
const BLOB_BYTES = 256 * MIB;
const LARGE_BLOB_BYTES = 2 * 1024 * MIB;
/** Tessera's defaults, set explicitly on the server so that both sides use the same. */
const MULTIPART = { partSizeBytes: 8 * MIB, queueSize: 4 };
const MULTIPART_THRESHOLD_BYTES = 16 * MIB;

/** Scenario names, in the order they run; BENCH_ONLY picks some of them. */
const SCENARIOS = ['write', 'read', 'large', 'small', 'concurrent', 'bazel', 'read-tier'] as const;

function wantedScenarios(only: string | undefined): Set<string> {
  if (only === undefined || only === '') return new Set(SCENARIOS);
  const names = only.split(',').map((name) => name.trim());
  const unknown = names.filter((name) => !(SCENARIOS as readonly string[]).includes(name));
  if (unknown.length > 0) {
    throw new Error(`BENCH_ONLY names ${unknown.join(', ')}; scenarios: ${SCENARIOS.join(', ')}`);
  }
  return new Set(names);
}

async function main(): Promise<void> {
  const wanted = wantedScenarios(process.env.BENCH_ONLY);
  const partial = wanted.size < SCENARIOS.length;
  const startedAt = new Date();
  const started = performance.now();
  const loadBefore = currentLoad();
  const progress = (line: string) => {
    const seconds = ((performance.now() - started) / 1000).toFixed(0).padStart(4);
    console.error(`[bench ${seconds}s] ${line}`);
  };
  const profileDir = process.env.BENCH_SERVER_CPU_PROF_DIR;
  const serverNodeArgs = [
    ...(process.env.BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter((arg) => arg !== ''),
    ...(profileDir === undefined || profileDir === ''
      ? []
      : ['--cpu-prof', `--cpu-prof-dir=${resolve(profileDir)}`]),
  ];

  const tmpDir = await mkdtemp(join(tmpdir(), 'tessera-bench-'));
  const runPrefix = `bench-${randomBytes(6).toString('hex')}`;
  progress(`starting redis and s3 (run prefix ${runPrefix}, temp dir ${tmpDir})`);
  const running = await startServices(process.env);
  const s3Client = createTestS3Client(running.services.s3);
  const ctx: BenchContext = {
    running,
    s3Client,
    runPrefix,
    tmpDir,
    trials: TRIALS,
    multipart: MULTIPART,
    multipartThresholdBytes: MULTIPART_THRESHOLD_BYTES,
    serverNodeArgs,
    progress,
  };

  const scenarios: ScenarioResult[] = [];
  /** Sections rendered by scenarios with tables of their own, appended as they are. */
  const sections: string[] = [];
  try {
    // The read scenario reads what the write scenario wrote, so it needs that one too.
    if (wanted.has('write') || wanted.has('read')) {
      progress(`generating a ${BLOB_BYTES / MIB} MiB file`);
      const file = await generateFile(join(tmpDir, 'blob.bin'), BLOB_BYTES);
      const write = await runWriteScenario(ctx, file);
      scenarios.push(write.result);
      if (wanted.has('read')) scenarios.push(await runReadScenario(ctx, write.written));
      await rm(file.path, { force: true });
    }
    if (wanted.has('large')) scenarios.push(await runLargeScenario(ctx, LARGE_BLOB_BYTES));
    if (wanted.has('small')) scenarios.push(...(await runSmallBlobScenarios(ctx)));
    if (wanted.has('concurrent')) scenarios.push(await runConcurrentScenario(ctx));
    if (wanted.has('bazel')) scenarios.push(await runBazelScenario(ctx));
    if (wanted.has('read-tier')) sections.push(await runReadTierBench(ctx));
  } finally {
    progress('cleaning up');
    await cleanUp(ctx).catch((error: unknown) => progress(`clean-up failed: ${String(error)}`));
    s3Client.destroy();
    await running.stop();
    await rm(tmpDir, { recursive: true, force: true });
  }

  const s3Server = running.started.includes('rgw')
    ? 'Ceph RGW started by the bench'
    : 'named by the environment';
  const markdown = renderResults(
    {
      command: commandLine(),
      startedAt,
      seconds: (performance.now() - started) / 1000,
      settings: [
        `trials: ${TRIALS} per row for the ${BLOB_BYTES / MIB} MiB scenarios, 1 for the ` +
          `${LARGE_BLOB_BYTES / 1024 / MIB} GiB one`,
        `S3 multipart on both sides: part size ${MULTIPART.partSizeBytes / MIB} MiB, queue size ` +
          `${MULTIPART.queueSize}; Tessera's single-PUT threshold ` +
          `${MULTIPART_THRESHOLD_BYTES / MIB} MiB`,
        `S3 server: ${s3Server}`,
        `servers started with: ${serverNodeArgs.join(' ') || 'no extra node flags'}`,
      ],
      loadBefore,
      loadAfter: currentLoad(),
    },
    scenarios,
  );
  const analysis = await readFile(ANALYSIS_PATH, 'utf8');
  const resultsPath = partial ? RESULTS_PATH.replace(/\.md$/, '.partial.md') : RESULTS_PATH;
  await writeFile(resultsPath, [markdown, ...sections, analysis].join('\n'));
  progress(`wrote ${relative(process.cwd(), resultsPath)}`);
  if (scenarios.some((scenario) => scenario.checks.some((check) => check.includes('MISMATCH')))) {
    progress('a hash check failed; see RESULTS.md');
    process.exitCode = 1;
  }
}

/** Deletes this run's objects and Redis keys; services the bench started go away anyway. */
async function cleanUp(ctx: BenchContext): Promise<void> {
  await deleteUnder(ctx.s3Client, ctx.running.services.s3.bucket, `${ctx.runPrefix}/`);
  const redis = new Redis(ctx.running.services.redisUrl, { lazyConnect: true });
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${ctx.runPrefix}:*`, 'COUNT', 1000);
      if (keys.length > 0) await redis.unlink(...keys);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

function commandLine(): string {
  if (process.env.npm_lifecycle_event === 'bench') return 'npm run bench';
  const script = process.argv[1] === undefined ? '' : relative(process.cwd(), process.argv[1]);
  return ['node', ...process.execArgv, script].join(' ');
}

await main();
