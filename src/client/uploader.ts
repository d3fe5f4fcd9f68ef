// Uploads blobs and directory trees. Only what the server reports missing is sent: small blobs
// packed into BatchUpdateBlobs calls under the server's batch limit, larger ones streamed from
// disk with ByteStream Write in 1 MiB messages. At most `jobs` calls run at once, and a file is
// read only when its call gets a slot, so memory stays under about jobs × the batch limit.
//
// A tree's file blobs go first and its Directory messages after them, so a server that has the
// root digest has everything under it even if the upload is interrupted.
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { type Digest, digestKey, isEmptyDigest } from '../cas/digest.ts';
import { planBatches } from './batching.ts';
import { type BlobData, type Connection, STREAM_CHUNK_BYTES, withRetries } from './connection.ts';
import { failure, toClientError } from './errors.ts';
import { createPool, settle } from './pool.ts';
import { NO_PROGRESS, type Progress } from './progress.ts';
import { buildTree, type DirectoryBlob, type FileBlob, hashFile } from './tree-builder.ts';

const DEFAULT_JOBS = 8;

/** A blob to upload: either a file on disk or bytes in memory. */
export type BlobSource = FileBlob | DirectoryBlob;

export interface TransferOptions {
  /** Calls in flight at once (default 8). */
  readonly jobs?: number;
  readonly progress?: Progress;
}

export interface UploadSummary {
  /** Distinct blobs considered, the empty blob included. */
  readonly blobs: number;
  readonly bytes: number;
  /** Blobs the server reported missing. */
  readonly missing: number;
  /** Blobs sent; equal to `missing` after a successful upload. */
  readonly uploaded: number;
  readonly uploadedBytes: number;
}

export interface UploadedPath {
  readonly kind: 'file' | 'directory';
  /** The file's digest, or the root Directory's. */
  readonly digest: Digest;
  readonly summary: UploadSummary;
}

/** Uploads a file, or a directory as a tree (a symlink given here is followed). */
export async function uploadPath(
  connection: Connection,
  path: string,
  options: TransferOptions = {},
): Promise<UploadedPath> {
  const stats = await stat(path);
  const fn = connection.digestFunction;
  if (stats.isFile()) {
    const digest = await hashFile(path, fn);
    return {
      kind: 'file',
      digest,
      summary: await uploadBlobs(connection, [{ digest, path }], options),
    };
  }
  if (!stats.isDirectory()) throw failure(`${path} is neither a file nor a directory`);

  const tree = await buildTree(path, fn, { jobs: options.jobs });
  const files = await uploadBlobs(connection, tree.files, options);
  const directories = await uploadBlobs(connection, tree.directories, options);
  return { kind: 'directory', digest: tree.root, summary: addSummaries(files, directories) };
}

/** Uploads whichever of `sources` the server does not have. */
export async function uploadBlobs(
  connection: Connection,
  sources: readonly BlobSource[],
  options: TransferOptions = {},
): Promise<UploadSummary> {
  const progress = options.progress ?? NO_PROGRESS;
  const distinct = new Map<string, BlobSource>();
  for (const source of sources) distinct.set(digestKey(source.digest), source);
  const all = [...distinct.values()];
  // The empty blob is always present; no server needs to be asked for it.
  const candidates = all.filter((source) => !isEmptyDigest(source.digest));

  let found: Digest[];
  try {
    found = await connection.findMissing(candidates.map((source) => source.digest));
  } catch (error) {
    throw toClientError(error, `asking which of ${candidates.length} blobs are missing`);
  }
  const missingKeys = new Set(found.map(digestKey));
  const missing = candidates.filter((source) => missingKeys.has(digestKey(source.digest)));
  const missingBytes = sumSizes(missing);
  progress.addTotal(missing.length, missingBytes);

  const { batches, streams } = planBatches(missing, connection.maxBatchBytes);
  const sent: Sent = { blobs: 0, bytes: 0 };
  const pool = createPool(options.jobs ?? DEFAULT_JOBS);
  await settle([
    ...batches.map((batch) => pool.run(() => sendBatch(connection, batch, progress, sent))),
    ...streams.map((source) => pool.run(() => sendStream(connection, source, progress, sent))),
  ]);
  return {
    blobs: all.length,
    bytes: sumSizes(all),
    missing: missing.length,
    uploaded: sent.blobs,
    uploadedBytes: sent.bytes,
  };
}

/** Blobs and bytes the server accepted, counted as each call succeeds. */
interface Sent {
  blobs: number;
  bytes: number;
}

export function addSummaries(a: UploadSummary, b: UploadSummary): UploadSummary {
  return {
    blobs: a.blobs + b.blobs,
    bytes: a.bytes + b.bytes,
    missing: a.missing + b.missing,
    uploaded: a.uploaded + b.uploaded,
    uploadedBytes: a.uploadedBytes + b.uploadedBytes,
  };
}

async function sendBatch(
  connection: Connection,
  batch: readonly BlobSource[],
  progress: Progress,
  sent: Sent,
): Promise<void> {
  const blobs: BlobData[] = [];
  for (const source of batch) blobs.push({ digest: source.digest, data: await contentOf(source) });
  try {
    await connection.batchUpdate(blobs);
  } catch (error) {
    throw toClientError(error, `uploading a batch of ${blobs.length} blobs`);
  }
  const bytes = sumSizes(batch);
  sent.blobs += batch.length;
  sent.bytes += bytes;
  progress.addBytes(bytes);
  progress.addBlobs(batch.length);
}

async function sendStream(
  connection: Connection,
  source: BlobSource,
  progress: Progress,
  sent: Sent,
): Promise<void> {
  const { digest } = source;
  // Bytes of this attempt already shown; a retry starts over, and so does the display.
  let shown = 0;
  async function* counted(): AsyncGenerator<Uint8Array> {
    for await (const chunk of chunksOf(source)) {
      shown += chunk.length;
      progress.addBytes(chunk.length);
      yield chunk;
    }
  }
  try {
    await withRetries(() => {
      progress.addBytes(-shown);
      shown = 0;
      return connection.write(digest, counted());
    });
  } catch (error) {
    throw toClientError(error, `uploading blob ${digest.hash}/${digest.size}`);
  }
  // A server that already had the blob ends the write early; the rest counts as done.
  progress.addBytes(digest.size - shown);
  progress.addBlobs(1);
  sent.blobs += 1;
  sent.bytes += digest.size;
}

async function* chunksOf(source: BlobSource): AsyncGenerator<Uint8Array> {
  if ('data' in source) {
    for (let at = 0; at < source.data.length; at += STREAM_CHUNK_BYTES) {
      yield source.data.subarray(at, at + STREAM_CHUNK_BYTES);
    }
    return;
  }
  for await (const chunk of createReadStream(source.path, { highWaterMark: STREAM_CHUNK_BYTES })) {
    yield chunk as Buffer;
  }
}

async function contentOf(source: BlobSource): Promise<Buffer> {
  if ('data' in source) return source.data;
  const data = await readFile(source.path);
  if (data.length !== source.digest.size) {
    throw failure(
      `${source.path} has ${data.length} bytes, not the ${source.digest.size} it had when ` +
        'hashed; it changed during the upload',
    );
  }
  return data;
}

function sumSizes(blobs: readonly { digest: Digest }[]): number {
  return blobs.reduce((sum, blob) => sum + blob.digest.size, 0);
}
