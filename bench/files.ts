// Bench input files. Bytes are generated straight to disk one block at a time, so a multi-GiB
// blob is never held in memory, and hashed on the way. Every upload to Tessera must be a blob it
// has not seen (an already committed blob ends the Write at once), so one file on disk is
// re-stamped before each measurement: its first bytes change and its digest is recomputed, outside
// the timed part. The baseline uploads the same stamped file.
import { createHash, randomFillSync } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';

/** Size of each generated block and of each read from disk. */
export const BLOCK_BYTES = 1024 * 1024;

export interface BenchFile {
  readonly path: string;
  readonly size: number;
  /** Lower-case hex sha256 of the file as it is now. */
  readonly sha256: string;
}

/** Writes `size` random bytes to a new file at `path`. */
export async function generateFile(path: string, size: number): Promise<BenchFile> {
  const hash = createHash('sha256');
  const block = Buffer.allocUnsafe(BLOCK_BYTES);
  const handle = await open(path, 'wx', 0o600);
  try {
    for (let at = 0; at < size; at += BLOCK_BYTES) {
      const piece = block.subarray(0, Math.min(BLOCK_BYTES, size - at));
      randomFillSync(piece);
      hash.update(piece);
      await handle.write(piece, 0, piece.length, at);
    }
  } finally {
    await handle.close();
  }
  return { path, size, sha256: hash.digest('hex') };
}

/** Overwrites the first 32 bytes with a hash of `tag`, so the file becomes a new blob. */
export async function restamp(file: BenchFile, tag: string): Promise<BenchFile> {
  const stamp = createHash('sha256').update(tag).digest();
  if (file.size < stamp.length) {
    throw new Error(
      `file ${file.path} has ${file.size} bytes, fewer than the ${stamp.length} stamp`,
    );
  }
  const handle = await open(file.path, 'r+');
  try {
    await handle.write(stamp, 0, stamp.length, 0);
  } finally {
    await handle.close();
  }
  return { ...file, sha256: await hashFile(file.path) };
}

export async function hashFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  const source = createReadStream(path, { highWaterMark: BLOCK_BYTES });
  for await (const chunk of source as AsyncIterable<Buffer>) hash.update(chunk);
  return hash.digest('hex');
}
