// How blobs are split between batch calls and ByteStream, for uploads and downloads alike.
import type { Digest } from '../cas/digest.ts';
import { STREAM_CHUNK_BYTES } from './connection.ts';

/** Room for the digest and framing around each blob, so a batch fits any reading of the limit. */
export const BATCH_OVERHEAD_PER_BLOB_BYTES = 256;

/**
 * Splits blobs into batches (each under `maxBatchBytes` with per-blob overhead counted) and
 * blobs to stream: those over 1 MiB, or too large for any batch.
 */
export function planBatches<T extends { digest: Digest }>(
  blobs: readonly T[],
  maxBatchBytes: number,
): { batches: T[][]; streams: T[] } {
  const smallLimit = Math.min(STREAM_CHUNK_BYTES, maxBatchBytes - BATCH_OVERHEAD_PER_BLOB_BYTES);
  const batches: T[][] = [];
  const streams: T[] = [];
  let batch: T[] = [];
  let batchBytes = 0;
  for (const blob of blobs) {
    if (blob.digest.size > smallLimit) {
      streams.push(blob);
      continue;
    }
    const cost = blob.digest.size + BATCH_OVERHEAD_PER_BLOB_BYTES;
    if (batch.length > 0 && batchBytes + cost > maxBatchBytes) {
      batches.push(batch);
      batch = [];
      batchBytes = 0;
    }
    batch.push(blob);
    batchBytes += cost;
  }
  if (batch.length > 0) batches.push(batch);
  return { batches, streams };
}
