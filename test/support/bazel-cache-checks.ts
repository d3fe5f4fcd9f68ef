// The two halves of every Bazel end-to-end check against Tessera, shared by the single-server and
// the replica tests. A cold build and test must run every action and leave its results in the
// cache. A warm build and test, after `bazel clean --expunge` has thrown away every local output,
// must take every one of those actions from the cache, report the test as `(cached) PASSED` and,
// when outputs are downloaded, restore them byte for byte. Every Bazel command must exit 0 without
// a remote-cache warning, because Bazel falls back to building locally and still succeeds.
import assert from 'node:assert/strict';
import type { Stats } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import type { TestContext } from 'node:test';

import {
  type BazelResult,
  type BazelRunOptions,
  type BazelWorkspace,
  digestOutput,
  type ProcessSummary,
  parseProcessSummary,
  runBazel,
} from './bazel.ts';

const TEST_TARGET = '//tests:outputs_test';
/** Outputs compared between runs, relative to the workspace; both are top-level targets of //... */
const COMPARED_OUTPUTS = ['bazel-bin/gen/big.bin', 'bazel-bin/tree/layout'] as const;
/** Size of //gen:big, as its genrule in test/e2e/bazel/workspace/gen/BUILD writes it. */
export const BIG_BLOB_BYTES = 52_441_145;
/** The fixture is meant to exercise a real build; fewer actions means a target went missing. */
const MIN_CACHEABLE_ACTIONS = 20;
// What Bazel 4.2 prints when the cache or a repository fetch fails, even when it then falls back to
// building locally and exits 0 (the messages are in the remote package of its server jar).
const TROUBLE_PATTERNS = [
  /(Reading from|Writing to) Remote Cache:/,
  /failed be uploaded to the remote cache|Upload to remote cache failed/,
  /not (uploaded to|in) the remote cache/,
  /Error while uploading artifact|does not exist remotely|after incomplete download/,
  /Failed to query remote execution capabilities|Cannot use hash function/,
  /Error downloading|error occurred during the fetch/,
];

/** What a cold build and test did, for the warm run to be measured against. */
export interface ColdRun {
  readonly build: ProcessSummary;
  readonly test: ProcessSummary;
  /** digestOutput() of each of COMPARED_OUTPUTS. */
  readonly digests: Readonly<Record<string, string>>;
}

export interface WarmExpectations {
  /**
   * `identical`: COMPARED_OUTPUTS exist and equal the cold ones (the default, and what
   * --remote_download_toplevel must give). `absent`: no file of them was downloaded, as
   * --remote_download_minimal promises.
   */
  outputs?: 'identical' | 'absent';
}

/** Runs one Bazel command; it must exit 0 and print no cache or fetch trouble. */
export async function bazelOk(
  t: TestContext,
  ws: BazelWorkspace,
  args: string[],
  options: BazelRunOptions,
): Promise<BazelResult> {
  const started = performance.now();
  const result = await runBazel(ws, args, options);
  const command = describeCommand(args, options);
  t.diagnostic(`${command}: ${Math.round(performance.now() - started)} ms`);

  assert.equal(result.code, 0, `${command} failed:\n${result.stderr}\n${result.stdout}`);
  const trouble = result.stderr
    .split('\n')
    .filter((line) => TROUBLE_PATTERNS.some((pattern) => pattern.test(line)));
  assert.deepEqual(trouble, [], `${command} reported cache or fetch trouble:\n${result.stderr}`);
  return result;
}

/** `bazel clean --expunge`: the output base goes, and with it every local output and cache. */
export async function expunge(
  t: TestContext,
  ws: BazelWorkspace,
  extraStartup: string[] = [],
): Promise<void> {
  await bazelOk(t, ws, ['clean', '--expunge'], { extraStartup });
}

/**
 * Builds and tests //... against a cache that must not know these actions yet: nothing may be a
 * hit, a real number of actions must run, and the test must pass. The workspace must hold no
 * outputs of an earlier build (a fresh one, or one just expunged), or Bazel would run nothing.
 */
export async function coldBuildAndTest(
  t: TestContext,
  ws: BazelWorkspace,
  options: BazelRunOptions,
): Promise<ColdRun> {
  const build = summaryOf(await bazelOk(t, ws, ['build', '//...'], options));
  const testRun = await bazelOk(t, ws, ['test', '//...'], options);
  const test = summaryOf(testRun);
  t.diagnostic(`cold processes: build ${kinds(build)}, test ${kinds(test)}`);

  assert.equal(build.remoteCacheHits, 0, `a fresh cache cannot have hits: ${kinds(build)}`);
  assert.ok(
    build.executed >= MIN_CACHEABLE_ACTIONS,
    `cold build ran ${build.executed} actions, expected at least ${MIN_CACHEABLE_ACTIONS}`,
  );
  assert.match(testRun.stdout, testStatusLine('PASSED'));
  return { build, test, digests: await digestOutputs(ws) };
}

/**
 * Expunges the workspace, then builds and tests //... again: every action the cold run executed
 * must now be a remote cache hit, nothing may run locally, and the test must be `(cached) PASSED`.
 */
export async function warmBuildAndTest(
  t: TestContext,
  ws: BazelWorkspace,
  options: BazelRunOptions,
  cold: ColdRun,
  expected: WarmExpectations = {},
): Promise<void> {
  await expunge(t, ws, options.extraStartup);

  const build = summaryOf(await bazelOk(t, ws, ['build', '//...'], options));
  const testRun = await bazelOk(t, ws, ['test', '//...'], options);
  const test = summaryOf(testRun);
  t.diagnostic(`warm processes: build ${kinds(build)}, test ${kinds(test)}`);

  assertAllFromCache('build', build, cold.build);
  assertAllFromCache('test', test, cold.test);
  assert.match(testRun.stdout, testStatusLine('(cached) PASSED'));
  if ((expected.outputs ?? 'identical') === 'identical') {
    assert.deepEqual(await digestOutputs(ws), cold.digests);
  } else {
    assert.deepEqual(await downloadedFiles(ws), [], 'no output file may be downloaded');
  }
}

/** After the clean, every action that ran in the cold run must come from the cache. */
function assertAllFromCache(step: string, warm: ProcessSummary, cold: ProcessSummary): void {
  const detail = `warm ${step}: ${kinds(warm)}, cold ${step}: ${kinds(cold)}`;
  assert.equal(warm.executed, 0, `no action may run locally; ${detail}`);
  assert.equal(warm.remoteCacheHits, cold.executed, `every cold action must be a hit; ${detail}`);
}

function summaryOf(result: BazelResult): ProcessSummary {
  return parseProcessSummary(result.stderr);
}

function kinds(summary: ProcessSummary): string {
  return JSON.stringify(summary.byKind);
}

function testStatusLine(status: string): RegExp {
  const escaped = status.replace(/[()]/g, '\\$&');
  return new RegExp(`^${TEST_TARGET}\\s+${escaped} in `, 'm');
}

async function digestOutputs(ws: BazelWorkspace): Promise<Record<string, string>> {
  const digests: Record<string, string> = {};
  for (const output of COMPARED_OUTPUTS) digests[output] = await digestOutput(join(ws.dir, output));
  return digests;
}

/**
 * Every file or link at or below COMPARED_OUTPUTS. Bazel 4.2 creates the directory of a tree
 * artifact even when it downloads none of its files, so empty directories do not count.
 */
async function downloadedFiles(ws: BazelWorkspace): Promise<string[]> {
  const found: string[] = [];
  const visit = async (path: string): Promise<void> => {
    let stat: Stats;
    try {
      stat = await lstat(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    if (!stat.isDirectory()) {
      found.push(relative(ws.dir, path));
      return;
    }
    for (const name of (await readdir(path)).sort()) await visit(join(path, name));
  };
  for (const output of COMPARED_OUTPUTS) await visit(join(ws.dir, output));
  return found;
}

function describeCommand(args: string[], options: BazelRunOptions): string {
  const flags = [
    ...(options.extraStartup ?? []),
    ...args.slice(0, 1),
    ...(options.instanceName === undefined
      ? []
      : [`--remote_instance_name=${options.instanceName}`]),
    ...(options.extraFlags ?? []),
    ...args.slice(1),
  ];
  const via = options.remoteCache === undefined ? '' : ` via ${options.remoteCache}`;
  return `bazel ${flags.join(' ')}${via}`;
}
