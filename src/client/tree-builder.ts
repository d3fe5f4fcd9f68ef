// Builds the REAPI Merkle tree of a local directory: one `Directory` message per directory, bottom
// up, each naming its files (digest, executable bit), subdirectories (digest of their message)
// and symlinks (target exactly as stored on disk, relative or absolute). Empty files and empty
// directories are kept; an empty directory's message is the empty blob.
//
// The messages are canonical, so the same tree always has the same root digest: every list is
// sorted by name in UTF-8 byte order, node properties (mtime, mode) are left out, and protobufjs
// writes fields in field-number order.
//
// Names travel as protobuf strings, which must be UTF-8: an entry whose name is not valid UTF-8
// stops the walk with an error naming it.
import { createReadStream, type Stats } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import {
  createHasher,
  type Digest,
  type DigestFunction,
  digestKey,
  hashBytes,
  toWireDigest,
} from '../cas/digest.ts';
import { encodeMessage } from '../grpc/proto.ts';
import { STREAM_CHUNK_BYTES } from './connection.ts';
import { failure } from './errors.ts';
import { createPool, type Pool, settle } from './pool.ts';

const DIRECTORY_TYPE = 'build.bazel.remote.execution.v2.Directory';
const DEFAULT_JOBS = 8;

export interface FileEntry {
  readonly name: string;
  readonly digest: Digest;
  readonly isExecutable: boolean;
}

export interface DirectoryEntry {
  readonly name: string;
  readonly digest: Digest;
}

export interface SymlinkEntry {
  readonly name: string;
  readonly target: string;
}

export interface DirectoryContents {
  readonly files: readonly FileEntry[];
  readonly directories: readonly DirectoryEntry[];
  readonly symlinks: readonly SymlinkEntry[];
}

/** A blob whose bytes are a file on disk. */
export interface FileBlob {
  readonly digest: Digest;
  readonly path: string;
}

/** An encoded Directory message. */
export interface DirectoryBlob {
  readonly digest: Digest;
  readonly data: Buffer;
}

export interface BuiltTree {
  readonly root: Digest;
  /** Distinct file contents, each with one path it can be read from. */
  readonly files: readonly FileBlob[];
  /** Distinct Directory messages, every one after the messages of its subdirectories. */
  readonly directories: readonly DirectoryBlob[];
  /** Entries seen in the walk, duplicates included. */
  readonly counts: { files: number; directories: number; symlinks: number };
}

export interface BuildOptions {
  /** File-system operations (hashes, listings) in flight at once. */
  readonly jobs?: number;
}

/** Sorts names the way the protocol's canonical form wants: by their UTF-8 bytes. */
export function compareNames(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** The canonical encoding of a Directory with these entries, in any order. */
export function encodeDirectory(contents: DirectoryContents): Buffer {
  const byName = <T extends { name: string }>(list: readonly T[]) =>
    [...list].sort((a, b) => compareNames(a.name, b.name));
  return encodeMessage(DIRECTORY_TYPE, {
    files: byName(contents.files).map((f) => ({
      name: f.name,
      digest: toWireDigest(f.digest),
      isExecutable: f.isExecutable,
    })),
    directories: byName(contents.directories).map((d) => ({
      name: d.name,
      digest: toWireDigest(d.digest),
    })),
    symlinks: byName(contents.symlinks).map((s) => ({ name: s.name, target: s.target })),
  });
}

/** Digest of a file's content, read from disk in chunks (never whole into memory). */
export async function hashFile(path: string, fn: DigestFunction): Promise<Digest> {
  const hasher = await createHasher(fn);
  let size = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: STREAM_CHUNK_BYTES })) {
    const bytes = chunk as Buffer;
    hasher.update(bytes);
    size += bytes.length;
  }
  return { fn, hash: hasher.digest(), size };
}

/** Walks `root` (which must be a directory) and returns its tree. */
export async function buildTree(
  root: string,
  fn: DigestFunction,
  options: BuildOptions = {},
): Promise<BuiltTree> {
  const walker = new Walker(fn, createPool(options.jobs ?? DEFAULT_JOBS));
  const digest = await walker.directory(root);
  return {
    root: digest,
    files: [...walker.files.values()],
    directories: [...walker.directories.values()],
    counts: walker.counts,
  };
}

class Walker {
  readonly files = new Map<string, FileBlob>();
  readonly directories = new Map<string, DirectoryBlob>();
  readonly counts = { files: 0, directories: 0, symlinks: 0 };
  readonly #fn: DigestFunction;
  readonly #pool: Pool;

  constructor(fn: DigestFunction, pool: Pool) {
    this.#fn = fn;
    this.#pool = pool;
  }

  async directory(path: string): Promise<Digest> {
    const names = await this.#pool.run(() => readdir(path));
    const entries = await settle(names.map((name) => this.#entry(path, name)));

    const contents = {
      files: [] as FileEntry[],
      directories: [] as DirectoryEntry[],
      symlinks: [] as SymlinkEntry[],
    };
    for (const entry of entries) {
      if ('target' in entry) contents.symlinks.push(entry);
      else if ('isExecutable' in entry) contents.files.push(entry);
      else contents.directories.push(entry);
    }
    const data = encodeDirectory(contents);
    const digest: Digest = {
      fn: this.#fn,
      hash: await hashBytes(this.#fn, data),
      size: data.length,
    };
    this.counts.directories += 1;
    if (!this.directories.has(digestKey(digest)))
      this.directories.set(digestKey(digest), { digest, data });
    return digest;
  }

  async #entry(dir: string, name: string): Promise<FileEntry | DirectoryEntry | SymlinkEntry> {
    const path = join(dir, name);
    const stats = await this.#pool
      .run(() => lstat(path))
      .catch((error: unknown) => {
        // readdir decoded undecodable bytes to U+FFFD, so the name it returned does not exist.
        if (name.includes('\uFFFD') && (error as NodeJS.ErrnoException).code === 'ENOENT') {
          throw failure(`${path}: the name is not valid UTF-8, which REAPI names must be`);
        }
        throw error;
      });
    if (stats.isSymbolicLink()) {
      this.counts.symlinks += 1;
      return { name, target: await this.#pool.run(() => readlink(path)) };
    }
    if (stats.isDirectory()) return { name, digest: await this.directory(path) };
    if (!stats.isFile()) {
      throw failure(
        `${path} is a ${kindOf(stats)}; only files, directories and symlinks can be uploaded`,
      );
    }
    const digest = await this.#pool.run(() => hashFile(path, this.#fn));
    this.counts.files += 1;
    if (!this.files.has(digestKey(digest))) this.files.set(digestKey(digest), { digest, path });
    return { name, digest, isExecutable: (stats.mode & 0o100) !== 0 };
  }
}

function kindOf(stats: Stats): string {
  if (stats.isFIFO()) return 'fifo';
  if (stats.isSocket()) return 'socket';
  if (stats.isCharacterDevice()) return 'character device';
  if (stats.isBlockDevice()) return 'block device';
  return 'special file';
}
