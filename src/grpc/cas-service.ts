// ContentAddressableStorage: FindMissingBlobs, BatchUpdateBlobs, BatchReadBlobs, GetTree.
// The CAS is shared by all instance names (content addressing makes that safe); instance names are
// validated but do not namespace blobs.

import type { ServerWritableStream, UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Cas } from '../cas/cas.ts';
import { mapConcurrently } from '../cas/concurrency.ts';
import { type Digest, formatDigest, fromWireDigest, toWireDigest } from '../cas/digest.ts';
import { CasError, invalidArgument } from '../cas/errors.ts';
import { readTreePages } from './get-tree.ts';
import {
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
      async (request: FindMissingBlobsRequest) => {
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
        return { missingBlobDigests: missing.map(toWireDigest) };
      },
    ),

    BatchUpdateBlobs: unary(
      rpc,
      route('BatchUpdateBlobs', 'write', 'upload'),
      async (request: BatchUpdateBlobsRequest, call, rpcLog) => {
        const total = request.requests.reduce((sum, r) => sum + r.data.length, 0);
        countReceived(call, total);
        assertBatchSize('BatchUpdateBlobs', total, settings.maxBatchTotalSizeBytes);
        const responses = await mapConcurrently(
          request.requests,
          BATCH_CONCURRENCY,
          async (entry) => {
            let digest: Digest | undefined;
            try {
              digest = fromWireDigest(entry.digest, request.digestFunction);
              assertIdentity(entry.compressor);
              await cas.putBuffer(digest, entry.data);
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
        const total = digests.reduce((sum, d) => sum + d.size, 0);
        assertBatchSize('BatchReadBlobs', total, settings.maxBatchTotalSizeBytes);
        const responses = await mapConcurrently(digests, BATCH_CONCURRENCY, async (digest) => {
          try {
            const data = await cas.readAll(digest);
            countSent(call, data.length);
            return {
              digest: toWireDigest(digest),
              data,
              compressor: 'IDENTITY',
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

/** Batches carry only uncompressed blobs until compression support lands. */
export function assertIdentity(compressor: unknown): void {
  if (compressor === undefined || compressor === 'IDENTITY' || compressor === 0) return;
  throw new CasError('invalid_argument', `compressor ${String(compressor)} is not supported here`);
}
