// The Remote Asset conformance suite, run against every storage mode: Push and Fetch through a
// real gRPC client, with the content uploaded through the CAS first and, where it matters, the
// commits behind the server taken away.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { assetKey, canonicalQualifiers, decodeAssetRecord } from '../../src/asset/asset-record.ts';
import { toDigest } from '../../src/cas/digest.ts';
import { encodeMessage } from '../../src/grpc/proto.ts';
import { type AssetClient, connectAssets, timestampIn } from '../support/asset-client.ts';
import {
  codeOf,
  connect,
  type Digest,
  digestOf,
  randomBlob,
  type TestClient,
  uploadName,
} from '../support/client.ts';
import type { ServerFactory, ServerUnderTest } from './harness.ts';

const DIRECTORY_TYPE = 'build.bazel.remote.execution.v2.Directory';
const asDigest = (d: Digest) => toDigest('SHA256', d.hash, d.sizeBytes);
const uri = () => `urn:fdc:tessera.test:2026:${randomUUID()}`;

interface Tree {
  root: Digest;
  /** The file two levels down, and the Directory holding it. */
  innerFile: Digest;
  innerDirectory: Digest;
}

export function describeAssetConformance(mode: string, start: ServerFactory): void {
  describe(`remote asset conformance: ${mode}`, () => {
    let server: ServerUnderTest;
    let client: TestClient;
    let assets: AssetClient;

    before(async () => {
      server = await start();
      client = connect(server.address);
      assets = connectAssets(server.address);
    });
    after(async () => {
      assets.close();
      client.close();
      await server.stop();
    });

    const rejects = async (promise: Promise<unknown>, code: status, pattern?: RegExp) => {
      await assert.rejects(promise, (error: Error) => {
        assert.equal(codeOf(error), code, `expected ${status[code]}, got: ${error.message}`);
        if (pattern) assert.match(error.message, pattern);
        return true;
      });
    };
    /** Commits blobs through BatchUpdateBlobs, or ByteStream for the large ones. */
    const upload = async (...blobs: Buffer[]) => {
      for (const data of blobs) {
        if (data.length > 1024 * 1024) {
          await client.write(uploadName(digestOf(data)), data);
          continue;
        }
        const response = await client.unary<{ responses: { status: { code: number } }[] }>(
          client.cas,
          'BatchUpdateBlobs',
          { requests: [{ digest: digestOf(data), data }] },
        );
        assert.equal(response.responses[0]?.status.code, 0);
      }
      return blobs.map(digestOf);
    };
    const directory = (contents: object) => encodeMessage(DIRECTORY_TYPE, contents);
    /**
     * root/ { small, empty, tool (executable), link -> small, sub/ { big (over 1 MiB), deep/ {
     * inner } } }, every blob committed unless named in `skip`.
     */
    const makeTree = async (skip: 'none' | 'innerFile' | 'innerDirectory' = 'none') => {
      const [small, empty, tool, big] = await upload(
        randomBlob(100),
        Buffer.alloc(0),
        randomBlob(300),
        randomBlob(1024 * 1024 + 5),
      );
      const innerData = randomBlob(2000);
      const innerFile = digestOf(innerData);
      if (skip !== 'innerFile') await upload(innerData);
      const deepData = directory({ files: [{ name: 'inner', digest: innerFile }] });
      const innerDirectory = digestOf(deepData);
      if (skip !== 'innerDirectory') await upload(deepData);
      const [sub] = await upload(
        directory({
          files: [{ name: 'big', digest: big }],
          directories: [{ name: 'deep', digest: innerDirectory }],
        }),
      );
      const [root] = await upload(
        directory({
          files: [
            { name: 'empty', digest: empty },
            { name: 'small', digest: small },
            { name: 'tool', digest: tool, isExecutable: true },
          ],
          directories: [{ name: 'sub', digest: sub }],
          symlinks: [{ name: 'link', target: 'small' }],
        }),
      );
      return { root, innerFile, innerDirectory } as Tree;
    };

    describe('blobs', () => {
      it('fetches the digest a blob was pushed under, and stores one record for it', async () => {
        const [blob] = await upload(randomBlob(5000));
        const name = uri();
        const qualifiers = [{ name: 'resource_type', value: 'application/x-tar' }];
        await assets.pushBlob({ instanceName: 'ci', uris: [name], qualifiers, blobDigest: blob });

        const fetched = await assets.fetchBlob({ instanceName: 'ci', uris: [name], qualifiers });
        assert.equal(fetched.status?.code, status.OK);
        assert.deepEqual(fetched.blobDigest, blob);
        assert.equal(fetched.uri, name);
        assert.deepEqual(fetched.qualifiers, qualifiers);
        assert.equal(fetched.digestFunction, 'SHA256');
        assert.equal(fetched.expiresAt, null);

        const key = assetKey('blob', name, canonicalQualifiers(qualifiers));
        const stored = await server.app.assets.get('ci', key);
        assert.ok(stored, 'the store holds a record under the hashed canonical name');
        assert.deepEqual(decodeAssetRecord(stored).target, asDigest(blob!));
      });

      it('answers the first of several uris that was pushed, and names it', async () => {
        const [blob] = await upload(randomBlob(64));
        const [unknown, known] = [uri(), uri()];
        await assets.pushBlob({ uris: [known], blobDigest: blob });
        const fetched = await assets.fetchBlob({ uris: [unknown, known] });
        assert.equal(fetched.uri, known);
        assert.deepEqual(fetched.blobDigest, blob);
      });

      it('maps every uri of one push, and a later push replaces the mapping', async () => {
        const [first, second] = await upload(randomBlob(10), randomBlob(11));
        const names = [uri(), uri()];
        await assets.pushBlob({ uris: names, blobDigest: first });
        for (const name of names) {
          assert.deepEqual((await assets.fetchBlob({ uris: [name] })).blobDigest, first);
        }
        await assets.pushBlob({ uris: [names[0]!], blobDigest: second });
        assert.deepEqual((await assets.fetchBlob({ uris: [names[0]!] })).blobDigest, second);
        assert.deepEqual((await assets.fetchBlob({ uris: [names[1]!] })).blobDigest, first);
      });

      it('answers NOT_FOUND for a uri never pushed, saying it fetches nothing itself', async () => {
        const name = `https://example.invalid/${randomUUID()}.tar.gz`;
        await rejects(
          assets.fetchBlob({ uris: [name] }),
          status.NOT_FOUND,
          /never fetches from the internet/,
        );
      });

      it('withholds a blob once its commit is gone', async () => {
        const [blob] = await upload(randomBlob(777));
        const name = uri();
        await assets.pushBlob({ uris: [name], blobDigest: blob });
        await server.forgetCommit(asDigest(blob!));
        await rejects(assets.fetchBlob({ uris: [name] }), status.NOT_FOUND, new RegExp(blob!.hash));
      });

      it('refuses to push a blob that is not committed, naming it', async () => {
        const ghost = digestOf(randomBlob(500));
        const name = uri();
        await rejects(
          assets.pushBlob({ uris: [name], blobDigest: ghost }),
          status.FAILED_PRECONDITION,
          new RegExp(ghost.hash),
        );
        await rejects(assets.fetchBlob({ uris: [name] }), status.NOT_FOUND);
      });

      it('refuses a push whose references are not committed', async () => {
        const [blob] = await upload(randomBlob(30));
        const ghost = digestOf(randomBlob(31));
        await rejects(
          assets.pushBlob({ uris: [uri()], blobDigest: blob, referencesBlobs: [ghost] }),
          status.FAILED_PRECONDITION,
          new RegExp(`${ghost.hash}.*references_blobs`),
        );
        const tree = await makeTree('innerFile');
        await rejects(
          assets.pushBlob({ uris: [uri()], blobDigest: blob, referencesDirectories: [tree.root] }),
          status.FAILED_PRECONDITION,
          new RegExp(tree.innerFile.hash),
        );
      });

      it('withholds a blob whose referenced directory lost a file', async () => {
        const [blob] = await upload(randomBlob(40));
        const tree = await makeTree();
        const name = uri();
        await assets.pushBlob({
          uris: [name],
          blobDigest: blob,
          referencesDirectories: [tree.root],
        });
        assert.deepEqual((await assets.fetchBlob({ uris: [name] })).blobDigest, blob);
        await server.forgetCommit(asDigest(tree.innerFile));
        await rejects(assets.fetchBlob({ uris: [name] }), status.NOT_FOUND);
      });
    });

    describe('directories', () => {
      it('fetches the root a whole tree was pushed under', async () => {
        const tree = await makeTree();
        const name = uri();
        await assets.pushDirectory({ uris: [name], rootDirectoryDigest: tree.root });
        const fetched = await assets.fetchDirectory({ uris: [name] });
        assert.equal(fetched.status?.code, status.OK);
        assert.deepEqual(fetched.rootDirectoryDigest, tree.root);
        assert.equal(fetched.uri, name);
      });

      it('keeps blob and directory names apart', async () => {
        const tree = await makeTree();
        const name = uri();
        await assets.pushDirectory({ uris: [name], rootDirectoryDigest: tree.root });
        await rejects(assets.fetchBlob({ uris: [name] }), status.NOT_FOUND);
      });

      it('pushes and fetches the empty directory', async () => {
        const empty = digestOf(Buffer.alloc(0));
        const name = uri();
        await assets.pushDirectory({ uris: [name], rootDirectoryDigest: empty });
        assert.deepEqual(
          (await assets.fetchDirectory({ uris: [name] })).rootDirectoryDigest,
          empty,
        );
      });

      it('withholds a directory once a file deep inside loses its commit', async () => {
        const tree = await makeTree();
        const name = uri();
        await assets.pushDirectory({ uris: [name], rootDirectoryDigest: tree.root });
        await assets.fetchDirectory({ uris: [name] });
        await server.forgetCommit(asDigest(tree.innerFile));
        await rejects(
          assets.fetchDirectory({ uris: [name] }),
          status.NOT_FOUND,
          new RegExp(tree.innerFile.hash),
        );
      });

      it('withholds a directory once an inner Directory loses its commit', async () => {
        const tree = await makeTree();
        const name = uri();
        await assets.pushDirectory({ uris: [name], rootDirectoryDigest: tree.root });
        await server.forgetCommit(asDigest(tree.innerDirectory));
        await rejects(
          assets.fetchDirectory({ uris: [name] }),
          status.NOT_FOUND,
          new RegExp(tree.innerDirectory.hash),
        );
      });

      it('refuses a push of a tree with a missing file or Directory, naming it', async () => {
        const missingFile = await makeTree('innerFile');
        await rejects(
          assets.pushDirectory({ uris: [uri()], rootDirectoryDigest: missingFile.root }),
          status.FAILED_PRECONDITION,
          new RegExp(missingFile.innerFile.hash),
        );
        const missingDirectory = await makeTree('innerDirectory');
        await rejects(
          assets.pushDirectory({ uris: [uri()], rootDirectoryDigest: missingDirectory.root }),
          status.FAILED_PRECONDITION,
          new RegExp(missingDirectory.innerDirectory.hash),
        );
        const ghostRoot = digestOf(directory({ symlinks: [{ name: 'x', target: randomUUID() }] }));
        await rejects(
          assets.pushDirectory({ uris: [uri()], rootDirectoryDigest: ghostRoot }),
          status.FAILED_PRECONDITION,
          new RegExp(ghostRoot.hash),
        );
      });

      it('refuses a root that is not a Directory message', async () => {
        const [notADirectory] = await upload(Buffer.from([0xff, 0xff, 0xff]));
        await rejects(
          assets.pushDirectory({ uris: [uri()], rootDirectoryDigest: notADirectory }),
          status.INVALID_ARGUMENT,
          /not a Directory/,
        );
      });
    });

    describe('qualifiers', () => {
      it('must all match, in any order', async () => {
        const [blob] = await upload(randomBlob(50));
        const name = uri();
        const a = { name: 'checksum.sri', value: 'sha256-abc' };
        const b = { name: 'resource_type', value: 'application/zip' };
        await assets.pushBlob({ uris: [name], qualifiers: [a, b], blobDigest: blob });

        const fetched = await assets.fetchBlob({ uris: [name], qualifiers: [b, a] });
        assert.deepEqual(fetched.blobDigest, blob);
        for (const qualifiers of [
          [],
          [a],
          [a, { ...b, value: 'application/x-tar' }],
          [a, b, { name: 'x', value: '' }],
        ]) {
          await rejects(assets.fetchBlob({ uris: [name], qualifiers }), status.NOT_FOUND);
        }
      });

      it('rejects a qualifier name given twice, or an empty one', async () => {
        const [blob] = await upload(randomBlob(51));
        const twice = [
          { name: 'q', value: '1' },
          { name: 'q', value: '2' },
        ];
        await rejects(
          assets.pushBlob({ uris: [uri()], qualifiers: twice, blobDigest: blob }),
          status.INVALID_ARGUMENT,
          /"q" is given twice/,
        );
        await rejects(
          assets.fetchBlob({ uris: [uri()], qualifiers: twice }),
          status.INVALID_ARGUMENT,
          /twice/,
        );
        await rejects(
          assets.fetchDirectory({ uris: [uri()], qualifiers: [{ name: '', value: 'v' }] }),
          status.INVALID_ARGUMENT,
          /empty name/,
        );
      });
    });

    describe('expiry', () => {
      it('does not serve a mapping pushed with expire_at in the past', async () => {
        const [blob] = await upload(randomBlob(60));
        const name = uri();
        await assets.pushBlob({ uris: [name], blobDigest: blob, expireAt: timestampIn(-60_000) });
        // Redis may already have dropped the record (it lives 1 ms), so either reason is right.
        await rejects(
          assets.fetchBlob({ uris: [name] }),
          status.NOT_FOUND,
          /expired|was never pushed/,
        );
      });

      it('serves a mapping until its expire_at and reports it', async () => {
        const tree = await makeTree();
        const name = uri();
        const expireAt = timestampIn(3_600_000);
        await assets.pushDirectory({ uris: [name], rootDirectoryDigest: tree.root, expireAt });
        const fetched = await assets.fetchDirectory({ uris: [name] });
        assert.deepEqual(fetched.rootDirectoryDigest, tree.root);
        assert.equal(fetched.expiresAt?.seconds, expireAt.seconds);
      });

      it('takes a zero expire_at for an unset one', async () => {
        const [blob] = await upload(randomBlob(62));
        const name = uri();
        await assets.pushBlob({
          uris: [name],
          blobDigest: blob,
          expireAt: { seconds: 0, nanos: 0 },
        });
        const fetched = await assets.fetchBlob({ uris: [name] });
        assert.deepEqual(fetched.blobDigest, blob);
        assert.equal(fetched.expiresAt, null);
      });

      it('does not serve content pushed before oldest_content_accepted', async () => {
        const [blob] = await upload(randomBlob(61));
        const name = uri();
        await assets.pushBlob({ uris: [name], blobDigest: blob });
        const earlier = await assets.fetchBlob({
          uris: [name],
          oldestContentAccepted: timestampIn(-60_000),
        });
        assert.deepEqual(earlier.blobDigest, blob);
        await rejects(
          assets.fetchBlob({ uris: [name], oldestContentAccepted: timestampIn(60_000) }),
          status.NOT_FOUND,
          /oldest_content_accepted/,
        );
      });
    });

    describe('requests', () => {
      it('answers every method called with no uris with INVALID_ARGUMENT', async () => {
        await rejects(assets.fetchBlob({}), status.INVALID_ARGUMENT, /no uris/);
        await rejects(assets.fetchDirectory({}), status.INVALID_ARGUMENT, /no uris/);
        await rejects(assets.pushBlob({}), status.INVALID_ARGUMENT, /no uris/);
        await rejects(assets.pushDirectory({}), status.INVALID_ARGUMENT, /no uris/);
      });

      it('rejects malformed digests, uris and timestamps with INVALID_ARGUMENT', async () => {
        const name = uri();
        await rejects(assets.pushBlob({ uris: [name] }), status.INVALID_ARGUMENT, /blob_digest/);
        await rejects(
          assets.pushDirectory({
            uris: [name],
            rootDirectoryDigest: { hash: 'xyz', sizeBytes: 1 },
          }),
          status.INVALID_ARGUMENT,
          /root_directory_digest.*xyz/,
        );
        const [blob] = await upload(randomBlob(70));
        await rejects(
          assets.pushBlob({
            uris: [name],
            blobDigest: blob,
            referencesBlobs: [{ hash: blob!.hash, sizeBytes: -1 }],
          }),
          status.INVALID_ARGUMENT,
          /references_blobs/,
        );
        await rejects(
          assets.pushBlob({ uris: [name, ''], blobDigest: blob }),
          status.INVALID_ARGUMENT,
          /uri is empty/,
        );
        await rejects(
          assets.fetchBlob({ uris: [name], oldestContentAccepted: { seconds: 1, nanos: -1 } }),
          status.INVALID_ARGUMENT,
          /oldest_content_accepted/,
        );
      });

      it('honours digest_function like the CAS does', async () => {
        const data = randomBlob(80);
        const { createHash } = await import('node:crypto');
        const sha1 = { hash: createHash('sha1').update(data).digest('hex'), sizeBytes: 80 };
        await client.write(uploadName(sha1), data);
        const name = uri();
        await assets.pushBlob({ uris: [name], blobDigest: sha1 });

        const inferred = await assets.fetchBlob({ uris: [name] });
        assert.deepEqual(inferred.blobDigest, sha1);
        assert.equal(inferred.digestFunction, 'SHA1');
        const named = await assets.fetchBlob({ uris: [name], digestFunction: 'SHA1' });
        assert.deepEqual(named.blobDigest, sha1);
        await rejects(
          assets.fetchBlob({ uris: [name], digestFunction: 'SHA256' }),
          status.NOT_FOUND,
          /digest function SHA1/,
        );
        await rejects(
          assets.fetchBlob({ uris: [name], digestFunction: 'VSO' }),
          status.INVALID_ARGUMENT,
          /VSO/,
        );
        await rejects(
          assets.pushBlob({ uris: [name], blobDigest: sha1, digestFunction: 'SHA256' }),
          status.INVALID_ARGUMENT,
          /SHA256 needs 64/,
        );
      });
    });

    describe('instance names', () => {
      it('namespace the mappings', async () => {
        const [blob] = await upload(randomBlob(90));
        const name = uri();
        await assets.pushBlob({ instanceName: 'team/linux', uris: [name], blobDigest: blob });
        const fetched = await assets.fetchBlob({ instanceName: 'team/linux', uris: [name] });
        assert.deepEqual(fetched.blobDigest, blob);
        for (const instanceName of ['', 'team/windows', 'team']) {
          await rejects(assets.fetchBlob({ instanceName, uris: [name] }), status.NOT_FOUND);
        }
        await rejects(
          assets.fetchBlob({ instanceName: 'team/../linux', uris: [name] }),
          status.INVALID_ARGUMENT,
        );
      });
    });

    it('keeps serving after every bad request above', async () => {
      const [blob] = await upload(randomBlob(99));
      const name = uri();
      await assets.pushBlob({ uris: [name], blobDigest: blob });
      assert.deepEqual((await assets.fetchBlob({ uris: [name] })).blobDigest, blob);
    });
  });
}
