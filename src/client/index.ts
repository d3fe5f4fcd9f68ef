// The Tessera client library: upload files and directory trees to a REAPI v2 cache, download
// trees and blobs from one, with only missing blobs sent and every blob read verified. The
// `tessera upload | download | cat` commands are thin glue over these functions.
export {
  type BlobData,
  type Connection,
  type ConnectOptions,
  DEFAULT_SERVER,
  MAX_FIND_MISSING_DIGESTS,
  openConnection,
  STREAM_CHUNK_BYTES,
} from './connection.ts';
export { checkTarget, type DownloadSummary, downloadTree } from './downloader.ts';
export { ClientError, type ClientErrorKind } from './errors.ts';
export { createProgress, type Progress, type ProgressSnapshot } from './progress.ts';
export { readBlob, readBlobBytes } from './reader.ts';
export {
  type BuiltTree,
  buildTree,
  compareNames,
  type DirectoryContents,
  encodeDirectory,
  hashFile,
} from './tree-builder.ts';
export { type DirectoryMap, fetchTree } from './tree-reader.ts';
export {
  type BlobSource,
  type TransferOptions,
  type UploadedPath,
  type UploadSummary,
  uploadBlobs,
  uploadPath,
} from './uploader.ts';
