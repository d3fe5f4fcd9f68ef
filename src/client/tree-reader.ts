// Fetches every Directory message under a root, level by level, each blob verified against its
// digest before it is decoded, and checks that its names are safe to create on disk.
//
// Directory blobs are read by digest (BatchReadBlobs, ByteStream for the rare large one) rather
// than with GetTree: GetTree returns messages without their digests, so a client could match
// them to the DirectoryNodes that name them only by re-encoding them, and could not verify them.
import { type Digest, digestKey, isEmptyDigest, toDigest } from '../cas/digest.ts';
import type { Directory } from '../grpc/messages.ts';
import { decodeMessage } from '../grpc/proto.ts';
import { planBatches } from './batching.ts';
import type { BlobData, Connection } from './connection.ts';
import { failure, toClientError } from './errors.ts';
import { createPool, settle } from './pool.ts';
import { readBlobBytes } from './reader.ts';

const DIRECTORY_TYPE = 'build.bazel.remote.execution.v2.Directory';
const DEFAULT_JOBS = 8;
const EMPTY_DIRECTORY: Directory = {
  files: [],
  directories: [],
  symlinks: [],
  nodeProperties: null,
};

/** Directory messages by digestKey, the root's included. */
export type DirectoryMap = ReadonlyMap<string, Directory>;

export async function fetchTree(
  connection: Connection,
  root: Digest,
  options: { jobs?: number } = {},
): Promise<DirectoryMap> {
  const pool = createPool(options.jobs ?? DEFAULT_JOBS);
  const directories = new Map<string, Directory>();
  let level: Digest[] = [root];
  while (level.length > 0) {
    const wanted = new Map<string, Digest>();
    for (const digest of level) {
      const key = digestKey(digest);
      if (directories.has(key)) continue;
      if (isEmptyDigest(digest)) directories.set(key, EMPTY_DIRECTORY);
      else wanted.set(key, digest);
    }

    const { batches, streams } = planBatches(
      [...wanted.values()].map((digest) => ({ digest })),
      connection.maxBatchBytes,
    );
    const read = await settle([
      ...batches.map((batch) => pool.run(() => readBatch(connection, batch))),
      ...streams.map(({ digest }) =>
        pool.run(async () => [{ digest, data: await readBlobBytes(connection, digest) }]),
      ),
    ]);

    level = [];
    for (const { digest, data } of read.flat()) {
      const directory = decodeDirectory(digest, data);
      directories.set(digestKey(digest), directory);
      for (const child of directory.directories) {
        level.push(toDigest(root.fn, child.digest?.hash, child.digest?.sizeBytes));
      }
    }
  }
  return directories;
}

async function readBatch(
  connection: Connection,
  batch: readonly { digest: Digest }[],
): Promise<BlobData[]> {
  try {
    return await connection.batchRead(batch.map((item) => item.digest));
  } catch (error) {
    throw toClientError(error, `reading a batch of ${batch.length} directories`);
  }
}

function decodeDirectory(digest: Digest, data: Buffer): Directory {
  const name = `${digest.hash}/${digest.size}`;
  let directory: Directory;
  try {
    directory = decodeMessage<Directory>(DIRECTORY_TYPE, data);
  } catch (error) {
    throw failure(`blob ${name} is not a Directory message`, error);
  }

  const seen = new Set<string>();
  const entries = [
    ...directory.files.map((node) => ({ name: node.name, digest: node.digest, kind: 'file' })),
    ...directory.directories.map((node) => ({ ...node, kind: 'directory' })),
    ...directory.symlinks.map((node) => ({ name: node.name, digest: undefined, kind: 'symlink' })),
  ];
  for (const entry of entries) {
    if (!isSafeName(entry.name)) {
      throw failure(`directory ${name} has an entry named "${entry.name}", which is not a name`);
    }
    if (seen.has(entry.name)) {
      throw failure(`directory ${name} has two entries named "${entry.name}"`);
    }
    seen.add(entry.name);
    if (entry.kind !== 'symlink') {
      try {
        toDigest(digest.fn, entry.digest?.hash, entry.digest?.sizeBytes);
      } catch (error) {
        throw failure(
          `directory ${name} has ${entry.kind} "${entry.name}" with a bad digest`,
          error,
        );
      }
    }
  }
  return directory;
}

/** One path segment: not empty, not `.` or `..`, no `/` and no NUL. */
export function isSafeName(name: string): boolean {
  return name !== '' && name !== '.' && name !== '..' && !/[/\0]/.test(name);
}
