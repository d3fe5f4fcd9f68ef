// Transfer counters that the uploader and downloader advance and a display (or a test) reads.
// Totals grow as work is discovered, so a display can show "done of known so far".

export interface ProgressSnapshot {
  readonly blobsDone: number;
  readonly blobsTotal: number;
  readonly bytesDone: number;
  readonly bytesTotal: number;
}

export interface Progress {
  addTotal(blobs: number, bytes: number): void;
  /** Bytes moved so far, as they move (streams report per chunk). */
  addBytes(bytes: number): void;
  addBlobs(blobs: number): void;
  snapshot(): ProgressSnapshot;
}

export function createProgress(): Progress {
  let blobsDone = 0;
  let blobsTotal = 0;
  let bytesDone = 0;
  let bytesTotal = 0;
  return {
    addTotal(blobs, bytes) {
      blobsTotal += blobs;
      bytesTotal += bytes;
    },
    addBytes(bytes) {
      bytesDone += bytes;
    },
    addBlobs(blobs) {
      blobsDone += blobs;
    },
    snapshot: () => ({ blobsDone, blobsTotal, bytesDone, bytesTotal }),
  };
}

/** For callers that do not display progress. */
export const NO_PROGRESS: Progress = {
  addTotal: () => {},
  addBytes: () => {},
  addBlobs: () => {},
  snapshot: () => ({ blobsDone: 0, blobsTotal: 0, bytesDone: 0, bytesTotal: 0 }),
};
