// A Bazel build of a few hundred actions (Debian's Bazel 4.2.3, offline, as the e2e tests run it;
// test/support/bazel.ts), timed with Tessera as its remote cache, cold (empty cache) and warm
// (everything cached, after `bazel clean --expunge`), against the same build with no remote cache.
//
// The workspace is the e2e fixture plus a generated package of genrules: leaves that write
// outputs from 2 KiB to 1 MiB, a layer that combines pairs of them, and a top layer. Each leaf
// also does about a tenth of a second of CPU work (compressing 48 MiB of zeros), a stand-in for a
// small compile: with actions that cost nothing, no cache could beat running them.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type BazelWorkspace,
  parseProcessSummary,
  prepareWorkspace,
  runBazel,
} from '../test/support/bazel.ts';
import { benchRss, type Measurement, type RateUnit, type ScenarioResult } from './report.ts';
import { type BenchContext, withServers } from './scenarios.ts';
import type { BenchServer } from './servers.ts';
import { measure } from './trial.ts';

const LEAVES = 200;
const PAIRS = LEAVES / 2;
const TOPS = 10;
const ACTIONS = LEAVES + PAIRS + TOPS;
const TRIALS = 2;
const PACKAGE = 'benchgen';

/** About 0.1 s of CPU on this machine, with a deterministic output. */
const LEAF_WORK = 'dd if=/dev/zero bs=1048576 count=48 2>/dev/null | gzip -1 | wc -c';

const ACTIONS_PER_SECOND: RateUnit = { rate: 'actions/s', per: 'action', perUnits: 1 };

/** The BUILD file of the generated package. */
function buildFile(): string {
  const lines = ['package(default_visibility = ["//visibility:public"])', ''];
  for (let i = 0; i < LEAVES; i++) {
    // Mostly small outputs, as most build outputs are; every tenth is 1 MiB.
    const kib = i % 10 === 0 ? 1024 : 2 * (1 + (i % 32));
    // dd ends on its own (a `yes | head` pipe dies of SIGPIPE, which pipefail turns into an error).
    lines.push(
      'genrule(',
      `    name = "leaf_${i}",`,
      `    outs = ["leaf_${i}.txt"],`,
      `    cmd = "${LEAF_WORK} >> $@; echo leaf ${i} >> $@; ` +
        `dd if=/dev/zero bs=1024 count=${kib} 2>/dev/null | tr '\\\\0' x >> $@",`,
      ')',
    );
  }
  for (let j = 0; j < PAIRS; j++) {
    lines.push(
      'genrule(',
      `    name = "pair_${j}",`,
      `    srcs = [":leaf_${2 * j}", ":leaf_${2 * j + 1}"],`,
      `    outs = ["pair_${j}.txt"],`,
      '    cmd = "cat $(SRCS) | sha256sum > $@; cat $(SRCS) >> $@",',
      ')',
    );
  }
  const perTop = PAIRS / TOPS;
  for (let k = 0; k < TOPS; k++) {
    const srcs = Array.from({ length: perTop }, (_, n) => `":pair_${k * perTop + n}"`);
    lines.push(
      'genrule(',
      `    name = "top_${k}",`,
      `    srcs = [${srcs.join(', ')}],`,
      `    outs = ["top_${k}.txt"],`,
      '    cmd = "sha256sum $(SRCS) > $@",',
      ')',
    );
  }
  return `${lines.join('\n')}\n`;
}

interface BuildRun {
  readonly seconds: number;
  readonly summary: string;
  readonly remoteCacheHits: number;
  readonly executed: number;
}

async function timedBuild(
  ws: BazelWorkspace,
  server: BenchServer | undefined,
  instance: string,
): Promise<BuildRun> {
  const clean = await runBazel(ws, ['clean', '--expunge']);
  if (clean.code !== 0) throw new Error(`bazel clean failed: ${clean.stderr.slice(-2000)}`);
  const started = performance.now();
  const result = await runBazel(
    ws,
    ['build', `//${PACKAGE}:all`],
    server ? { remoteCache: server.address, instanceName: instance } : {},
  );
  const seconds = (performance.now() - started) / 1000;
  if (result.code !== 0) {
    throw new Error(`bazel build exited with ${result.code}: ${result.stderr.slice(-3000)}`);
  }
  const summary = parseProcessSummary(result.stderr);
  const line = /^INFO: \d+ process(?:es)?[^\n]*$/gm;
  return {
    seconds,
    summary: [...result.stderr.matchAll(line)].at(-1)?.[0] ?? '',
    remoteCacheHits: summary.remoteCacheHits,
    executed: summary.executed,
  };
}

export async function runBazelScenario(ctx: BenchContext): Promise<ScenarioResult> {
  const ws = await prepareWorkspace();
  const baseline: Measurement[] = [];
  const cold: Measurement[] = [];
  const warm: Measurement[] = [];
  const checks: string[] = [];
  let peak = Number.NaN;
  try {
    await mkdir(join(ws.dir, PACKAGE), { recursive: true });
    await writeFile(join(ws.dir, PACKAGE, 'BUILD'), buildFile());
    const { peaks } = await withServers(
      ctx,
      [{ label: 'bazel', s3: ctx.running.services.s3, nodeArgs: [] }],
      async ([server]) => {
        if (!server) throw new Error('the bazel server did not start');
        for (let trial = 0; trial < TRIALS; trial++) {
          // A fresh instance name per trial: the cold build meets an empty cache every time.
          const instance = `${ctx.runPrefix}-bazel-${trial}`;
          let run: BuildRun | undefined;
          const time = async (target: BenchServer | undefined) => {
            run = await timedBuild(ws, target, instance);
            return run;
          };
          baseline.push(await measure(undefined, ACTIONS, () => time(undefined), 1));
          checks.push(`trial ${trial + 1}, no remote cache: ${run?.summary}`);
          cold.push(await measure(server, ACTIONS, () => time(server), 1));
          checks.push(`trial ${trial + 1}, cold: ${run?.summary}`);
          warm.push(await measure(server, ACTIONS, () => time(server), 1));
          checks.push(
            `trial ${trial + 1}, warm: ${run?.summary}` +
              ((run?.executed ?? 1) === 0 ? '' : ' (MISMATCH: actions ran although all cached)'),
          );
          ctx.progress(
            `bazel trial ${trial + 1}: no cache ${baseline.at(-1)?.seconds.toFixed(1)} s, cold ` +
              `${cold.at(-1)?.seconds.toFixed(1)} s, warm ${warm.at(-1)?.seconds.toFixed(1)} s`,
          );
        }
      },
    );
    peak = peaks[0] ?? Number.NaN;
  } finally {
    await ws.cleanup();
  }

  const rss = benchRss();
  return {
    title: `g. Bazel build of ${ACTIONS} actions, cold and warm cache`,
    unit: ACTIONS_PER_SECOND,
    method:
      `Debian's Bazel 4.2.3 builds a generated package of ${ACTIONS} genrules (${LEAVES} leaves ` +
      `writing 2 KiB to 1 MiB, ${PAIRS} that combine pairs, ${TOPS} on top; bench/bazel-build.ts) ` +
      'after `bazel clean --expunge`, so every build starts a new Bazel server with an empty ' +
      'output base. Baseline: no remote cache, every action runs. Cold: Tessera as ' +
      '--remote_cache with an instance name it has never seen, so every action runs and uploads. ' +
      'Warm: the same again, so every action is a cache hit and its outputs are downloaded. ' +
      'The time is the build command, Bazel server start included; the rate is actions over ' +
      'that time; the CPU columns do not include Bazel. One server for cold and warm.',
    rows: [
      {
        label: 'cold cache (all actions run and upload)',
        baseline,
        tessera: cold,
        serverPeakRssBytes: peak,
      },
      { label: 'warm cache (all actions hit)', baseline, tessera: warm, serverPeakRssBytes: peak },
    ],
    checks,
    benchRssBytes: rss.now,
    benchPeakRssBytes: rss.peak,
  };
}
