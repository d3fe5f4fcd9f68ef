// Debian's BuildStream 1.6.8 against a real `tessera serve` process, once on the embedded store and
// once on S3 + Redis. BuildStream finds and publishes artifacts through the Remote Asset API
// (FetchDirectory / PushDirectory with `urn:fdc:buildstream.build:2020:v1:<ref>`), and moves their
// content through the Batch RPCs (blobs under 1 MiB) and ByteStream (larger ones).
//
// One client builds the fixture element and pushes the artifact. A second client, with empty local
// caches, pulls it and checks it out; the checkout must equal the first client's, entry for entry:
// contents, the executable bit, the empty file, the empty directory and the symlink targets.
// BuildStream only warns when a remote is unusable, so the test looks for `Pushed artifact` and
// `Pulled artifact` rather than trusting the exit code.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { access, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { DeleteObjectsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { Redis } from 'ioredis';
import {
  BST,
  type BstClient,
  createClient,
  ELEMENT,
  LARGE_FILE_BYTES,
  prepareProject,
  SMALL_FILES,
  snapshotTree,
} from '../support/buildstream.ts';
import { createTestS3Client, getServices, type S3Settings } from '../support/services/index.ts';
import { startEmbeddedTessera, startTessera, type TesseraProcess } from '../support/tessera.ts';

/** Five bst commands of a second or two each; this only stops a hang. */
const SCENARIO_TIMEOUT_MS = 120_000;
/** RPCs the scenario must have used, proving each path was exercised. */
const EXPECTED_RPCS = [
  'GetCapabilities',
  'FetchDirectory',
  'PushDirectory',
  'FindMissingBlobs',
  'BatchUpdateBlobs',
  'BatchReadBlobs',
  'Write',
  'Read',
];

interface ServerHandle {
  readonly server: TesseraProcess;
  /** How many asset records the backend holds, read behind the server's back. */
  countAssetRecords(): Promise<number>;
  stop(): Promise<void>;
}

describe('buildstream 1.6.8 against tessera on the embedded store', () => {
  it('pushes an artifact that a client with empty caches pulls back identically', {
    timeout: SCENARIO_TIMEOUT_MS,
  }, async (t) => {
    await withServer(startEmbedded, (handle) => runScenario(t, handle));
  });
});

describe('buildstream 1.6.8 against tessera on S3 and Redis', () => {
  it('pushes an artifact that a client with empty caches pulls back identically', {
    timeout: SCENARIO_TIMEOUT_MS,
  }, async (t) => {
    await withServer(startOnServices, (handle) => runScenario(t, handle));
  });
});

async function runScenario(t: TestContext, handle: ServerHandle): Promise<void> {
  await access(BST).catch(() => {
    throw new Error(`${BST} is missing: install the Debian package buildstream`);
  });
  const url = `http://${handle.server.address}`;
  const project = await prepareProject();
  try {
    const builder = await createClient(project, 'builder', url, true);
    const puller = await createClient(project, 'puller', url, false);
    const bst = async (client: BstClient, args: string[]) => {
      const started = performance.now();
      const result = await client.run(args);
      t.diagnostic(`bst ${args.join(' ')}: ${Math.round(performance.now() - started)} ms`);
      assert.equal(result.code, 0, `bst ${args.join(' ')} failed:\n${result.output}`);
      return result.output;
    };

    const built = await bst(builder, ['build', ELEMENT]);
    assert.match(built, /Pushed artifact [0-9a-f]+ -> http:\/\/127\.0\.0\.1:\d+/, built);
    assert.equal(await handle.countAssetRecords(), 1, 'one artifact ref was pushed');
    const builderOut = join(project.root, 'builder-checkout');
    await bst(builder, ['checkout', '--no-integrate', ELEMENT, builderOut]);

    assert.deepEqual(await readdir(puller.artifactDir).catch(() => []), []);
    const pulled = await bst(puller, ['pull', ELEMENT]);
    assert.match(pulled, /Pulled artifact [0-9a-f]+ <- http:\/\/127\.0\.0\.1:\d+/, pulled);
    const pullerOut = join(project.root, 'puller-checkout');
    await bst(puller, ['checkout', '--no-integrate', ELEMENT, pullerOut]);

    const expected = await snapshotTree(join(project.dir, 'files'));
    const fromBuilder = await snapshotTree(builderOut);
    const fromPuller = await snapshotTree(pullerOut);
    assert.deepEqual(fromPuller, fromBuilder, 'the pulled checkout differs from the built one');
    assertPayload(expected, fromPuller);
  } finally {
    await project.cleanup();
  }

  assertServerLogs(handle.server);
}

/** The checkout holds every generated entry with the same content, kind and executable bit. */
function assertPayload(
  source: Awaited<ReturnType<typeof snapshotTree>>,
  checkout: Awaited<ReturnType<typeof snapshotTree>>,
): void {
  assert.deepEqual(Object.keys(checkout).sort(), Object.keys(source).sort());
  for (const [path, entry] of Object.entries(source)) {
    const out = checkout[path];
    assert.ok(out, `${path} is missing from the checkout`);
    assert.equal(out.type, entry.type, path);
    assert.equal(out.sha256, entry.sha256, `${path} content`);
    assert.equal(out.target, entry.target, `${path} symlink target`);
    if (entry.type === 'file') {
      assert.equal((out.mode ?? 0) & 0o100, (entry.mode ?? 0) & 0o100, `${path} executable bit`);
    }
  }
  assert.equal(source['large.bin']?.size, LARGE_FILE_BYTES);
  assert.equal(source.empty?.size, 0);
  assert.equal((checkout['bin/tool']?.mode ?? 0) & 0o111, 0o111, 'bin/tool is executable');
  assert.equal(checkout['empty-dir']?.type, 'directory');
  assert.equal(checkout.link?.target, 'small/001.dat');
  assert.equal(Object.keys(source).filter((path) => path.startsWith('small/')).length, SMALL_FILES);
}

function assertServerLogs(server: TesseraProcess): void {
  const errors = server.logs.filter((entry) => entry.level === 'error' || entry.level === 'fatal');
  assert.deepEqual(errors, [], 'the server logged errors');
  const served = new Set(
    server.logs.filter((entry) => entry.msg === 'ok').map((entry) => String(entry.method)),
  );
  const unused = EXPECTED_RPCS.filter((method) => !served.has(method));
  assert.deepEqual(unused, [], `these RPCs never succeeded: ${unused.join(', ')}`);
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

/** RPC outcomes are logged at debug level; the scenario reads them to see which paths ran. */
const LOG_LEVEL = 'debug';

async function startEmbedded(): Promise<ServerHandle> {
  const { server, dataDir, stop } = await startEmbeddedTessera({ logLevel: LOG_LEVEL });
  return { server, countAssetRecords: () => countFiles(join(dataDir, 'asset')), stop };
}

/** S3 + Redis mode, isolated from other tests by a random object prefix and key prefix. */
async function startOnServices(): Promise<ServerHandle> {
  const { redisUrl, s3 } = await getServices();
  const run = randomUUID();
  const redisPrefix = `e2e-bst-${run}:`;
  const s3Prefix = `e2e-bst/${run}/`;
  const stagingDir = await mkdtemp(join(tmpdir(), 'tessera-e2e-bst-staging-'));
  try {
    const server = await startTessera({
      env: {
        TESSERA_LOG_LEVEL: LOG_LEVEL,
        TESSERA_REDIS_URL: redisUrl,
        TESSERA_REDIS_PREFIX: redisPrefix,
        TESSERA_S3_ENDPOINT: s3.endpoint,
        TESSERA_S3_BUCKET: s3.bucket,
        TESSERA_S3_REGION: s3.region,
        TESSERA_S3_FORCE_PATH_STYLE: 'true',
        TESSERA_S3_PREFIX: s3Prefix,
        TESSERA_STAGING_DIR: stagingDir,
        AWS_ACCESS_KEY_ID: s3.accessKeyId,
        AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
      },
    });
    return {
      server,
      async countAssetRecords() {
        const redis = new Redis(redisUrl);
        try {
          // BuildStream 1.6 has no instance name setting: it always uses the empty one.
          return (await redis.keys(`${redisPrefix}asset::*`)).length;
        } finally {
          redis.disconnect();
        }
      },
      async stop() {
        try {
          await server.stop();
        } finally {
          await rm(stagingDir, { recursive: true, force: true });
          await deletePrefix(s3, s3Prefix);
        }
      },
    };
  } catch (error) {
    await rm(stagingDir, { recursive: true, force: true });
    throw error;
  }
}

async function countFiles(dir: string): Promise<number> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((entry) => entry.isFile()).length;
}

/** The shared test bucket may live in memory (RGW's memstore): give the objects back. */
async function deletePrefix(settings: S3Settings, prefix: string): Promise<void> {
  const client = createTestS3Client(settings);
  try {
    let token: string | undefined;
    do {
      const page = await client.send(
        new ListObjectsV2Command({
          Bucket: settings.bucket,
          Prefix: prefix,
          ContinuationToken: token,
        }),
      );
      const Objects = (page.Contents ?? []).map((object) => ({ Key: object.Key }));
      if (Objects.length > 0) {
        await client.send(
          new DeleteObjectsCommand({ Bucket: settings.bucket, Delete: { Objects } }),
        );
      }
      token = page.NextContinuationToken;
    } while (token !== undefined);
  } finally {
    client.destroy();
  }
}
