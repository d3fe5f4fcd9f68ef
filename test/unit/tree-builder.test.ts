// The tree builder's Directory messages are canonical: the same tree gives the same bytes and the
// same root digest whatever order entries are listed, created or hashed in.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Digest, digestKey, emptyDigest } from '../../src/cas/digest.ts';
import {
  buildTree,
  compareNames,
  encodeDirectory,
  hashFile,
} from '../../src/client/tree-builder.ts';
import type { Directory } from '../../src/grpc/messages.ts';
import { decodeMessage } from '../../src/grpc/proto.ts';

const DIRECTORY_TYPE = 'build.bazel.remote.execution.v2.Directory';

function sha256Digest(data: string | Buffer): Digest {
  const bytes = Buffer.from(data);
  return {
    fn: 'SHA256',
    hash: createHash('sha256').update(bytes).digest('hex'),
    size: bytes.length,
  };
}

function fromWire(wire: { hash: string; sizeBytes: number } | null | undefined): Digest {
  assert.ok(wire, 'every node has a digest');
  return { fn: 'SHA256', hash: wire.hash, size: wire.sizeBytes };
}

/** Writes the same tree, creating entries in the order given. */
async function writeTree(root: string, order: 'forward' | 'reverse'): Promise<void> {
  const steps: Array<() => Promise<unknown>> = [
    () => mkdir(join(root, 'src', 'nested'), { recursive: true }),
    () => mkdir(join(root, 'empty'), { recursive: true }),
    () => writeFile(join(root, 'README'), 'read me\n'),
    () => writeFile(join(root, 'zero'), ''),
    () => writeFile(join(root, 'B-upper'), 'B\n'),
    () => writeFile(join(root, 'a-lower'), 'a\n'),
    () => symlink('README', join(root, 'relative-link')),
    () => symlink('/usr/bin/env', join(root, 'absolute-link')),
  ];
  const nested: Array<() => Promise<unknown>> = [
    () => writeFile(join(root, 'src', 'tool'), '#!/bin/sh\n', { mode: 0o755 }),
    () => chmod(join(root, 'src', 'tool'), 0o755),
    () => writeFile(join(root, 'src', 'nested', 'same-as-a'), 'a\n'),
  ];
  await mkdir(root, { recursive: true });
  for (const step of order === 'forward' ? steps : [...steps].reverse()) await step();
  for (const step of nested) await step();
}

describe('encodeDirectory', () => {
  const file = (name: string) => ({ name, digest: sha256Digest(name), isExecutable: false });

  it('gives the same bytes whatever order the entries come in', () => {
    const names = ['b', 'a', 'C', 'a.b', 'a-b', 'ä', 'z'];
    const forward = encodeDirectory({ files: names.map(file), directories: [], symlinks: [] });
    const backward = encodeDirectory({
      files: [...names].reverse().map(file),
      directories: [],
      symlinks: [],
    });
    assert.ok(forward.equals(backward));
  });

  it('sorts by UTF-8 bytes, not by UTF-16 code units', () => {
    // U+FF61 sorts after U+1F600 in UTF-16 (0xFF61 > 0xD83D) but before it in UTF-8.
    const names = ['\u{1F600}', '\uFF61', 'Z', 'a'];
    const bytes = encodeDirectory({ files: names.map(file), directories: [], symlinks: [] });
    const decoded = decodeMessage<Directory>(DIRECTORY_TYPE, bytes);
    assert.deepEqual(
      decoded.files.map((f) => f.name),
      ['Z', 'a', '\uFF61', '\u{1F600}'],
    );
    assert.ok(compareNames('\uFF61', '\u{1F600}') < 0);
  });

  it('encodes an empty directory as the empty blob', () => {
    assert.equal(encodeDirectory({ files: [], directories: [], symlinks: [] }).length, 0);
  });
});

describe('buildTree', () => {
  let work: string;
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'tessera-tree-'));
    await writeTree(join(work, 'one'), 'forward');
    await writeTree(join(work, 'two'), 'reverse');
  });
  after(() => rm(work, { recursive: true, force: true }));

  it('gives the same root digest across runs, creation orders and parallelism', async () => {
    const first = await buildTree(join(work, 'one'), 'SHA256', { jobs: 1 });
    const again = await buildTree(join(work, 'one'), 'SHA256', { jobs: 16 });
    const other = await buildTree(join(work, 'two'), 'SHA256');
    assert.deepEqual(again.root, first.root);
    assert.deepEqual(other.root, first.root);
  });

  it('records files, executables, symlinks and empty entries, sorted', async () => {
    const tree = await buildTree(join(work, 'one'), 'SHA256');
    const byKey = new Map(tree.directories.map((d) => [digestKey(d.digest), d.data]));
    const read = (digest: Digest): Directory => {
      const data = byKey.get(digestKey(digest));
      assert.ok(data !== undefined, 'every referenced Directory is in the tree');
      return decodeMessage<Directory>(DIRECTORY_TYPE, data);
    };
    const root = read(tree.root);

    assert.deepEqual(
      root.files.map((f) => [f.name, f.digest?.hash, f.isExecutable]),
      [
        ['B-upper', sha256Digest('B\n').hash, false],
        ['README', sha256Digest('read me\n').hash, false],
        ['a-lower', sha256Digest('a\n').hash, false],
        ['zero', emptyDigest('SHA256').hash, false],
      ],
    );
    assert.deepEqual(
      root.symlinks.map((s) => [s.name, s.target]),
      [
        ['absolute-link', '/usr/bin/env'],
        ['relative-link', 'README'],
      ],
    );
    assert.deepEqual(
      root.directories.map((d) => d.name),
      ['empty', 'src'],
    );
    assert.equal(root.directories[0]?.digest?.hash, emptyDigest('SHA256').hash);

    const src = read(fromWire(root.directories[1]?.digest));
    assert.deepEqual(
      src.files.map((f) => [f.name, f.isExecutable]),
      [['tool', true]],
    );
    assert.deepEqual(
      src.directories.map((d) => d.name),
      ['nested'],
    );
  });

  it('lists each distinct blob once, every Directory after its subdirectories', async () => {
    const tree = await buildTree(join(work, 'one'), 'SHA256');
    // "a\n" appears twice and "" once among six files: five distinct contents.
    assert.equal(tree.files.length, 5);
    assert.equal(tree.counts.files, 6);
    assert.equal(tree.counts.symlinks, 2);
    assert.equal(tree.counts.directories, 4);
    assert.deepEqual(tree.directories.at(-1)?.digest, tree.root);

    const position = new Map(tree.directories.map((d, i) => [digestKey(d.digest), i]));
    for (const [i, directory] of tree.directories.entries()) {
      const decoded = decodeMessage<Directory>(DIRECTORY_TYPE, directory.data);
      for (const child of decoded.directories) {
        const at = position.get(digestKey(fromWire(child.digest))) ?? Infinity;
        assert.ok(at < i, `${child.name} comes before its parent`);
      }
    }
  });

  it('changes the root digest when only an executable bit or a link target changes', async () => {
    const base = join(work, 'change');
    await writeTree(base, 'forward');
    const before = (await buildTree(base, 'SHA256')).root;
    await chmod(join(base, 'README'), 0o755);
    const executable = (await buildTree(base, 'SHA256')).root;
    assert.notDeepEqual(executable, before);
    await chmod(join(base, 'README'), 0o644);
    assert.deepEqual((await buildTree(base, 'SHA256')).root, before);
    await rm(join(base, 'relative-link'));
    await symlink('./README', join(base, 'relative-link'));
    assert.notDeepEqual((await buildTree(base, 'SHA256')).root, before);
  });

  it('hashes files with the requested function', async () => {
    const path = join(work, 'one', 'README');
    assert.deepEqual(await hashFile(path, 'SHA256'), sha256Digest('read me\n'));
    const sha1 = createHash('sha1').update('read me\n').digest('hex');
    assert.deepEqual(await hashFile(path, 'SHA1'), { fn: 'SHA1', hash: sha1, size: 8 });
  });

  it('refuses a special file, naming its path', { skip: !hasMkfifo() }, async () => {
    const base = join(work, 'with-fifo');
    await mkdir(base);
    spawnSync('mkfifo', [join(base, 'pipe')]);
    await assert.rejects(buildTree(base, 'SHA256'), /with-fifo\/pipe is a fifo/);
  });
});

function hasMkfifo(): boolean {
  return spawnSync('mkfifo', ['--version'], { stdio: 'ignore' }).status === 0;
}
