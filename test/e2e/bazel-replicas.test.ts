// Debian's Bazel 4.2.3 against two `tessera serve` replicas in S3 + Redis mode: separate processes,
// each with its own staging directory, sharing one bucket prefix and one Redis prefix. Bazel builds
// and tests cold through replica A, which uploads; after `bazel clean --expunge` it builds and
// tests again through replica B, which must serve every action from what A stored. The same holds
// under an instance name with a slash, with SHA-1 digests, when only top-level outputs or none at
// all are downloaded, and after every replica has been replaced by a new process.
//
// One Bazel workspace serves every case, and each cache namespace (digest function, instance name)
// is built cold only once, by whichever case needs it first.
import assert from 'node:assert/strict';
import { access } from 'node:fs/promises';
import { after, before, describe, it, type TestContext } from 'node:test';

import { type BazelRunOptions, type BazelWorkspace, prepareWorkspace } from '../support/bazel.ts';
import {
  BIG_BLOB_BYTES,
  type ColdRun,
  coldBuildAndTest,
  expunge,
  warmBuildAndTest,
} from '../support/bazel-cache-checks.ts';
import {
  createSharedStore,
  errorEntries,
  listRedisKeys,
  listStoredObjects,
  type Replica,
  removeSharedStore,
  type SharedStore,
  startReplica,
} from '../support/replicas.ts';

// A case is at most a cold and a warm run, six Bazel commands, about 25 s here; this bound only
// stops a hang.
const CASE_TIMEOUT_MS = 180_000;
const INSTANCE_NAME = 'ci/linux-x86_64';
// Bazel 4.2 takes the digest function as a startup option and then sends SHA-1 digests with no
// digest_function field; the server must infer SHA-1 from the 40-digit hashes.
const SHA1_STARTUP = ['--digest_function=SHA1'];
// At debug level a replica logs every call it answers, with the method, which shows which replica
// took the uploads and which only served reads.
const REPLICA_LOG_LEVEL = 'debug';
/** The calls that put something into the cache. */
const UPLOAD_METHODS = new Set(['Write', 'BatchUpdateBlobs', 'UpdateActionResult']);
const SHA1_OBJECT_KEY = /^cas\/sha1\/[0-9a-f]{40}$/;
const SHA1_COMMIT_KEY = /^cas:sha1:[0-9a-f]{40}$/;
const SHA1_ACTION_KEY = /^ac::sha1:[0-9a-f]{40}:\d+$/;

interface Pair {
  readonly a: Replica;
  readonly b: Replica;
}

describe('bazel 4.2.3 against two tessera replicas sharing one bucket and one redis', () => {
  let workspace: BazelWorkspace | undefined;
  let sharedStore: SharedStore | undefined;
  let replicas: Pair | undefined;
  /** Cold runs by cache namespace; the first case to need one does it through replica A. */
  const coldRuns = new Map<string, Promise<ColdRun>>();

  before(async () => {
    workspace = await prepareWorkspace();
    sharedStore = await createSharedStore('e2e-replicas');
    replicas = await startPair(sharedStore);
  });

  after(async () => {
    await settleAll([
      async () => {
        if (replicas !== undefined) await stopPair(replicas);
      },
      async () => workspace?.cleanup(),
      async () => {
        if (sharedStore !== undefined) await removeSharedStore(sharedStore);
      },
    ]);
  });

  const ws = () => defined(workspace, 'workspace');
  const pair = () => defined(replicas, 'replicas');
  const coldThroughA = (t: TestContext, namespace: string, remote: BazelRunOptions) => {
    let run = coldRuns.get(namespace);
    if (run === undefined) {
      run = expungeThenCold(t, ws(), { ...remote, remoteCache: pair().a.address });
      coldRuns.set(namespace, run);
    }
    return run;
  };

  it('serves a rebuild through replica B entirely from what replica A uploaded', {
    timeout: CASE_TIMEOUT_MS,
  }, async (t) => {
    const cold = await coldThroughA(t, 'default', {});

    await warmBuildAndTest(t, ws(), { remoteCache: pair().b.address }, cold);

    assertNoErrors(pair().a, pair().b);
    assertUploadedNothing(pair().b);
  });

  it(`does the same under --remote_instance_name=${INSTANCE_NAME}`, {
    timeout: CASE_TIMEOUT_MS,
  }, async (t) => {
    const remote = { instanceName: INSTANCE_NAME };
    // The action cache is per instance name, so this cold run has no hits even when the CAS
    // already holds every blob from the default instance.
    const cold = await coldThroughA(t, INSTANCE_NAME, remote);

    await warmBuildAndTest(t, ws(), { ...remote, remoteCache: pair().b.address }, cold);

    assertNoErrors(pair().a, pair().b);
    assertUploadedNothing(pair().b);
  });

  it('keys blobs and actions by SHA-1 when bazel starts with --digest_function=SHA1', {
    timeout: CASE_TIMEOUT_MS,
  }, async (t) => {
    // Its own prefixes, so that every key the replicas wrote can be checked to be SHA-1.
    const store = await createSharedStore('e2e-replicas-sha1');
    try {
      const sha1 = await startPair(store);
      let cold: ColdRun;
      try {
        const remote = { extraStartup: SHA1_STARTUP };
        cold = await expungeThenCold(t, ws(), { ...remote, remoteCache: sha1.a.address });
        await warmBuildAndTest(t, ws(), { ...remote, remoteCache: sha1.b.address }, cold);
      } finally {
        await stopPair(sha1);
      }
      assertNoErrors(sha1.a, sha1.b);
      assertUploadedSomething(sha1.a);
      assertUploadedNothing(sha1.b);

      const objects = await listStoredObjects(store);
      const objectKeys = objects.map(({ key }) => key.slice(store.s3Prefix.length));
      assert.ok(objectKeys.length > 0, `no objects under ${store.s3Prefix}`);
      const notSha1 = objectKeys.filter((key) => !SHA1_OBJECT_KEY.test(key));
      assert.deepEqual(notSha1, [], `objects under ${store.s3Prefix} that are not cas/sha1/<hash>`);
      assert.ok(
        objects.some(({ size }) => size === BIG_BLOB_BYTES),
        `no object of ${BIG_BLOB_BYTES} bytes under ${store.s3Prefix}cas/sha1/`,
      );

      const redisKeys = await listRedisKeys(store);
      const commits = redisKeys.filter((key) => SHA1_COMMIT_KEY.test(key));
      const actions = redisKeys.filter((key) => SHA1_ACTION_KEY.test(key));
      // The lease index, its byte total and the index's birth time; no write intent or tombstone
      // may be left behind.
      const leases = ['gc:born', 'gc:bytes', 'gc:lease'];
      const others = redisKeys.filter(
        (key) => !commits.includes(key) && !actions.includes(key) && !leases.includes(key),
      );
      assert.deepEqual(others, [], `redis keys under ${store.redisPrefix} that are not SHA-1`);
      assert.deepEqual(
        commits.map((key) => key.replaceAll(':', '/')),
        objectKeys,
        'every SHA-1 object must have its commit entry and nothing else may be committed',
      );
      const executed = cold.build.executed + cold.test.executed;
      assert.equal(actions.length, executed, 'one SHA-1 action result per action the cold run ran');
    } finally {
      await removeSharedStore(store);
    }
  });

  it('serves a --remote_download_minimal rebuild through B from the cache, downloading nothing', {
    timeout: CASE_TIMEOUT_MS,
  }, async (t) => {
    const cold = await coldThroughA(t, 'default', {});

    const remote = { remoteCache: pair().b.address, extraFlags: ['--remote_download_minimal'] };
    await warmBuildAndTest(t, ws(), remote, cold, { outputs: 'absent' });

    assertNoErrors(pair().a, pair().b);
    assertUploadedNothing(pair().b);
  });

  it('serves a --remote_download_toplevel rebuild through B with top-level outputs intact', {
    timeout: CASE_TIMEOUT_MS,
  }, async (t) => {
    const cold = await coldThroughA(t, 'default', {});

    const remote = { remoteCache: pair().b.address, extraFlags: ['--remote_download_toplevel'] };
    await warmBuildAndTest(t, ws(), remote, cold, { outputs: 'identical' });

    assertNoErrors(pair().a, pair().b);
    assertUploadedNothing(pair().b);
  });

  it('loses nothing when every replica is restarted', {
    timeout: CASE_TIMEOUT_MS,
  }, async (t) => {
    const cold = await coldThroughA(t, 'default', {});
    const store = defined(sharedStore, 'sharedStore');
    const old = pair();

    assert.deepEqual(await stopPair(old), [0, 0], 'both replicas must exit 0 on SIGTERM');
    // Their logs are complete now that the processes have exited.
    assertNoErrors(old.a, old.b);
    assertUploadedSomething(old.a);
    assertUploadedNothing(old.b);
    replicas = await startPair(store);

    await warmBuildAndTest(t, ws(), { remoteCache: pair().b.address }, cold);

    assertNoErrors(pair().a, pair().b);
    assertUploadedNothing(pair().b);
  });
});

async function expungeThenCold(
  t: TestContext,
  ws: BazelWorkspace,
  options: BazelRunOptions,
): Promise<ColdRun> {
  // The workspace may hold outputs of another namespace's run; with them Bazel would run nothing.
  // Before its first command it has no output user root, and nothing to throw away.
  if (await exists(ws.outputUserRoot)) await expunge(t, ws, options.extraStartup);
  return coldBuildAndTest(t, ws, options);
}

async function startPair(store: SharedStore): Promise<Pair> {
  const a = await startReplica(store, { logLevel: REPLICA_LOG_LEVEL });
  try {
    const b = await startReplica(store, { logLevel: REPLICA_LOG_LEVEL });
    return { a, b };
  } catch (error) {
    await a.stop();
    throw error;
  }
}

/** Stops both replicas, even if one fails to stop; returns their exit codes. */
async function stopPair(pair: Pair): Promise<(number | null)[]> {
  const results = await Promise.allSettled([pair.a.stop(), pair.b.stop()]);
  const failed = results.find((result) => result.status === 'rejected');
  if (failed !== undefined) throw failed.reason;
  return results.map((result) => (result.status === 'fulfilled' ? result.value : null));
}

function assertNoErrors(...replicas: Replica[]): void {
  for (const replica of replicas) {
    const errors = errorEntries(replica.server.logs);
    assert.deepEqual(errors, [], `replica ${replica.address} logged errors`);
  }
}

function assertUploadedNothing(replica: Replica): void {
  const uploads = uploadEntries(replica);
  assert.deepEqual(uploads, [], `replica ${replica.address} took uploads; it should only read`);
}

function assertUploadedSomething(replica: Replica): void {
  const answered = (method: string) =>
    replica.server.logs.filter((entry) => entry.method === method && entry.msg === 'ok').length;
  assert.ok(answered('Write') > 0, `replica ${replica.address} answered no Write`);
  assert.ok(
    answered('UpdateActionResult') > 0,
    `replica ${replica.address} answered no UpdateActionResult`,
  );
}

function uploadEntries(replica: Replica): Record<string, unknown>[] {
  return replica.server.logs.filter(
    (entry) => typeof entry.method === 'string' && UPLOAD_METHODS.has(entry.method),
  );
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

function defined<T>(value: T | undefined, name: string): T {
  if (value === undefined) throw new Error(`${name} was not set up; see the before hook's error`);
  return value;
}

/** Runs every cleanup step even when an earlier one fails, then throws the first failure. */
async function settleAll(steps: (() => Promise<unknown>)[]): Promise<void> {
  const failures: unknown[] = [];
  for (const step of steps) {
    try {
      await step();
    } catch (error) {
      failures.push(error);
    }
  }
  if (failures.length > 0) throw failures[0];
}
