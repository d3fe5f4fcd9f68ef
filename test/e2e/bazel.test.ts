// Debian's Bazel 4.2.3 builds and tests the fixture workspace (test/e2e/bazel/workspace) against a
// real `tessera serve` process: once on the embedded store, once on S3 + Redis. A cold build fills
// the cache; after `bazel clean --expunge` throws away every local output, the rebuild must get
// every action from the cache, the test must report `(cached) PASSED`, and the 50 MiB blob and the
// directory output must come back byte for byte.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';

import { DeleteObjectsCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';

import {
  type BazelResult,
  type BazelRunOptions,
  type BazelWorkspace,
  digestOutput,
  type ProcessSummary,
  parseProcessSummary,
  prepareWorkspace,
  runBazel,
} from '../support/bazel.ts';
import { createTestS3Client, getServices, type S3Settings } from '../support/services/index.ts';
import { startTessera, type TesseraProcess } from '../support/tessera.ts';

// Each scenario is four Bazel commands plus a clean; on a 2-core machine it takes well under a
// minute, so this only stops a hang.
const SCENARIO_TIMEOUT_MS = 180_000;
/** Outputs compared before and after the clean, relative to the workspace. */
const COMPARED_OUTPUTS = ['bazel-bin/gen/big.bin', 'bazel-bin/tree/layout'] as const;
const TEST_TARGET = '//tests:outputs_test';
/** Size of //gen:big, as its genrule in test/e2e/bazel/workspace/gen/BUILD writes it. */
const BIG_BLOB_BYTES = 52_441_145;
/** The fixture is meant to exercise a real build; fewer actions means a target went missing. */
const MIN_CACHEABLE_ACTIONS = 20;
// What Bazel prints when the cache or a repository fetch fails, even when it then falls back to
// building locally and exits 0.
const TROUBLE_PATTERNS = [
  /(Reading from|Writing to) Remote Cache:/,
  /failed be uploaded to the remote cache|Upload to remote cache failed/,
  /not (uploaded to|in) the remote cache/,
  /Error downloading|error occurred during the fetch/,
];

interface ServerHandle {
  readonly server: TesseraProcess;
  /** Where this server keeps blobs, when it keeps them in S3. */
  readonly bucket?: { readonly settings: S3Settings; readonly prefix: string };
  stop(): Promise<void>;
}

describe('bazel 4.2.3 against tessera on the embedded store', () => {
  it('serves every action of a rebuild after clean --expunge from the cache', {
    timeout: SCENARIO_TIMEOUT_MS,
  }, async (t) => {
    await withServer(startEmbedded, async ({ server }) => {
      await runScenario(t, server, {});
    });
  });

  it('does the same under --remote_instance_name=some/instance', {
    timeout: SCENARIO_TIMEOUT_MS,
  }, async (t) => {
    await withServer(startEmbedded, async ({ server }) => {
      await runScenario(t, server, { instanceName: 'some/instance' });
    });
  });
});

describe('bazel 4.2.3 against tessera on S3 and Redis', () => {
  it('serves every action of a rebuild after clean --expunge from the cache', {
    timeout: SCENARIO_TIMEOUT_MS,
  }, async (t) => {
    await withServer(startOnServices, async ({ server, bucket }) => {
      await runScenario(t, server, {});

      assert.ok(bucket !== undefined, 'the S3 server handle must name its bucket');
      const objects = await withS3(bucket.settings, (client) =>
        listObjects(client, bucket.settings.bucket, bucket.prefix),
      );
      assert.ok(
        objects.some((object) => object.size === BIG_BLOB_BYTES),
        `no object of ${BIG_BLOB_BYTES} bytes under ${bucket.prefix} in ${bucket.settings.bucket}`,
      );
    });
  });
});

async function runScenario(
  t: TestContext,
  server: TesseraProcess,
  remote: BazelRunOptions,
): Promise<void> {
  const options: BazelRunOptions = { ...remote, remoteCache: server.address };
  const ws = await prepareWorkspace();
  const bazel = async (args: string[], opts: BazelRunOptions) => {
    const started = performance.now();
    const result = await bazelOk(ws, args, opts);
    t.diagnostic(`bazel ${args.join(' ')}: ${Math.round(performance.now() - started)} ms`);
    return result;
  };
  try {
    const coldBuild = summaryOf(await bazel(['build', '//...'], options));
    const coldTestRun = await bazel(['test', '//...'], options);
    const coldTest = summaryOf(coldTestRun);
    assert.equal(coldBuild.remoteCacheHits, 0, 'a fresh cache cannot have hits');
    assert.ok(
      coldBuild.executed >= MIN_CACHEABLE_ACTIONS,
      `cold build ran ${coldBuild.executed} actions, expected at least ${MIN_CACHEABLE_ACTIONS}`,
    );
    assert.match(coldTestRun.stdout, testStatusLine('PASSED'));
    const coldDigests = await digestOutputs(ws);

    await bazel(['clean', '--expunge'], {});

    const warmBuild = summaryOf(await bazel(['build', '//...'], options));
    const warmTestRun = await bazel(['test', '//...'], options);
    const warmTest = summaryOf(warmTestRun);
    assertAllFromCache('build', warmBuild, coldBuild);
    assertAllFromCache('test', warmTest, coldTest);
    assert.match(warmTestRun.stdout, testStatusLine('(cached) PASSED'));
    assert.deepEqual(await digestOutputs(ws), coldDigests);
  } finally {
    await ws.cleanup();
  }

  const errors = server.logs.filter((entry) => isErrorLevel(entry.level));
  assert.deepEqual(errors, [], 'the server logged errors during a build that should be clean');
}

/** After the clean, every action that ran in the cold build must come from the cache. */
function assertAllFromCache(step: string, warm: ProcessSummary, cold: ProcessSummary): void {
  const kinds = (summary: ProcessSummary) => JSON.stringify(summary.byKind);
  const detail = `warm ${step}: ${kinds(warm)}, cold ${step}: ${kinds(cold)}`;
  assert.equal(warm.executed, 0, `no action may run locally; ${detail}`);
  assert.equal(warm.remoteCacheHits, cold.executed, `every cold action must be a hit; ${detail}`);
}

async function bazelOk(
  ws: BazelWorkspace,
  args: string[],
  options: BazelRunOptions,
): Promise<BazelResult> {
  const result = await runBazel(ws, args, options);
  const command = `bazel ${args.join(' ')}`;
  assert.equal(result.code, 0, `${command} failed:\n${result.stderr}\n${result.stdout}`);
  const trouble = result.stderr
    .split('\n')
    .filter((line) => TROUBLE_PATTERNS.some((pattern) => pattern.test(line)));
  assert.deepEqual(trouble, [], `${command} reported cache or fetch trouble:\n${result.stderr}`);
  return result;
}

async function withS3<T>(settings: S3Settings, use: (client: S3Client) => Promise<T>): Promise<T> {
  const client = createTestS3Client(settings);
  try {
    return await use(client);
  } finally {
    client.destroy();
  }
}

async function listObjects(
  client: S3Client,
  bucket: string,
  prefix: string,
): Promise<{ key: string; size: number }[]> {
  const objects: { key: string; size: number }[] = [];
  let token: string | undefined;
  do {
    const page = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
    );
    for (const object of page.Contents ?? []) {
      objects.push({ key: object.Key ?? '', size: object.Size ?? 0 });
    }
    token = page.NextContinuationToken;
  } while (token !== undefined);
  return objects;
}

async function deletePrefix(settings: S3Settings, prefix: string): Promise<void> {
  await withS3(settings, async (client) => {
    const objects = await listObjects(client, settings.bucket, prefix);
    const keys = objects.map(({ key }) => ({ Key: key }));
    // DeleteObjects takes at most 1,000 keys per request.
    for (let start = 0; start < keys.length; start += 1000) {
      const Objects = keys.slice(start, start + 1000);
      await client.send(new DeleteObjectsCommand({ Bucket: settings.bucket, Delete: { Objects } }));
    }
  });
}

function summaryOf(result: BazelResult): ProcessSummary {
  return parseProcessSummary(result.stderr);
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

function isErrorLevel(level: unknown): boolean {
  if (typeof level === 'number') return level >= 50;
  return level === 'error' || level === 'fatal';
}

async function withServer(
  start: () => Promise<ServerHandle>,
  body: (handle: ServerHandle) => Promise<void>,
): Promise<void> {
  const handle = await start();
  try {
    await body(handle);
  } finally {
    await handle.stop();
  }
}

/** Embedded mode: a data directory and nothing else, even if the caller's shell names S3. */
async function startEmbedded(): Promise<ServerHandle> {
  const dataDir = await mkdtemp(join(tmpdir(), 'tessera-e2e-data-'));
  try {
    const server = await startTessera({
      env: {
        TESSERA_DATA_DIR: dataDir,
        TESSERA_STAGING_DIR: undefined,
        TESSERA_S3_ENDPOINT: undefined,
        TESSERA_S3_BUCKET: undefined,
        TESSERA_S3_PREFIX: undefined,
        TESSERA_REDIS_URL: undefined,
        TESSERA_REDIS_PREFIX: undefined,
      },
    });
    return {
      server,
      async stop() {
        try {
          await server.stop();
        } finally {
          await rm(dataDir, { recursive: true, force: true });
        }
      },
    };
  } catch (error) {
    await rm(dataDir, { recursive: true, force: true });
    throw error;
  }
}

/** S3 + Redis mode, isolated from other tests by a random object prefix and key prefix. */
async function startOnServices(): Promise<ServerHandle> {
  const { redisUrl, s3 } = await getServices();
  const run = randomUUID();
  const prefix = `e2e-bazel/${run}/`;
  const stagingDir = await mkdtemp(join(tmpdir(), 'tessera-e2e-staging-'));
  try {
    const server = await startTessera({
      env: {
        TESSERA_REDIS_URL: redisUrl,
        TESSERA_REDIS_PREFIX: `e2e-bazel-${run}:`,
        TESSERA_S3_ENDPOINT: s3.endpoint,
        TESSERA_S3_BUCKET: s3.bucket,
        TESSERA_S3_REGION: s3.region,
        TESSERA_S3_FORCE_PATH_STYLE: 'true',
        TESSERA_S3_PREFIX: prefix,
        TESSERA_STAGING_DIR: stagingDir,
        AWS_ACCESS_KEY_ID: s3.accessKeyId,
        AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
      },
    });
    return {
      server,
      bucket: { settings: s3, prefix },
      async stop() {
        try {
          await server.stop();
        } finally {
          await rm(stagingDir, { recursive: true, force: true });
          // The shared test bucket may live in memory (RGW's memstore): give the 50 MiB back.
          await deletePrefix(s3, prefix);
        }
      },
    };
  } catch (error) {
    await rm(stagingDir, { recursive: true, force: true });
    throw error;
  }
}
