// ContentAddressableStorage: FindMissingBlobs, BatchUpdateBlobs, BatchReadBlobs, GetTree.
// The CAS is shared by all instance names (content addressing makes that safe); instance names are
// validated but do not namespace blobs.

import type { ServerWritableStream, UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Cas } from '../cas/cas.ts';
import { mapConcurrently } from '../cas/concurrency.ts';
import { type Digest, formatDigest, fromWireDigest, toWireDigest } from '../cas/digest.ts';
import { CasError, invalidArgument } from '../cas/errors.ts';
import { compressWhole, decompressWhole } from '../cas/zstd.ts';
import { readTreePages } from './get-tree.ts';
import {
  annotate,
  countReceived,
  countSent,
  type RpcContext,
  route,
  serverStreaming,
  unary,
} from './handlers.ts';
import type {
  BatchReadBlobsRequest,
  BatchUpdateBlobsRequest,
  BatchUpdateBlobsRequestItem,
  FindMissingBlobsRequest,
  GetTreeRequest,
} from './messages.ts';
import { OK_STATUS, toRpcStatus } from './status.ts';

export interface CasServiceSettings {
  readonly maxBatchTotalSizeBytes: number;
}

/** How many blobs of one batch are committed or read at the same time. */
const BATCH_CONCURRENCY = 16;
/** FindMissingBlobs requests larger than this are refused rather than looked up. */
const MAX_FIND_MISSING_DIGESTS = 100_000;

export function createCasService(
  cas: Cas,
  settings: CasServiceSettings,
  rpc: RpcContext,
): UntypedServiceImplementation {
  return {
    FindMissingBlobs: unary(
      rpc,
      route('FindMissingBlobs', 'read'),
      async (request: FindMissingBlobsRequest, call) => {
        if (request.blobDigests.length > MAX_FIND_MISSING_DIGESTS) {
          throw invalidArgument(
            `FindMissingBlobs asks for ${request.blobDigests.length} digests; the limit is ` +
              `${MAX_FIND_MISSING_DIGESTS}`,
          );
        }
        const digests = request.blobDigests.map((d) => fromWireDigest(d, request.digestFunction));
        const missing = await cas.findMissing(digests);
        const found = rpc.metrics.findMissingDigests;
        found.inc({ result: 'missing' }, missing.length);
        found.inc({ result: 'present' }, digests.length - missing.length);
        annotate(call, { digests: digests.length, missing: missing.length });
        return { missingBlobDigests: missing.map(toWireDigest) };
      },
    ),

    BatchUpdateBlobs: unary(
      rpc,
      route('BatchUpdateBlobs', 'write', 'upload'),
      async (request: BatchUpdateBlobsRequest, call, rpcLog) => {
        countReceived(
          call,
          request.requests.reduce((sum, r) => sum + r.data.length, 0),
        );
        // A zstd blob counts with its declared size too: that is what it takes in memory here.
        const total = request.requests.reduce(
          (sum, r) =>
            sum + (isZstd(r.compressor) ? Math.max(r.data.length, declaredSize(r)) : r.data.length),
          0,
        );
        annotate(call, { blobs: request.requests.length });
        assertBatchSize('BatchUpdateBlobs', total, settings.maxBatchTotalSizeBytes);
        const responses = await mapConcurrently(
          request.requests,
          BATCH_CONCURRENCY,
          async (entry) => {
            let digest: Digest | undefined;
            try {
              digest = fromWireDigest(entry.digest, request.digestFunction);
              await cas.putBuffer(digest, decodeBatchEntry(digest, entry));
              return { digest: toWireDigest(digest), status: OK_STATUS };
            } catch (error) {
              return {
                digest: entry.digest,
                status: toRpcStatus(
                  error,
                  rpcLog.child({ digest: digest && formatDigest(digest) }),
                ),
              };
            }
          },
        );
        return { responses };
      },
    ),

    BatchReadBlobs: unary(
      rpc,
      route('BatchReadBlobs', 'read', 'download'),
      async (request: BatchReadBlobsRequest, call, rpcLog) => {
        const digests = request.digests.map((d) => fromWireDigest(d, request.digestFunction));
        annotate(call, { blobs: digests.length });
        const total = digests.reduce((sum, d) => sum + d.size, 0);
        assertBatchSize('BatchReadBlobs', total, settings.maxBatchTotalSizeBytes);
        const zstdAccepted = request.acceptableCompressors.some(isZstd);
        const responses = await mapConcurrently(digests, BATCH_CONCURRENCY, async (digest) => {
          try {
            const data = await cas.readAll(digest);
            // Sent compressed only when the client accepts zstd and it saves bytes.
            const packed = zstdAccepted && data.length > 0 ? compressWhole(data) : undefined;
            const smaller = packed !== undefined && packed.length < data.length;
            countSent(call, smaller ? packed.length : data.length);
            return {
              digest: toWireDigest(digest),
              data: smaller ? packed : data,
              compressor: smaller ? 'ZSTD' : 'IDENTITY',
              status: OK_STATUS,
            };
          } catch (error) {
            return {
              digest: toWireDigest(digest),
              data: Buffer.alloc(0),
              compressor: 'IDENTITY',
              status: toRpcStatus(error, rpcLog.child({ digest: formatDigest(digest) })),
            };
          }
        });
        return { responses };
      },
    ),

    GetTree: serverStreaming(
      rpc,
      route('GetTree', 'read'),
      async (call: ServerWritableStream<GetTreeRequest, unknown>) => {
        const request = call.request;
        const root = fromWireDigest(request.rootDigest, request.digestFunction);
        annotate(call, { digest: formatDigest(root) });
        if (!Number.isSafeInteger(request.pageSize) || request.pageSize < 0) {
          throw invalidArgument(`page_size ${request.pageSize} is negative`);
        }
        await readTreePages(cas, call, root, request.pageSize, request.pageToken);
      },
    ),

    SplitBlob: unary(rpc, route('SplitBlob', 'read'), unimplemented('SplitBlob')),
    SpliceBlob: unary(rpc, route('SpliceBlob', 'write'), unimplemented('SpliceBlob')),
  };
}

function unimplemented(method: string): () => Promise<never> {
  return async () => {
    throw new CasError('unimplemented', `${method} is not supported by this server`);
  };
}

function assertBatchSize(method: string, total: number, limit: number): void {
  if (total > limit) {
    throw invalidArgument(
      `${method} carries ${total} bytes of blobs; max_batch_total_size_bytes is ${limit}: ` +
        'send larger sets in several batches or through ByteStream',
    );
  }
}

/** Batch blobs may be sent uncompressed or as zstd (supported_batch_update_compressors). */
export function assertIdentity(compressor: unknown): void {
  if (compressor === undefined || compressor === 'IDENTITY' || compressor === 0) return;
  throw new CasError(
    'invalid_argument',
    `compressor ${String(compressor)} is not supported here; use IDENTITY or ZSTD`,
  );
}

/** A batch blob's bytes, decoded when it was sent as zstd. */
function decodeBatchEntry(digest: Digest, entry: BatchUpdateBlobsRequestItem): Uint8Array {
  if (isZstd(entry.compressor)) {
    return decompressWhole(entry.data, digest.size, `zstd batch blob ${formatDigest(digest)}`);
  }
  assertIdentity(entry.compressor);
  return entry.data;
}

function declaredSize(entry: BatchUpdateBlobsRequestItem): number {
  const size = Number(entry.digest?.sizeBytes ?? 0);
  return Number.isFinite(size) && size > 0 ? size : 0;
}

function isZstd(compressor: unknown): boolean {
  return compressor === 'ZSTD' || compressor === 1;
}
