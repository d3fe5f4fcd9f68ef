// One client's view of a REAPI v2 server: the CAS and ByteStream calls the uploader and the
// downloader need, typed, with the server's limits learnt once from GetCapabilities.
//
// `openConnection` is the only place that decides whether the server is reachable: if the first
// call cannot get through (refused, timed out) it throws a ClientError of kind `unreachable`.
// Later UNAVAILABLE answers (Tessera's way of saying "a backend failed, retry") are retried a few
// times with backoff, then reported as `failed`.
import { randomUUID } from 'node:crypto';
import {
  type ChannelCredentials,
  type Client,
  type ClientReadableStream,
  credentials,
  InterceptingCall,
  type Interceptor,
  makeClientConstructor,
  type ServiceError,
  status,
} from '@grpc/grpc-js';
import { type Digest, type DigestFunction, hashBytes, toWireDigest } from '../cas/digest.ts';
import { compressWhole, decompressWhole, ZstdDecoder } from '../cas/zstd.ts';
import type {
  BatchReadBlobsResponse,
  BatchUpdateBlobsResponse,
  FindMissingBlobsResponse,
  ReadResponse,
  ServerCapabilities,
} from '../grpc/messages.ts';
import { byteStreamService, capabilitiesService, casService } from '../grpc/proto.ts';
import { parseInstanceName } from '../grpc/resource-name.ts';
import { connectFailure, failure, isServiceError, rpcFailure, usageError } from './errors.ts';
import { type StartWrite, writeBlob } from './stream-writer.ts';
import { checkCapabilities, digestText, fromWire } from './wire.ts';

export const DEFAULT_SERVER = '127.0.0.1:8980';
/** FindMissingBlobs requests carry at most this many digests; larger sets go in several. */
export const MAX_FIND_MISSING_DIGESTS = 10_000;
/** ByteStream messages carry at most this much data, in both directions. */
export const STREAM_CHUNK_BYTES = 1024 * 1024;

const CONNECT_TIMEOUT_MS = 10_000;
/** Unary calls only; streams run as long as their bytes keep flowing. */
const CALL_TIMEOUT_MS = 5 * 60_000;
/** Batch responses may be as large as the server's batch limit, which may exceed gRPC's 4 MiB. */
const MAX_RECEIVE_MESSAGE_BYTES = 256 * 1024 * 1024;
/** Waits before the second and third attempt of a call the server answered UNAVAILABLE. */
const RETRY_DELAYS_MS = [200, 1_000] as const;
const HOST_PORT_RE = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

export interface ConnectOptions {
  /** `HOST:PORT`. */
  readonly server: string;
  readonly instance?: string;
  /** Defaults to SHA256; refused unless the server lists it. */
  readonly digestFunction?: DigestFunction;
  readonly connectTimeoutMs?: number;
  readonly security?: ClientSecurity;
  /**
   * `zstd`: blob bytes travel zstd-compressed both ways (ByteStream and batch calls) when the
   * server lists ZSTD among its compressors; otherwise, and by default, uncompressed.
   */
  readonly compression?: 'zstd' | 'none';
}

/** How the client proves who it is and checks whom it talks to. */
export interface ClientSecurity {
  /** TLS, checked against `ca` (PEM) or else the system's CAs; `cert` and `key` for mutual TLS. */
  readonly tls?: { readonly ca?: Buffer; readonly cert?: Buffer; readonly key?: Buffer };
  /** Sent as `authorization: Bearer …` with every call. */
  readonly token?: string;
}

export interface BlobData {
  readonly digest: Digest;
  readonly data: Buffer;
}

export interface Connection {
  readonly server: string;
  readonly instance: string;
  readonly digestFunction: DigestFunction;
  /** Blob bytes one batch call may carry: the server's max_batch_total_size_bytes. */
  readonly maxBatchBytes: number;
  /** The digests the server does not have, in as many calls as the limit above needs. */
  findMissing(digests: readonly Digest[]): Promise<Digest[]>;
  /** Stores every blob in one BatchUpdateBlobs call; throws on the first blob refused. */
  batchUpdate(blobs: readonly BlobData[]): Promise<void>;
  /** Reads every blob in one BatchReadBlobs call, each verified against its digest. */
  batchRead(digests: readonly Digest[]): Promise<BlobData[]>;
  /** ByteStream Write of what `source` yields (exactly digest.size bytes), once committed. */
  write(digest: Digest, source: AsyncIterable<Uint8Array>): Promise<void>;
  /** ByteStream Read from `offset`: the chunks as they arrive, unverified. */
  read(digest: Digest, offset?: number): AsyncIterable<Buffer>;
  close(): void;
}

type Untyped = Client & Record<string, unknown>;
type UnaryMethod = (
  request: object,
  options: { deadline: number },
  callback: (error: ServiceError | null, response: unknown) => void,
) => void;

/** Throws a usage error unless `server` is `HOST:PORT` with a port up to 65535. */
export function assertServerAddress(server: string): void {
  const port = HOST_PORT_RE.exec(server)?.[2];
  if (port === undefined || Number(port) > 65535) {
    throw usageError(`server "${server}" is not HOST:PORT, e.g. ${DEFAULT_SERVER}`);
  }
}

export async function openConnection(options: ConnectOptions): Promise<Connection> {
  assertServerAddress(options.server);
  const instance = toInstance(options.instance ?? '');
  const fn = options.digestFunction ?? 'SHA256';
  const clients = createClients(options.server, options.security ?? {});

  let maxBatchBytes: number;
  let zstd: ZstdUse = { stream: false, batchUpdate: false, batchRead: false };
  try {
    const capabilities = await unary<ServerCapabilities>(
      clients.capabilities,
      'GetCapabilities',
      { instanceName: instance },
      options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS,
    );
    maxBatchBytes = checkCapabilities(capabilities, fn, options.server);
    if (options.compression === 'zstd') zstd = zstdUse(capabilities);
  } catch (error) {
    closeClients(clients);
    throw connectFailure(options.server, error);
  }
  return createConnection(options.server, instance, fn, maxBatchBytes, clients, zstd);
}

/** Retries `call` while the server answers UNAVAILABLE, at most RETRY_DELAYS_MS.length times. */
export async function withRetries<T>(call: () => Promise<T>): Promise<T> {
  for (const delayMs of RETRY_DELAYS_MS) {
    try {
      return await call();
    } catch (error) {
      if (!isServiceError(error) || error.code !== status.UNAVAILABLE) throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, delayMs));
  }
  return call();
}

interface Clients {
  readonly capabilities: Untyped;
  readonly cas: Untyped;
  readonly byteStream: Untyped;
}

function createClients(server: string, security: ClientSecurity): Clients {
  const options = {
    'grpc.max_receive_message_length': MAX_RECEIVE_MESSAGE_BYTES,
    // An interceptor rather than call credentials: grpc-js refuses those on a plaintext channel,
    // and a token over plaintext is legitimate on loopback or behind a TLS-terminating proxy.
    interceptors: security.token === undefined ? [] : [bearerInterceptor(security.token)],
  };
  const channel = channelCredentials(security);
  const make = (definition: Parameters<typeof makeClientConstructor>[0]) =>
    new (makeClientConstructor(definition, 'service'))(
      server,
      channel,
      options,
    ) as unknown as Untyped;
  return {
    capabilities: make(capabilitiesService),
    cas: make(casService),
    byteStream: make(byteStreamService),
  };
}

function channelCredentials({ tls }: ClientSecurity): ChannelCredentials {
  if (tls === undefined) return credentials.createInsecure();
  return credentials.createSsl(tls.ca ?? null, tls.key ?? null, tls.cert ?? null);
}

function bearerInterceptor(token: string): Interceptor {
  return (options, nextCall) =>
    new InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        metadata.set('authorization', `Bearer ${token}`);
        next(metadata, listener);
      },
    });
}

function closeClients(clients: Clients): void {
  for (const client of Object.values(clients)) client.close();
}

function createConnection(
  server: string,
  instance: string,
  fn: DigestFunction,
  maxBatchBytes: number,
  clients: Clients,
  zstd: ZstdUse,
): Connection {
  const common = { instanceName: instance, digestFunction: fn };
  const prefix = instance === '' ? '' : `${instance}/`;
  // Only functions the server cannot tell apart by hash length carry a segment.
  const fnSegment = fn === 'BLAKE3' ? 'blake3/' : '';
  const blobPath = (d: Digest) => `blobs/${fnSegment}${d.hash}/${d.size}`;
  const zstdPath = (d: Digest) => `compressed-blobs/zstd/${fnSegment}${d.hash}/${d.size}`;

  return {
    server,
    instance,
    digestFunction: fn,
    maxBatchBytes,

    async findMissing(digests) {
      const missing: Digest[] = [];
      for (let at = 0; at < digests.length; at += MAX_FIND_MISSING_DIGESTS) {
        const slice = digests.slice(at, at + MAX_FIND_MISSING_DIGESTS);
        const response = await withRetries(() =>
          unary<FindMissingBlobsResponse>(clients.cas, 'FindMissingBlobs', {
            ...common,
            blobDigests: slice.map(toWireDigest),
          }),
        );
        for (const wire of response.missingBlobDigests) missing.push(fromWire(fn, wire));
      }
      return missing;
    },

    async batchUpdate(blobs) {
      const requests = blobs.map((b) => {
        // Sent compressed only where that saves bytes.
        const packed = zstd.batchUpdate && b.data.length > 0 ? compressWhole(b.data) : undefined;
        return packed && packed.length < b.data.length
          ? { digest: toWireDigest(b.digest), data: packed, compressor: 'ZSTD' }
          : { digest: toWireDigest(b.digest), data: b.data };
      });
      const response = await withRetries(() =>
        unary<BatchUpdateBlobsResponse>(clients.cas, 'BatchUpdateBlobs', { ...common, requests }),
      );
      for (const item of response.responses) {
        if (item.status && item.status.code !== status.OK) {
          const what = `uploading blob ${digestText(item.digest)}`;
          throw rpcFailure(what, item.status.code, item.status.message);
        }
      }
      if (response.responses.length !== blobs.length) {
        throw failure(`server answered ${response.responses.length} of ${blobs.length} uploads`);
      }
    },

    async batchRead(digests) {
      const response = await withRetries(() =>
        unary<BatchReadBlobsResponse>(clients.cas, 'BatchReadBlobs', {
          ...common,
          digests: digests.map(toWireDigest),
          acceptableCompressors: zstd.batchRead ? ['ZSTD'] : [],
        }),
      );
      const blobs: BlobData[] = [];
      for (const item of response.responses) {
        const what = `reading blob ${digestText(item.digest)}`;
        if (item.status && item.status.code !== status.OK) {
          throw rpcFailure(what, item.status.code, item.status.message);
        }
        const digest = fromWire(fn, item.digest);
        const data =
          item.compressor === 'ZSTD'
            ? decodeOrFail(item.data, digest.size, `reading blob ${digestText(item.digest)}`)
            : item.data;
        await assertContent(digest, data);
        blobs.push({ digest, data });
      }
      if (blobs.length !== digests.length) {
        throw failure(`server answered ${blobs.length} of ${digests.length} reads`);
      }
      return blobs;
    },

    write(digest, source) {
      const path = zstd.stream ? zstdPath(digest) : blobPath(digest);
      const name = `${prefix}uploads/${randomUUID()}/${path}`;
      const start = clients.byteStream.Write as StartWrite;
      const open: StartWrite = (reply) => start.call(clients.byteStream, reply);
      return writeBlob(open, name, digest, source, zstd.stream);
    },

    async *read(digest, offset = 0) {
      const start = clients.byteStream.Read as (request: object) => ClientReadableStream<unknown>;
      const path = zstd.stream ? zstdPath(digest) : blobPath(digest);
      const call = start.call(clients.byteStream, {
        resourceName: `${prefix}${path}`,
        readOffset: offset,
        readLimit: 0,
      });
      // read_offset counts uncompressed bytes; the reply is a zstd stream of the rest.
      const what = `reading blob ${digest.hash}/${digest.size}`;
      const decoder = zstd.stream ? new ZstdDecoder(digest.size - offset, what) : undefined;
      try {
        for await (const message of call as AsyncIterable<ReadResponse>) {
          if (!decoder) yield message.data;
          else yield* decodeChunk(decoder, message.data);
        }
        if (decoder) endOrFail(decoder);
      } finally {
        call.cancel();
      }
    },

    close: () => closeClients(clients),
  };
}

async function assertContent(digest: Digest, data: Buffer): Promise<void> {
  const hash = await hashBytes(digest.fn, data);
  if (data.length !== digest.size || hash !== digest.hash) {
    throw failure(
      `blob ${digest.hash}/${digest.size} arrived as ${data.length} bytes hashing to ${hash}: ` +
        'digest mismatch',
    );
  }
}

function unary<Res>(
  client: Untyped,
  method: string,
  request: object,
  timeoutMs = CALL_TIMEOUT_MS,
): Promise<Res> {
  return new Promise<Res>((resolve, reject) => {
    const call = client[method] as UnaryMethod;
    call.call(client, request, { deadline: Date.now() + timeoutMs }, (error, response) =>
      error ? reject(error) : resolve(response as Res),
    );
  });
}

function toInstance(instance: string): string {
  try {
    return parseInstanceName(instance);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw usageError(`instance name "${instance}" is not valid: ${reason}`);
  }
}

/** Where compression was asked for, and the server's capabilities allow it. */
interface ZstdUse {
  /** compressed-blobs/zstd ByteStream reads and writes: ZSTD is in its compressors. */
  readonly stream: boolean;
  /** zstd entries in BatchUpdateBlobs: ZSTD is in its batch update compressors. */
  readonly batchUpdate: boolean;
  /** BatchReadBlobs lists ZSTD as acceptable; the server may still answer uncompressed. */
  readonly batchRead: boolean;
}

function zstdUse(capabilities: ServerCapabilities): ZstdUse {
  const cache = capabilities.cacheCapabilities;
  return {
    stream: (cache?.supportedCompressors ?? []).includes('ZSTD'),
    batchUpdate: (cache?.supportedBatchUpdateCompressors ?? []).includes('ZSTD'),
    batchRead: true,
  };
}

/** The decoder's pieces of one message; a stream that does not decode is a ClientError. */
function* decodeChunk(decoder: ZstdDecoder, data: Buffer): Generator<Buffer> {
  try {
    yield* decoder.write(data);
  } catch (error) {
    throw failure(error instanceof Error ? error.message : String(error));
  }
}

function endOrFail(decoder: ZstdDecoder): void {
  try {
    decoder.end();
  } catch (error) {
    throw failure(error instanceof Error ? error.message : String(error));
  }
}

function decodeOrFail(data: Buffer, size: number, what: string): Buffer {
  try {
    return decompressWhole(data, size, what);
  } catch (error) {
    throw failure(error instanceof Error ? error.message : String(error));
  }
}
