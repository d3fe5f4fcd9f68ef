// The conformance suite's GetTree and action-cache cases, run inside describeConformance (suite.ts)
// against the same server and client.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import type { Digest as CasDigest } from '../../src/cas/digest.ts';
import { encodeMessage } from '../../src/grpc/proto.ts';
import {
  codeOf,
  type Digest,
  digestOf,
  randomBlob,
  type TestClient,
  uploadName,
} from '../support/client.ts';
import type { ServerUnderTest } from './harness.ts';

export interface SuiteContext {
  server(): ServerUnderTest;
  client(): TestClient;
  rejects(promise: Promise<unknown>, code: status, pattern?: RegExp): Promise<void>;
  asDigest(digest: Digest): CasDigest;
}

export function describeTreesAndActions(ctx: SuiteContext): void {
  let server: ServerUnderTest;
  let client: TestClient;
  before(() => {
    server = ctx.server();
    client = ctx.client();
  });
  const { rejects, asDigest } = ctx;

  describe('GetTree', () => {
    const directory = (files: Digest[], dirs: { name: string; digest: Digest }[]) =>
      encodeMessage('build.bazel.remote.execution.v2.Directory', {
        files: files.map((digest, i) => ({ name: `f${i}`, digest })),
        directories: dirs,
      });
    const put = async (data: Buffer) => {
      await client.unary(client.cas, 'BatchUpdateBlobs', {
        requests: [{ digest: digestOf(data), data }],
      });
      return digestOf(data);
    };
    const getTree = (request: object) =>
      new Promise<{ directories: unknown[]; nextPageToken: string }[]>((resolve, reject) => {
        const call = (client.cas.GetTree as (r: object) => NodeJS.ReadableStream).call(
          client.cas,
          request,
        );
        const pages: { directories: unknown[]; nextPageToken: string }[] = [];
        call.on('data', (page) => pages.push(page));
        call.on('error', reject);
        call.on('end', () => resolve(pages));
      });

    it('returns every directory of a tree, in pages that can be resumed', async () => {
      const file = await put(randomBlob(10));
      const leaves = await Promise.all(
        [0, 1, 2, 3].map((i) =>
          put(directory([file], [{ name: `x${i}`, digest: digestOf(Buffer.alloc(0)) }])),
        ),
      );
      // Leaves point at the empty Directory (the empty blob), which is always present.
      const middle = await put(
        directory(
          [],
          leaves.map((digest, i) => ({ name: `l${i}`, digest })),
        ),
      );
      const root = await put(directory([file], [{ name: 'm', digest: middle }]));

      const pages = await getTree({ rootDigest: root, pageSize: 2 });
      const count = pages.reduce((n, p) => n + p.directories.length, 0);
      assert.ok(count >= 6, `expected at least 6 directories, got ${count}`);
      assert.equal(pages.at(-1)?.nextPageToken, '');
      assert.ok(pages.every((p) => p.directories.length <= 2));
      const token = pages[0]?.nextPageToken;
      assert.ok(token);
      const resumed = await getTree({ rootDigest: root, pageSize: 100, pageToken: token });
      assert.ok(resumed.reduce((n, p) => n + p.directories.length, 0) >= count - 2);
    });

    it('skips missing subtrees and answers NOT_FOUND for a missing root', async () => {
      const ghost = digestOf(randomBlob(50));
      const root = await put(directory([], [{ name: 'gone', digest: ghost }]));
      const pages = await getTree({ rootDigest: root });
      assert.equal(
        pages.reduce((n, p) => n + p.directories.length, 0),
        1,
      );
      await assert.rejects(getTree({ rootDigest: ghost }), (e) => codeOf(e) === status.NOT_FOUND);
    });
  });

  describe('action cache', () => {
    const actionDigest = () => digestOf(randomBlob(64));
    const upload = async (data: Buffer) => {
      await client.write(uploadName(digestOf(data)), data);
      return digestOf(data);
    };

    it('stores a result once its outputs are committed, and serves it back', async () => {
      const out = await upload(randomBlob(1000));
      const stdout = await upload(randomBlob(20));
      const action = actionDigest();
      const result = {
        outputFiles: [{ path: 'out/a', digest: out, isExecutable: true }],
        stdoutDigest: stdout,
        exitCode: 0,
      };
      await client.unary(client.actionCache, 'UpdateActionResult', {
        instanceName: 'ci',
        actionDigest: action,
        actionResult: result,
      });
      const back = await client.unary<{ outputFiles: { path: string; digest: Digest }[] }>(
        client.actionCache,
        'GetActionResult',
        { instanceName: 'ci', actionDigest: action },
      );
      assert.equal(back.outputFiles[0]?.path, 'out/a');
      assert.deepEqual(back.outputFiles[0]?.digest, out);
      // Action results are namespaced by instance name.
      await rejects(
        client.unary(client.actionCache, 'GetActionResult', {
          instanceName: 'other',
          actionDigest: action,
        }),
        status.NOT_FOUND,
      );
    });

    it('refuses a result whose outputs are not committed', async () => {
      const ghost = digestOf(randomBlob(500));
      await rejects(
        client.unary(client.actionCache, 'UpdateActionResult', {
          actionDigest: actionDigest(),
          actionResult: { outputFiles: [{ path: 'a', digest: ghost }] },
        }),
        status.FAILED_PRECONDITION,
        new RegExp(ghost.hash),
      );
    });

    it('withholds a result once a file inside an output directory loses its commit', async () => {
      const inner = await upload(randomBlob(3000));
      const tree = encodeMessage('build.bazel.remote.execution.v2.Tree', {
        root: { files: [{ name: 'inner', digest: inner }] },
        children: [],
      });
      const treeDigest = await upload(tree);
      const action = actionDigest();
      await client.unary(client.actionCache, 'UpdateActionResult', {
        actionDigest: action,
        actionResult: { outputDirectories: [{ path: 'dir', treeDigest }] },
      });
      await client.unary(client.actionCache, 'GetActionResult', { actionDigest: action });
      await server.forgetCommit(asDigest(inner));
      await rejects(
        client.unary(client.actionCache, 'GetActionResult', { actionDigest: action }),
        status.NOT_FOUND,
      );
    });

    it('answers NOT_FOUND on a miss and INVALID_ARGUMENT on a malformed action digest', async () => {
      await rejects(
        client.unary(client.actionCache, 'GetActionResult', { actionDigest: actionDigest() }),
        status.NOT_FOUND,
      );
      await rejects(
        client.unary(client.actionCache, 'GetActionResult', {
          actionDigest: { hash: 'zz', sizeBytes: 1 },
        }),
        status.INVALID_ARGUMENT,
      );
      await rejects(
        client.unary(client.actionCache, 'GetActionResult', {
          instanceName: 'a/../b',
          actionDigest: actionDigest(),
        }),
        status.INVALID_ARGUMENT,
      );
    });
  });
}
