// `tessera upload | download | cat` as a script runs them: the real command as a child process
// against a real server process, judged by stdout, stderr, exit codes and the files on disk.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import {
  chmod,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TESSERA_ENTRY, runTessera as tessera } from '../support/cli.ts';
import { randomBlob, sha256 } from '../support/client.ts';
import { startTessera, type TesseraProcess } from '../support/tessera.ts';

const DIGEST_RE = /^[0-9a-f]{64}\/\d+$/;
/** Small enough that the fixture needs several batches and streams some mid-sized files. */
const BATCH_LIMIT_BYTES = 64 * 1024;

/** Deterministic bytes; randomBlob types its seed as a UUID, but any text seeds it. */
function seeded(size: number, name: string): Buffer {
  return randomBlob(size, `${name}-0-0-0-0`);
}

/** Builds the fixture: every kind of entry the protocol can carry. */
async function makeTree(root: string): Promise<{ big: Buffer }> {
  await mkdir(join(root, 'a', 'b', 'c'), { recursive: true });
  await mkdir(join(root, 'empty-dir'));
  await mkdir(join(root, 'bin'));
  await mkdir(join(root, 'many'));
  await writeFile(join(root, 'a', 'b', 'c', 'deep.txt'), 'deep\n');
  await writeFile(join(root, 'a', 'b', 'file.txt'), 'linked to\n');
  await writeFile(join(root, 'empty.txt'), '');
  await writeFile(join(root, 'bin', 'run.sh'), '#!/bin/sh\necho hello\n', { mode: 0o755 });
  await chmod(join(root, 'bin', 'run.sh'), 0o755);
  await symlink('a/b/file.txt', join(root, 'link-relative'));
  await symlink('/nonexistent/absolute/target', join(root, 'link-absolute'));
  await symlink('../a', join(root, 'bin', 'link-to-dir'));
  const big = seeded(2 * 1024 * 1024 + 123_457, 'big');
  await writeFile(join(root, 'big.bin'), big);
  // The same content again, executable: fetched once, written twice with different modes.
  await writeFile(join(root, 'bin', 'big-copy'), big, { mode: 0o755 });
  await chmod(join(root, 'bin', 'big-copy'), 0o755);
  await writeFile(join(root, 'medium.bin'), seeded(200_000, 'medium'));
  for (let i = 0; i < 400; i += 1) {
    // Every tenth file repeats another's content.
    const content = i % 10 === 0 ? 'same\n' : seeded(17 * i, `small-${i}`);
    await writeFile(join(root, 'many', `f${String(i).padStart(3, '0')}`), content);
  }
  return { big };
}

/** Every entry under `root`: type, symlink target, executable bit and content hash. */
async function describeTree(root: string, at = ''): Promise<Map<string, string>> {
  const entries = new Map<string, string>();
  for (const name of (await readdir(join(root, at))).sort()) {
    const path = join(at, name);
    const stats = await lstat(join(root, path));
    if (stats.isSymbolicLink()) {
      entries.set(path, `symlink -> ${await readlink(join(root, path))}`);
    } else if (stats.isDirectory()) {
      entries.set(path, 'directory');
      for (const [child, text] of await describeTree(root, path)) entries.set(child, text);
    } else {
      const executable = (stats.mode & 0o100) !== 0 ? 'executable' : 'plain';
      entries.set(path, `${executable} file ${sha256(await readFile(join(root, path)))}`);
    }
  }
  return entries;
}

async function closedPort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  await once(server, 'close');
  assert.ok(address !== null && typeof address === 'object');
  return address.port;
}

describe('tessera upload, download and cat', () => {
  let work: string;
  let server: TesseraProcess;
  let env: Record<string, string>;
  let tree: string;
  let big: Buffer;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'tessera-client-'));
    server = await startTessera({
      env: { TESSERA_DATA_DIR: join(work, 'data') },
      args: ['--max-batch-total-size-bytes', String(BATCH_LIMIT_BYTES)],
    });
    env = { TESSERA_SERVER: server.address };
    tree = join(work, 'tree');
    ({ big } = await makeTree(tree));
  });
  after(async () => {
    await server?.stop();
    await rm(work, { recursive: true, force: true });
  });

  it('uploads a tree, prints its root digest, and downloads an identical tree', async () => {
    const first = await tessera(['upload', '--json', tree], env);
    assert.equal(first.stderr, '', 'no progress or messages when stderr is a pipe');
    assert.equal(first.status, 0);
    const summary = JSON.parse(first.stdout.toString('utf8')) as Record<string, unknown>;
    assert.match(String(summary.digest), DIGEST_RE);
    assert.equal(summary.kind, 'directory');
    // 366 distinct non-empty files and 6 non-empty directories; the empty blob is never missing.
    assert.equal(summary.missing, 372);
    assert.equal(summary.blobs, 374);
    assert.equal(summary.uploaded, summary.missing);

    const plain = await tessera(['upload', tree], env);
    assert.equal(plain.status, 0);
    assert.equal(plain.stdout.toString('utf8'), `${summary.digest}\n`);

    const out = join(work, 'out', 'fresh');
    const download = await tessera(['download', String(summary.digest), out], env);
    assert.equal(download.stderr, '');
    assert.equal(download.status, 0);
    assert.deepEqual(await describeTree(out), await describeTree(tree));
  });

  it('sends nothing the second time the same tree is uploaded', async () => {
    await tessera(['upload', tree], env);
    const again = await tessera(['upload', '--json', tree], env);
    assert.equal(again.status, 0);
    const summary = JSON.parse(again.stdout.toString('utf8')) as Record<string, unknown>;
    assert.equal(summary.missing, 0);
    assert.equal(summary.uploaded, 0);
    assert.equal(summary.uploadedBytes, 0);
    assert.equal(summary.blobs, 374);
  });

  it('prints "digest  path" per path; a file digest is the hash of its bytes', async () => {
    const file = join(tree, 'big.bin');
    const run = await tessera(['upload', file, join(tree, 'a')], env);
    assert.equal(run.status, 0);
    const lines = run.stdout.toString('utf8').trimEnd().split('\n');
    assert.equal(lines.length, 2);
    assert.equal(lines[0], `${sha256(big)}/${big.length}  ${file}`);
    assert.match(lines[1] ?? '', new RegExp(`^[0-9a-f]{64}/\\d+  ${join(tree, 'a')}$`));
  });

  it('cat writes exactly the blob to stdout', async () => {
    const run = await tessera(['cat', `${sha256(big)}/${big.length}`], env);
    assert.equal(run.stderr, '');
    assert.equal(run.status, 0);
    assert.ok(run.stdout.equals(big), `cat returned ${run.stdout.length} bytes`);
  });

  it('exits 1 naming the digest and NOT_FOUND for a blob the server does not have', async () => {
    const unknown = `${sha256('never uploaded')}/14`;
    const cat = await tessera(['cat', unknown], env);
    assert.equal(cat.status, 1);
    assert.match(cat.stderr, new RegExp(`${unknown}.*NOT_FOUND`));
    const download = await tessera(['download', unknown, join(work, 'never')], env);
    assert.equal(download.status, 1);
    assert.match(download.stderr, /NOT_FOUND/);
    await assert.rejects(lstat(join(work, 'never')), 'a failed download creates no directory');
  });

  it('exits 2 for a malformed digest, an unknown flag and a non-empty DIR', async () => {
    for (const bad of ['abc/12', 'nothex/1', `${sha256('x')}`, `${sha256('x')}/-1`]) {
      const run = await tessera(['cat', bad], env);
      assert.equal(run.status, 2, `cat ${bad}: ${run.stderr}`);
      assert.match(run.stderr, /digest/);
    }
    const flag = await tessera(['upload', '--no-such-flag', tree], env);
    assert.equal(flag.status, 2);
    assert.match(flag.stderr, /--no-such-flag/);

    const occupied = join(work, 'occupied');
    await mkdir(occupied);
    await writeFile(join(occupied, 'keep.txt'), 'mine');
    const digest = (await tessera(['upload', tree], env)).stdout.toString('utf8').trim();
    const run = await tessera(['download', digest, occupied], env);
    assert.equal(run.status, 2);
    assert.match(run.stderr, /occupied is not empty/);
    assert.deepEqual(await readdir(occupied), ['keep.txt']);
  });

  it('exits 3 when no server listens at the address', async () => {
    const address = `127.0.0.1:${await closedPort()}`;
    const run = await tessera(['upload', '--server', address, tree], env);
    assert.equal(run.status, 3);
    assert.match(run.stderr, new RegExp(`server ${address} is unreachable`));
    const cat = await tessera(['cat', `${sha256(big)}/${big.length}`], { TESSERA_SERVER: address });
    assert.equal(cat.status, 3);
  });

  it('never exits cleanly when the bytes served do not match the digest', async () => {
    const data = seeded(5_000, 'to be corrupted');
    const file = join(work, 'victim.bin');
    await writeFile(file, data);
    const digest = (await tessera(['upload', file], env)).stdout.toString('utf8').trim();
    const hash = sha256(data);
    // Damage the stored copy behind the server's back (embedded layout, docs/ARCHITECTURE.md).
    const stored = join(work, 'data', 'cas', 'sha256', hash.slice(0, 2), hash);
    await chmod(stored, 0o644);
    await writeFile(stored, seeded(5_000, 'something else'));

    const run = await tessera(['cat', digest], env);
    assert.equal(run.status, 1);
    assert.match(run.stderr, new RegExp(`${digest}.*digest mismatch`));
  });

  it('draws progress on stderr when it is a terminal', { skip: !hasScript() }, async () => {
    const command = [process.execPath, TESSERA_ENTRY, 'upload', tree].map(quote).join(' ');
    const child = spawn('script', ['-qec', command, '/dev/null'], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const output: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => output.push(chunk));
    const [status] = (await once(child, 'close')) as [number | null];
    assert.equal(status, 0);
    assert.match(Buffer.concat(output).toString('utf8'), /\d+\/\d+ blobs, .*B\/.*B/);
  });
});

function hasScript(): boolean {
  return spawnSync('script', ['--version'], { stdio: 'ignore' }).status === 0;
}

function quote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}
