// ByteStream: Read, Write and QueryWriteStatus over the CAS.
//
// Write answers only after the blob is committed (see cas/cas.ts). A Write whose blob is already
// committed is answered at once with the full size, as the protocol allows, and the rest of the
// client's stream is ignored. A Write that breaks off keeps its session (cas/uploads.ts) for a
// resume at `committed_size`.
import type {
  ServerReadableStream,
  ServerWritableStream,
  UntypedServiceImplementation,
} from '@grpc/grpc-js';
import type { Cas } from '../cas/cas.ts';
import { digestKey, formatDigest } from '../cas/digest.ts';
import { CasError, invalidArgument, notFound } from '../cas/errors.ts';
import { OffsetMismatchError } from '../cas/upload-sink.ts';
import type { Lease, UploadRegistry } from '../cas/uploads.ts';
import { compressStream } from '../cas/zstd.ts';
import type { Logger } from '../observability/logger.ts';
import {
  type Authorize,
  annotate,
  clientStreaming,
  countReceived,
  countSent,
  createBoundedSender,
  type RpcContext,
  serverStreaming,
  unary,
} from './handlers.ts';
import type {
  QueryWriteStatusRequest,
  QueryWriteStatusResponse,
  ReadRequest,
  WriteRequest,
  WriteResponse,
} from './messages.ts';
import type { OutgoingReadResponse } from './read-response.ts';
import {
  type BlobResource,
  parseReadResourceName,
  parseWriteResourceName,
  type UploadResource,
} from './resource-name.ts';

/**
 * Read chunks handed to gRPC and not yet sent, per call: with 256 KiB chunks, 1 MiB, the window a
 * client typically grants. Bounds the memory of many reads at once, where grpc-js alone queues
 * 16 chunks (4 MiB) per call.
 */
const MAX_UNSENT_READ_CHUNKS = 4;

export function createByteStreamService(
  cas: Cas,
  uploads: UploadRegistry,
  rpc: RpcContext,
): UntypedServiceImplementation {
  return {
    Read: serverStreaming(
      rpc,
      {
        method: 'Read',
        permission: 'read',
        transfer: 'download',
        instance: (request: ReadRequest) => parseReadResourceName(request.resourceName).instance,
      },
      async (call: ServerWritableStream<ReadRequest, OutgoingReadResponse>) => {
        const { resourceName, readOffset, readLimit } = call.request;
        const resource = parseReadResourceName(resourceName);
        annotate(call, { digest: formatDigest(resource.digest) });
        if (resource.compressor !== 'identity' && readLimit !== 0) {
          throw invalidArgument(
            `read_limit ${readLimit} is not allowed in a read of compressed-blobs/` +
              `${resource.compressor}: compressed reads must leave read_limit 0`,
          );
        }
        assertSupportedCompressor(resource);
        const send = createBoundedSender(call, MAX_UNSENT_READ_CHUNKS);
        if (resource.compressor === 'zstd') {
          const plain = cas.read(resource.digest, readOffset, readLimit);
          // read_offset counts uncompressed bytes; the reply is one zstd frame of the rest.
          const rest = Math.max(0, resource.digest.size - readOffset);
          for await (const data of compressStream(plain, rest)) {
            if (!(await send({ data }))) return;
            countSent(call, data.length);
          }
          return;
        }
        // Each chunk goes out as the pieces S3 delivered; read-response.ts joins them.
        for await (const data of cas.readPieces(resource.digest, readOffset, readLimit)) {
          if (!(await send({ data }))) return;
          let bytes = 0;
          for (const piece of data) bytes += piece.length;
          countSent(call, bytes);
        }
      },
    ),

    Write: clientStreaming(
      rpc,
      { method: 'Write', permission: 'write', transfer: 'upload' },
      (call: ServerReadableStream<WriteRequest, WriteResponse>, rpcLog, authorize) =>
        write(cas, uploads, call, rpcLog, authorize),
    ),

    QueryWriteStatus: unary(
      rpc,
      {
        method: 'QueryWriteStatus',
        permission: 'write',
        instance: (request: QueryWriteStatusRequest) =>
          parseWriteResourceName(request.resourceName).instance,
      },
      async (request: QueryWriteStatusRequest, call): Promise<QueryWriteStatusResponse> => {
        const resource = parseWriteResourceName(request.resourceName);
        annotate(call, { digest: formatDigest(resource.digest) });
        if (await cas.isCommitted(resource.digest)) {
          return { committedSize: resource.digest.size, complete: true };
        }
        const resumeAt = await uploads.progress(resource);
        if (resumeAt === undefined) {
          throw notFound(`no upload named "${request.resourceName}" is in progress`);
        }
        return { committedSize: resumeAt, complete: false };
      },
    ),
  };
}

async function write(
  cas: Cas,
  uploads: UploadRegistry,
  call: ServerReadableStream<WriteRequest, WriteResponse>,
  log: Logger,
  authorize: Authorize,
): Promise<WriteResponse> {
  let resource: UploadResource | undefined;
  let lease: Lease | undefined;
  let firstName = '';
  try {
    // The reply goes out at finish_write, so anything a client sends after it is never read.
    for await (const request of withIdleTimeout(call, uploads.idleTimeoutMs)) {
      if (!resource) {
        resource = parseWriteResourceName(request.resourceName);
        authorize(resource.instance);
        assertSupportedCompressor(resource);
        log = annotate(call, {
          digest: formatDigest(resource.digest),
          instance: resource.instance,
        });
        // A Write whose first message is the whole blob is not asked about first: its commit
        // finds a blob committed already and writes nothing (begin-put-4 in S3 mode), so asking
        // would cost a Redis round trip per small blob and save nothing. A compressed Write still
        // asks, to answer -1 as the protocol wants for a blob that was there.
        const whole =
          request.finishWrite &&
          request.writeOffset === 0 &&
          !isCompressed(resource) &&
          request.data.length === resource.digest.size;
        if (!whole && (await cas.isCommitted(resource.digest))) {
          log.debug('blob already committed; ending the write early');
          // REAPI: -1 tells a compressed upload's client the blob is there; the size would not.
          return { committedSize: isCompressed(resource) ? -1 : resource.digest.size };
        }
        lease = await uploads.acquire(resource);
        firstName = request.resourceName;
      } else if (request.resourceName && request.resourceName !== firstName) {
        assertSameResource(request.resourceName, resource);
      }
      countReceived(call, request.data.length);
      const active = lease as Lease;
      active.session.assertOwner(active.owner);
      await active.session.sink.append(request.writeOffset, request.data);
      if (request.finishWrite) {
        active.session.assertOwner(active.owner);
        uploads.forget(active);
        lease = undefined;
        // For a compressed upload, the bytes received: what Bazel 5+ and Buck2 check it against.
        const committedSize = isCompressed(resource)
          ? active.session.sink.received
          : resource.digest.size;
        await active.session.sink.finish();
        log.debug({ bytes: resource.digest.size, wireBytes: committedSize }, 'committed');
        return { committedSize };
      }
    }
  } catch (thrown) {
    const error = brokenOff(thrown) ?? thrown;
    if (lease) await dropIfHopeless(uploads, lease, error);
    lease = undefined;
    throw error;
  } finally {
    if (lease) uploads.release(lease);
  }
  if (call.cancelled) throw new CasError('cancelled', 'the client cancelled the write');
  if (!resource) throw invalidArgument('Write stream carried no request');
  throw invalidArgument(
    `Write stream for ${formatDigest(resource.digest)} ended without finish_write; ` +
      'resume at the offset QueryWriteStatus reports',
  );
}

/**
 * The messages of a Write, ending it with DEADLINE_EXCEEDED when the client sends nothing for
 * `idleMs` while the server waits for it: a stalled stream would otherwise hold its upload (and
 * its slot under max_concurrent_uploads) for as long as the connection lives. Time the server
 * spends on a message (writing it, waiting for S3) does not count.
 *
 * One timer serves the whole call and only notes when the wait began: Bazel sends 16 KiB
 * messages, and a timer and a promise race per message were a visible share of a Write's CPU.
 */
async function* withIdleTimeout(
  call: ServerReadableStream<WriteRequest, WriteResponse>,
  idleMs: number,
): AsyncGenerator<WriteRequest> {
  const messages = (call as AsyncIterable<WriteRequest>)[Symbol.asyncIterator]();
  /** When the current wait for a message began; undefined while the server works on one. */
  let waitingSince: number | undefined;
  let timedOut = false;
  const check = () => {
    const waited = waitingSince === undefined ? 0 : performance.now() - waitingSince;
    if (waited < idleMs) {
      timer = setTimeout(check, idleMs - waited);
      return;
    }
    timedOut = true;
    // Ends the pending read, which then throws below.
    call.destroy();
  };
  let timer = setTimeout(check, idleMs);
  const deadline = () =>
    new CasError(
      'deadline_exceeded',
      `no Write message arrived for ${idleMs / 1000} s (upload_idle_timeout_seconds); ` +
        'the upload was dropped',
    );
  try {
    for (;;) {
      waitingSince = performance.now();
      let next: IteratorResult<WriteRequest>;
      try {
        next = await messages.next();
      } catch (error) {
        throw timedOut ? deadline() : error;
      }
      waitingSince = undefined;
      if (timedOut) throw deadline();
      if (next.done) return;
      yield next.value;
    }
  } finally {
    clearTimeout(timer);
    await messages.return?.();
  }
}

/**
 * The request stream closed under the handler before the client half-closed it: the client went
 * away, or gRPC itself ended the call (a message over the size limit, or one that did not
 * decode) and has already sent the status. Either way the bytes received so far stay resumable.
 */
function brokenOff(error: unknown): CasError | undefined {
  const code = (error as { code?: unknown } | null | undefined)?.code;
  return code === 'ERR_STREAM_PREMATURE_CLOSE'
    ? new CasError('cancelled', 'the Write stream closed before finish_write', { cause: error })
    : undefined;
}

/** Keeps a session for a resume unless its data can never form the blob. */
async function dropIfHopeless(uploads: UploadRegistry, lease: Lease, error: unknown) {
  const resumable =
    error instanceof OffsetMismatchError ||
    (error instanceof CasError && (error.code === 'aborted' || error.code === 'cancelled'));
  if (resumable) uploads.release(lease);
  else await uploads.discard(lease);
}

/** A later message may repeat the resource name (metadata after the size aside), not change it. */
function assertSameResource(name: string, first: UploadResource): void {
  const again = parseWriteResourceName(name);
  const same =
    again.instance === first.instance &&
    again.uploadId === first.uploadId &&
    again.compressor === first.compressor &&
    digestKey(again.digest) === digestKey(first.digest);
  if (!same) {
    throw invalidArgument(`resource name "${name}" differs from the first message of this Write`);
  }
}

function assertSupportedCompressor(resource: BlobResource): void {
  if (resource.compressor !== 'identity' && resource.compressor !== 'zstd') {
    throw invalidArgument(
      `compressor "${resource.compressor}" is not supported; use compressed-blobs/zstd/ or ` +
        'uncompressed blobs/ resource names',
    );
  }
}

function isCompressed(resource: BlobResource): boolean {
  return resource.compressor !== 'identity';
}
