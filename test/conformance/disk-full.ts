// A staging disk that really fills up: the embedded data directory on an 8 MiB tmpfs. A write
// that hits ENOSPC must end with RESOURCE_EXHAUSTED, leave no staging file behind, and the server
// must go on serving uploads that fit. Mounting needs privileges; without them the case is skipped
// (the accounting limit, staging_max_bytes, is tested in limits-suite.ts either way).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { status } from '@grpc/grpc-js';
import { codeOf, connect, digestOf, randomBlob, uploadName } from '../support/client.ts';
import type { ServerFactory } from './harness.ts';

const run = promisify(execFile);
const MIB = 1024 * 1024;

/** Mounts an 8 MiB tmpfs; undefined with the reason when this process may not mount. */
async function mountSmallDisk(): Promise<{ dir: string } | { refused: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-small-disk-'));
  try {
    await run('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', dir]);
    return { dir };
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    return { refused: (error as Error).message.split('\n')[0] ?? 'mount failed' };
  }
}

export function describeDiskFull(start: ServerFactory): void {
  describe('a full staging disk', () => {
    it('answers RESOURCE_EXHAUSTED on ENOSPC and keeps serving', async (t) => {
      const disk = await mountSmallDisk();
      if ('refused' in disk) {
        t.skip(`cannot mount a tmpfs to fill (needs root or CAP_SYS_ADMIN): ${disk.refused}`);
        return;
      }
      const dataDir = join(disk.dir, 'data');
      const server = await start({ TESSERA_DATA_DIR: dataDir });
      const client = connect(server.address);
      try {
        const big = randomBlob(12 * MIB);
        await assert.rejects(
          client.write(uploadName(digestOf(big)), big, { chunkBytes: MIB }),
          (error: Error) => {
            assert.equal(codeOf(error), status.RESOURCE_EXHAUSTED, error.message);
            assert.match(error.message, /disk is full/);
            return true;
          },
        );
        assert.deepEqual(await readdir(join(dataDir, 'staging')), []);
        const small = randomBlob(MIB);
        assert.equal(await client.write(uploadName(digestOf(small)), small), small.length);
      } finally {
        client.close();
        await server.stop();
        await run('umount', [disk.dir]);
        await rm(disk.dir, { recursive: true, force: true });
      }
    });
  });
}
