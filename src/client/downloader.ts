// Materialises a tree from its root Directory digest into an empty local directory: directories
// first, then symlinks (targets verbatim), then files — each distinct blob fetched once, verified
// before or as it is written, and copied to every other path that holds the same content.
// Executable files get mode 0755 and others 0644, both narrowed by the process umask.
//
// Files are created with O_EXCL, so nothing is written through a symlink, and names come from
// tree-reader's checks, so nothing lands outside the target directory. After a failure the
// directory holds part of the tree; a blob whose digest did not match is removed.
//
// LIMITATION: the tree is laid out in memory, one entry per path — a tree in which one directory
// is reachable along very many paths costs memory per path, not per distinct directory.
import { createReadStream, createWriteStream } from 'node:fs';
import { type FileHandle, mkdir, open, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { type Digest, digestKey, isEmptyDigest, toDigest } from '../cas/digest.ts';
import type { Directory } from '../grpc/messages.ts';
import { planBatches } from './batching.ts';
import type { Connection } from './connection.ts';
import { failure, toClientError, usageError } from './errors.ts';
import { createPool, settle } from './pool.ts';
import { NO_PROGRESS, type Progress } from './progress.ts';
import { readBlob } from './reader.ts';
import { type DirectoryMap, fetchTree } from './tree-reader.ts';
import type { TransferOptions } from './uploader.ts';

const DEFAULT_JOBS = 8;

export interface DownloadSummary {
  readonly directories: number;
  readonly files: number;
  readonly symlinks: number;
  /** Distinct file blobs fetched (the empty blob is never fetched). */
  readonly blobs: number;
  readonly bytes: number;
}

interface Target {
  readonly path: string;
  readonly executable: boolean;
}

interface FileWork {
  readonly digest: Digest;
  readonly targets: Target[];
}

interface Layout {
  readonly directories: string[];
  readonly symlinks: { path: string; target: string }[];
  readonly files: Map<string, FileWork>;
  fileCount: number;
}

export async function downloadTree(
  connection: Connection,
  root: Digest,
  dir: string,
  options: TransferOptions = {},
): Promise<DownloadSummary> {
  const progress = options.progress ?? NO_PROGRESS;
  const exists = await checkTarget(dir);

  // Fetched before DIR is created, so a missing or broken root leaves nothing behind.
  const tree = await fetchTree(connection, root, options);
  if (!exists) await mkdir(dir, { recursive: true });
  const layout: Layout = { directories: [], symlinks: [], files: new Map(), fileCount: 0 };
  lay(tree, root, dir, layout);

  for (const path of layout.directories) await mkdir(path);
  for (const link of layout.symlinks) await symlink(link.target, link.path);

  const work = [...layout.files.values()];
  const empty = work.filter((item) => isEmptyDigest(item.digest));
  const blobs = work.filter((item) => !isEmptyDigest(item.digest));
  const bytes = blobs.reduce((sum, item) => sum + item.digest.size, 0);
  progress.addTotal(blobs.length, bytes);

  for (const item of empty) {
    for (const target of item.targets) await writeFile(target.path, '', fileOptions(target));
  }
  const pool = createPool(options.jobs ?? DEFAULT_JOBS);
  const { batches, streams } = planBatches(blobs, connection.maxBatchBytes);
  await settle([
    ...batches.map((batch) => pool.run(() => fetchBatch(connection, batch, progress))),
    ...streams.map((item) => pool.run(() => fetchStream(connection, item, progress))),
  ]);
  return {
    directories: layout.directories.length + 1,
    files: layout.fileCount,
    symlinks: layout.symlinks.length,
    blobs: blobs.length,
    bytes,
  };
}

/**
 * Whether `dir` exists; throws a usage error when it is not an empty directory. Callers check
 * before they contact a server, so a bad target is reported as such and not as a server error.
 */
export async function checkTarget(dir: string): Promise<boolean> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return false;
    if (code === 'ENOTDIR') throw usageError(`${dir} exists and is not a directory`);
    throw toClientError(error, `listing ${dir}`);
  }
  if (entries.length > 0) {
    throw usageError(
      `directory ${dir} is not empty (${entries.length} entries); download into a new or empty one`,
    );
  }
  return true;
}

function lay(tree: DirectoryMap, digest: Digest, path: string, layout: Layout): void {
  const directory = tree.get(digestKey(digest)) as Directory;
  for (const node of directory.files) {
    const fileDigest = toDigest(digest.fn, node.digest?.hash, node.digest?.sizeBytes);
    const key = digestKey(fileDigest);
    const work = layout.files.get(key) ?? { digest: fileDigest, targets: [] };
    work.targets.push({ path: join(path, node.name), executable: node.isExecutable });
    layout.files.set(key, work);
    layout.fileCount += 1;
  }
  for (const node of directory.symlinks) {
    layout.symlinks.push({ path: join(path, node.name), target: node.target });
  }
  for (const node of directory.directories) {
    const child = join(path, node.name);
    layout.directories.push(child);
    const childDigest = toDigest(digest.fn, node.digest?.hash, node.digest?.sizeBytes);
    if (!tree.has(digestKey(childDigest))) {
      throw failure(`directory ${childDigest.hash}/${childDigest.size} was not fetched`);
    }
    lay(tree, childDigest, child, layout);
  }
}

async function fetchBatch(
  connection: Connection,
  batch: readonly FileWork[],
  progress: Progress,
): Promise<void> {
  let blobs: Awaited<ReturnType<Connection['batchRead']>>;
  try {
    blobs = await connection.batchRead(batch.map((item) => item.digest));
  } catch (error) {
    throw toClientError(error, `reading a batch of ${batch.length} blobs`);
  }
  const byKey = new Map(blobs.map((blob) => [digestKey(blob.digest), blob.data]));
  for (const item of batch) {
    const data = byKey.get(digestKey(item.digest));
    if (data === undefined) {
      throw failure(`server did not return blob ${item.digest.hash}/${item.digest.size}`);
    }
    for (const target of item.targets) await writeFile(target.path, data, fileOptions(target));
    progress.addBytes(data.length);
    progress.addBlobs(1);
  }
}

async function fetchStream(
  connection: Connection,
  item: FileWork,
  progress: Progress,
): Promise<void> {
  const [first, ...copies] = item.targets as [Target, ...Target[]];
  const handle = await open(first.path, 'wx', modeOf(first));
  try {
    await readBlob(connection, item.digest, async (chunk) => {
      await writeAll(handle, chunk);
      progress.addBytes(chunk.length);
    });
  } catch (error) {
    await handle.close();
    await rm(first.path, { force: true });
    throw error;
  }
  await handle.close();

  for (const copy of copies) {
    await pipeline(
      createReadStream(first.path),
      createWriteStream(copy.path, { flags: 'wx', mode: modeOf(copy) }),
    );
  }
  progress.addBlobs(1);
}

async function writeAll(handle: FileHandle, chunk: Buffer): Promise<void> {
  let at = 0;
  while (at < chunk.length) {
    const { bytesWritten } = await handle.write(chunk, at, chunk.length - at);
    at += bytesWritten;
  }
}

function modeOf(target: Target): number {
  return target.executable ? 0o755 : 0o644;
}

/** O_EXCL: never write through something already at the path. */
function fileOptions(target: Target): { flag: 'wx'; mode: number } {
  return { flag: 'wx', mode: modeOf(target) };
}
