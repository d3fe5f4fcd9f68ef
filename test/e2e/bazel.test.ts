// Debian's Bazel 4.2.3 builds and tests the fixture workspace (test/e2e/bazel/workspace) against a
// real `tessera serve` process: once on the embedded store, once on S3 + Redis. A cold build fills
// the cache; after `bazel clean --expunge` throws away every local output, the rebuild must get
// every action from the cache, the test must report `(cached) PASSED`, and the 50 MiB blob and the
// directory output must come back byte for byte.
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';

import { type BazelRunOptions, prepareWorkspace } from '../support/bazel.ts';
import {
  BIG_BLOB_BYTES,
  coldBuildAndTest,
  warmBuildAndTest,
} from '../support/bazel-cache-checks.ts';
import {
  createSharedStore,
  errorEntries,
  listStoredObjects,
  removeSharedStore,
  type SharedStore,
  startReplica,
} from '../support/replicas.ts';
import { startEmbeddedTessera, type TesseraProcess } from '../support/tessera.ts';

// Each scenario is four Bazel commands plus a clean; on a 2-core machine it takes well under a
// minute, so this only stops a hang.
const SCENARIO_TIMEOUT_MS = 180_000;

interface ServerHandle {
  readonly server: TesseraProcess;
  /** Where this server keeps blobs, when it keeps them in S3. */
  readonly store?: SharedStore;
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
    await withServer(startOnServices, async ({ server, store }) => {
      await runScenario(t, server, {});

      assert.ok(store !== undefined, 'the S3 server handle must name its store');
      const objects = await listStoredObjects(store);
      assert.ok(
        objects.some((object) => object.size === BIG_BLOB_BYTES),
        `no object of ${BIG_BLOB_BYTES} bytes under ${store.s3Prefix} in ${store.s3.bucket}`,
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
  try {
    const cold = await coldBuildAndTest(t, ws, options);
    await warmBuildAndTest(t, ws, options, cold);
  } finally {
    await ws.cleanup();
  }

  const errors = errorEntries(server.logs);
  assert.deepEqual(errors, [], 'the server logged errors during a build that should be clean');
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
  const { server, stop } = await startEmbeddedTessera();
  return { server, stop };
}

/** S3 + Redis mode, isolated from other tests by a random object prefix and key prefix. */
async function startOnServices(): Promise<ServerHandle> {
  const store = await createSharedStore('e2e-bazel');
  const replica = await startReplica(store);
  return {
    server: replica.server,
    store,
    async stop() {
      try {
        await replica.stop();
      } finally {
        await removeSharedStore(store);
      }
    },
  };
}
