// The `tessera` command as an operator runs it: a real process, its exit codes and log lines.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { blobName, connect, digestOf, randomBlob, uploadName } from './support/client.ts';
import { startTessera } from './support/tessera.ts';

const ENTRY = fileURLToPath(new URL('../bin/tessera.js', import.meta.url));

function runTessera(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [ENTRY, ...args], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 30_000,
  });
}

describe('tessera serve', () => {
  let dataDir: string;
  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'tessera-cli-'));
  });
  after(() => rm(dataDir, { recursive: true, force: true }));

  it('keeps blobs across a restart in embedded mode and stops cleanly on SIGTERM', async () => {
    const data = randomBlob(70_000);
    const digest = digestOf(data);

    const first = await startTessera({ env: { TESSERA_DATA_DIR: dataDir } });
    const listening = first.logs.find((line) => line.msg === 'listening');
    assert.match(String(listening?.backend), /embedded/);
    const client = connect(first.address);
    await client.write(uploadName(digest), data);
    client.close();
    assert.equal(await first.stop(), 0);

    const second = await startTessera({ env: { TESSERA_DATA_DIR: dataDir } });
    const again = connect(second.address);
    try {
      assert.ok((await again.read(blobName(digest))).data.equals(data));
    } finally {
      again.close();
      assert.equal(await second.stop(), 0);
    }
  });

  it('exits with a message naming the setting, its source, the value and the limit', () => {
    const result = runTessera(['serve', '--s3-part-size-bytes', '1000', '--data-dir', dataDir]);
    assert.equal(result.status, 2);
    assert.match(result.stderr, /s3PartSizeBytes \(--s3-part-size-bytes\) = "1000"/);
    assert.match(result.stderr, /5242880/);
  });

  it('names the environment variable a bad value came from', () => {
    const result = runTessera(['serve'], { TESSERA_LISTEN: 'nowhere', TESSERA_DATA_DIR: dataDir });
    assert.equal(result.status, 2);
    assert.match(result.stderr, /listen \(TESSERA_LISTEN\) = "nowhere"/);
    assert.match(result.stderr, /HOST:PORT/);
  });

  it('refuses half an S3 configuration instead of starting in the wrong mode', () => {
    const result = runTessera(['serve'], { TESSERA_S3_BUCKET: 'cache', TESSERA_DATA_DIR: dataDir });
    assert.equal(result.status, 2);
    assert.match(result.stderr, /TESSERA_REDIS_URL/);
  });

  it('rejects an unknown flag and an unknown command', () => {
    const flag = runTessera(['serve', '--no-such-thing', '1']);
    assert.equal(flag.status, 2);
    assert.match(flag.stderr, /--no-such-thing/);
    const command = runTessera(['frobnicate']);
    assert.equal(command.status, 2);
    assert.match(command.stderr, /frobnicate/);
  });
});
