import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readdir, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { assetKey } from '../../src/asset/asset-record.ts';
import { DirectoryAssetStore } from '../../src/asset/directory-asset-store.ts';
import { connectAssets } from '../support/asset-client.ts';
import { connect, digestOf, randomBlob } from '../support/client.ts';
import { describeAssetConformance } from './asset-suite.ts';
import { type ServerUnderTest, startEmbedded } from './harness.ts';

describeAssetConformance('embedded directory store', startEmbedded);

describe('remote asset records in the data directory', () => {
  let server: ServerUnderTest;
  before(async () => {
    server = await startEmbedded();
  });
  after(() => server.stop());

  it('writes one record file per uri and leaves no temp files', async () => {
    const client = connect(server.address);
    const assets = connectAssets(server.address);
    try {
      const data = randomBlob(123);
      await client.unary(client.cas, 'BatchUpdateBlobs', {
        requests: [{ digest: digestOf(data), data }],
      });
      const name = `urn:test:${randomUUID()}`;
      await assets.pushBlob({ instanceName: 'a/b', uris: [name], blobDigest: digestOf(data) });

      const store = server.app.assets;
      assert.ok(store instanceof DirectoryAssetStore);
      const path = store.pathOf('a/b', assetKey('blob', name, []));
      assert.ok((await stat(path)).isFile());
      assert.deepEqual(await readdir(dirname(path)), [assetKey('blob', name, [])]);
    } finally {
      assets.close();
      client.close();
    }
  });
});
