// One peer region as this region sees it: the peer's own Tessera gRPC endpoint. A peer serves only
// committed, verified blobs and checks its own tokens, so asking it (rather than its bucket or its
// Redis, which another region cannot reach) inherits every guarantee it gives its own clients.
//
// Every call carries the caller's region in PEER_CALL_HEADER (so the peer answers from its own
// region only) and, when configured, the peer's bearer token. Every call has a deadline: a lookup
// the whole `timeoutMs`, a read `timeoutMs` for its first message and for every gap after it.
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import {
  type Client,
  type ClientReadableStream,
  type ClientWritableStream,
  credentials,
  Metadata,
  makeClientConstructor,
  type ServiceError,
  status,
} from '@grpc/grpc-js';
import { type Digest, digestKey, formatDigest, toWireDigest } from '../cas/digest.ts';
import { CasError, unavailable } from '../cas/errors.ts';
import type { PeerSettings } from '../config/schema.ts';
import type {
  ActionResult,
  FindMissingBlobsResponse,
  ReadResponse,
  WriteRequest,
} from '../grpc/messages.ts';
import { actionCacheService, byteStreamService, casService } from '../grpc/proto.ts';
import { PEER_CALL_HEADER } from './peer-call.ts';

/** FindMissingBlobs requests to a peer carry at most this many digests each. */
const LOOKUP_BATCH_DIGESTS = 10_000;
/** A peer's read chunks are at most 1 MiB; batch answers are not used. */
const MAX_RECEIVE_MESSAGE_BYTES = 16 * 1024 * 1024;

const MIB = 1024 * 1024;
/** A replication write's message data, well under any peer's receive limit. */
const WRITE_CHUNK_BYTES = MIB;
/** Added to every replication write's deadline, whatever the blob's size. */
const WRITE_FLOOR_MS = 30_000;
const RECONNECT_BACKOFF_INITIAL_MS = 250;
const RECONNECT_BACKOFF_MAX_MS = 5_000;
/**
 * Bytes a peer may send on the channel (and per call) before this side acknowledges them. HTTP/2's
 * default, 64 KiB, allows one window per round trip: 16 MiB from a peer 10 ms away each way took
 * about 10 s. With 8 MiB a read fills the link.
 */
const FLOW_CONTROL_WINDOW_BYTES = 8 * MIB;

type Untyped = Client & Record<string, unknown>;
type UnaryMethod = (
  request: object,
  metadata: Metadata,
  options: { deadline: number },
  callback: (error: ServiceError | null, response: unknown) => void,
) => void;

export interface PeerClient {
  readonly name: string;
  /** The keys (digestKey) of those `digests` the peer has committed. */
  lookup(digests: readonly Digest[]): Promise<Set<string>>;
  /** The blob's bytes as the peer sends them, unverified; NOT_FOUND as a CasError `not_found`. */
  read(digest: Digest): AsyncIterable<Buffer>;
  /** The peer's action result (served only when all its outputs are there), or undefined. */
  getActionResult(instance: string, action: Digest): Promise<ActionResult | undefined>;
  /**
   * Uploads a blob with ByteStream Write from `source` (exactly digest.size bytes) and resolves
   * once the peer has committed it.
   */
  write(digest: Digest, source: AsyncIterable<Uint8Array>): Promise<void>;
  /** Stores an action result in the peer, which refuses it unless its outputs are all there. */
  updateActionResult(instance: string, action: Digest, result: ActionResult): Promise<void>;
  close(): void;
}

export function createPeerClient(
  peer: PeerSettings,
  localRegion: string,
  timeoutMs: number,
): PeerClient {
  const url = new URL(peer.endpoint);
  const address = url.host;
  const channel =
    url.protocol === 'grpcs:' ? credentials.createSsl() : credentials.createInsecure();
  const options = {
    'grpc.max_receive_message_length': MAX_RECEIVE_MESSAGE_BYTES,
    // A peer that restarts is noticed within seconds, not after gRPC's default backoff of up to
    // two minutes (calls fail fast with UNAVAILABLE while the channel waits to reconnect).
    'grpc.initial_reconnect_backoff_ms': RECONNECT_BACKOFF_INITIAL_MS,
    'grpc.max_reconnect_backoff_ms': RECONNECT_BACKOFF_MAX_MS,
    'grpc-node.flow_control_window': FLOW_CONTROL_WINDOW_BYTES,
  };
  const make = (definition: Parameters<typeof makeClientConstructor>[0]) =>
    new (makeClientConstructor(definition, 'peer'))(
      address,
      channel,
      options,
    ) as unknown as Untyped;
  const cas = make(casService);
  const byteStream = make(byteStreamService);
  const actionCache = make(actionCacheService);
  const casInstance = peer.instanceName ?? '';

  const metadata = () => {
    const m = new Metadata();
    m.set(PEER_CALL_HEADER, localRegion);
    if (peer.token !== undefined) m.set('authorization', `Bearer ${peer.token}`);
    return m;
  };
  const unary = <Res>(client: Untyped, method: string, request: object) =>
    new Promise<Res>((resolve, reject) => {
      const call = client[method] as UnaryMethod;
      call.call(
        client,
        request,
        metadata(),
        { deadline: Date.now() + timeoutMs },
        (error, response) => (error ? reject(error) : resolve(response as Res)),
      );
    });

  return {
    name: peer.name,

    async lookup(digests) {
      const present = new Set<string>();
      const byFunction = new Map<Digest['fn'], Digest[]>();
      for (const digest of digests) {
        const group = byFunction.get(digest.fn);
        if (group) group.push(digest);
        else byFunction.set(digest.fn, [digest]);
      }
      for (const [fn, group] of byFunction) {
        for (let at = 0; at < group.length; at += LOOKUP_BATCH_DIGESTS) {
          const slice = group.slice(at, at + LOOKUP_BATCH_DIGESTS);
          const response = await unary<FindMissingBlobsResponse>(cas, 'FindMissingBlobs', {
            instanceName: casInstance,
            blobDigests: slice.map(toWireDigest),
            digestFunction: fn,
          }).catch((error: unknown) => {
            throw peerFailure(peer.name, 'FindMissingBlobs', error);
          });
          const missing = new Set(
            response.missingBlobDigests.map((d) => `${d.hash}/${d.sizeBytes}`),
          );
          for (const digest of slice) {
            if (!missing.has(`${digest.hash}/${digest.size}`)) present.add(digestKey(digest));
          }
        }
      }
      return present;
    },

    async *read(digest) {
      const prefix = casInstance === '' ? '' : `${casInstance}/`;
      const fnSegment = digest.fn === 'BLAKE3' ? 'blake3/' : '';
      const start = byteStream.Read as (
        request: object,
        metadata: Metadata,
      ) => ClientReadableStream<ReadResponse>;
      const call = start.call(
        byteStream,
        {
          resourceName: `${prefix}blobs/${fnSegment}${digest.hash}/${digest.size}`,
          readOffset: 0,
          readLimit: 0,
        },
        metadata(),
      );
      // The deadline covers the wait for each message, so a peer that stalls half-way is given
      // up on as surely as one that never answers. It is paused while the consumer holds a message
      // (spooling, hashing, writing this region's S3): that time is ours, not the peer's silence.
      let stalled = false;
      let timer: NodeJS.Timeout | undefined;
      const arm = () => {
        clearTimeout(timer);
        timer = setTimeout(() => {
          stalled = true;
          call.cancel();
        }, timeoutMs);
      };
      arm();
      try {
        for await (const message of call) {
          clearTimeout(timer);
          yield message.data;
          arm();
        }
      } catch (error) {
        if (stalled) {
          throw unavailable(
            `peer region ${peer.name} sent nothing for ${timeoutMs} ms reading ${formatDigest(digest)}`,
          );
        }
        throw peerFailure(peer.name, 'Read', error);
      } finally {
        clearTimeout(timer);
        call.cancel();
      }
    },

    async getActionResult(instance, action) {
      try {
        return await unary<ActionResult>(actionCache, 'GetActionResult', {
          instanceName: instance,
          actionDigest: toWireDigest(action),
          digestFunction: action.fn,
        });
      } catch (error) {
        if ((error as ServiceError).code === status.NOT_FOUND) return undefined;
        throw peerFailure(peer.name, 'GetActionResult', error);
      }
    },

    async write(digest, source) {
      const prefix = casInstance === '' ? '' : `${casInstance}/`;
      const fnSegment = digest.fn === 'BLAKE3' ? 'blake3/' : '';
      const name = `${prefix}uploads/${randomUUID()}/blobs/${fnSegment}${digest.hash}/${digest.size}`;
      // A blob of any size: the deadline allows the lookup deadline plus a floor rate of 1 MiB/s.
      const deadline = Date.now() + timeoutMs + WRITE_FLOOR_MS + (digest.size / MIB) * 1000;
      let call: ClientWritableStream<WriteRequest> | undefined;
      const done = new Promise<void>((resolve, reject) => {
        const start = byteStream.Write as (
          metadata: Metadata,
          options: { deadline: number },
          callback: (error: ServiceError | null) => void,
        ) => ClientWritableStream<WriteRequest>;
        call = start.call(byteStream, metadata(), { deadline }, (error) =>
          error ? reject(peerFailure(peer.name, 'Write', error)) : resolve(),
        );
      });
      const stream = call as unknown as ClientWritableStream<WriteRequest>;
      let offset = 0;
      try {
        for await (const piece of source) {
          // The store's pieces can be larger than a peer accepts in one message.
          for (let at = 0; at < piece.byteLength; at += WRITE_CHUNK_BYTES) {
            const end = Math.min(piece.byteLength, at + WRITE_CHUNK_BYTES);
            const chunk = Buffer.from(piece.buffer, piece.byteOffset + at, end - at);
            const message = {
              resourceName: offset === 0 ? name : '',
              writeOffset: offset,
              data: chunk,
              finishWrite: offset + chunk.length === digest.size,
            };
            offset += chunk.length;
            if (!stream.write(message)) await once(stream, 'drain');
          }
        }
        if (digest.size === 0) {
          stream.write({
            resourceName: name,
            writeOffset: 0,
            data: Buffer.alloc(0),
            finishWrite: true,
          });
        }
        stream.end();
      } catch (error) {
        stream.cancel();
        await done.catch(() => undefined);
        throw error;
      }
      await done;
    },

    async updateActionResult(instance, action, result) {
      await unary(actionCache, 'UpdateActionResult', {
        instanceName: instance,
        actionDigest: toWireDigest(action),
        actionResult: result,
        digestFunction: action.fn,
      }).catch((error: unknown) => {
        throw peerFailure(peer.name, 'UpdateActionResult', error);
      });
    },

    close() {
      cas.close();
      byteStream.close();
      actionCache.close();
    },
  };
}

/** A peer's error as a CasError: NOT_FOUND stays not_found, everything else is unavailable. */
function peerFailure(peer: string, method: string, error: unknown): CasError {
  const code = (error as Partial<ServiceError>).code;
  const detail = (error as Partial<ServiceError>).details ?? String(error);
  if (code === status.NOT_FOUND) return new CasError('not_found', `peer ${peer}: ${detail}`);
  if (code === status.INVALID_ARGUMENT || code === status.FAILED_PRECONDITION) {
    const refused = code === status.INVALID_ARGUMENT ? 'invalid_argument' : 'failed_precondition';
    return new CasError(refused, `peer region ${peer} refused ${method}: ${detail}`, {
      cause: error,
    });
  }
  return unavailable(`peer region ${peer} failed ${method}: ${detail}`, error);
}
