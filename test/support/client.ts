// A small REAPI client for tests, built on the same protos as the server, with promise helpers for
// the calls the suites make again and again.
import { createHash, randomUUID } from 'node:crypto';
import {
  type ChannelCredentials,
  type Client,
  type ClientReadableStream,
  type ClientWritableStream,
  credentials,
  InterceptingCall,
  type Interceptor,
  type Metadata,
  makeClientConstructor,
  type ServiceError,
  status,
} from '@grpc/grpc-js';
import {
  actionCacheService,
  byteStreamService,
  capabilitiesService,
  casService,
} from '../../src/grpc/proto.ts';

type WriteCallback = (error: ServiceError | null, response: { committedSize: number }) => void;
export type Untyped = Client & Record<string, (...args: unknown[]) => unknown>;

export interface Digest {
  hash: string;
  sizeBytes: number;
}

export interface TestClient {
  readonly cas: Untyped;
  readonly byteStream: Untyped;
  readonly actionCache: Untyped;
  readonly capabilities: Untyped;
  unary<Res>(client: Untyped, method: string, request: object): Promise<Res>;
  /**
   * Uploads with ByteStream Write in messages of `chunkBytes` (a list: its sizes in turn, over
   * and over); returns committed_size.
   */
  write(
    name: string,
    data: Buffer,
    options?: { chunkBytes?: number | readonly number[]; offset?: number; finish?: boolean },
  ): Promise<number>;
  /** Reads with ByteStream Read; resolves with every byte, rejects with the status on failure. */
  read(
    name: string,
    options?: { offset?: number; limit?: number },
  ): Promise<{ data: Buffer; chunks: number[] }>;
  close(): void;
}

const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

export interface ConnectOptions {
  /** TLS credentials; plaintext when absent. */
  readonly credentials?: ChannelCredentials;
  /** Metadata sent with every call, as Bazel's --remote_header sends it (e.g. authorization). */
  readonly headers?: Readonly<Record<string, string>>;
  /** Extra channel options (e.g. grpc.ssl_target_name_override). */
  readonly channelOptions?: Readonly<Record<string, string | number>>;
}

/** An interceptor that adds `headers` to the metadata of every call. */
export function headerInterceptor(headers: Readonly<Record<string, string>>): Interceptor {
  return (options, nextCall) =>
    new InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        for (const [name, value] of Object.entries(headers)) metadata.set(name, value);
        next(metadata, listener);
      },
    });
}

export function connect(address: string, connectOptions: ConnectOptions = {}): TestClient {
  const { headers } = connectOptions;
  const options = {
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
    ...connectOptions.channelOptions,
    ...(headers ? { interceptors: [headerInterceptor(headers)] } : {}),
  };
  const make = (definition: Parameters<typeof makeClientConstructor>[0]) =>
    new (makeClientConstructor(definition, 'svc'))(
      address,
      connectOptions.credentials ?? credentials.createInsecure(),
      options,
    ) as unknown as Untyped;
  const cas = make(casService);
  const byteStream = make(byteStreamService);
  const actionCache = make(actionCacheService);
  const capabilities = make(capabilitiesService);

  const unary = callUnary;

  return {
    cas,
    byteStream,
    actionCache,
    capabilities,
    unary,
    write(name, data, { chunkBytes = 64 * 1024, offset = 0, finish = true } = {}) {
      return new Promise<number>((resolve, reject) => {
        const start = byteStream.Write as (cb: WriteCallback) => ClientWritableStream<object>;
        const call = start.call(byteStream, (error, response) =>
          error ? reject(error) : resolve(response.committedSize),
        );
        let at = offset;
        const sizes = typeof chunkBytes === 'number' ? [chunkBytes] : chunkBytes;
        let message = 0;
        if (data.length === offset) {
          call.write({
            resourceName: name,
            writeOffset: at,
            data: Buffer.alloc(0),
            finishWrite: finish,
          });
        }
        while (at < data.length) {
          const end = Math.min(at + (sizes[message++ % sizes.length] as number), data.length);
          call.write({
            resourceName: at === offset ? name : '',
            writeOffset: at,
            data: data.subarray(at, end),
            finishWrite: finish && end === data.length,
          });
          at = end;
        }
        call.end();
      });
    },
    read(name, { offset = 0, limit = 0 } = {}) {
      return new Promise((resolve, reject) => {
        const call = (
          byteStream.Read as (req: object) => ClientReadableStream<{ data: Buffer }>
        ).call(byteStream, {
          resourceName: name,
          readOffset: offset,
          readLimit: limit,
        });
        const parts: Buffer[] = [];
        const chunks: number[] = [];
        call.on('data', (message: { data: Buffer }) => {
          parts.push(message.data);
          chunks.push(message.data.length);
        });
        call.on('error', reject);
        call.on('end', () => resolve({ data: Buffer.concat(parts), chunks }));
      });
    },
    close() {
      for (const client of [cas, byteStream, actionCache, capabilities]) client.close();
    },
  };
}

/** Calls a unary method of a loosely typed client; rejects with the ServiceError. */
export function callUnary<Res>(client: Untyped, method: string, request: object): Promise<Res> {
  return new Promise<Res>((resolve, reject) => {
    const fn = client[method] as (
      req: object,
      cb: (e: ServiceError | null, r: Res) => void,
    ) => void;
    fn.call(client, request, (error, response) => (error ? reject(error) : resolve(response)));
  });
}

/** Where the server would let an upload resume (QueryWriteStatus); undefined for NOT_FOUND. */
export async function writeProgress(client: TestClient, name: string): Promise<number | undefined> {
  try {
    const reply = await client.unary<{ committedSize: number }>(
      client.byteStream,
      'QueryWriteStatus',
      { resourceName: name },
    );
    return reply.committedSize;
  } catch (error) {
    if (codeOf(error) === status.NOT_FOUND) return undefined;
    throw error;
  }
}

/** Uploads `data` whole with ByteStream Write in 256 KiB messages; resolves with its digest. */
export async function uploadWhole(client: TestClient, data: Buffer): Promise<Digest> {
  const digest = digestOf(data);
  await client.write(uploadName(digest), data, { chunkBytes: 256 * 1024 });
  return digest;
}

/** The hashes FindMissingBlobs reports missing among `digests`. */
export async function missingHashes(
  client: TestClient,
  digests: readonly Digest[],
): Promise<string[]> {
  const reply = await client.unary<{ missingBlobDigests: Digest[] }>(
    client.cas,
    'FindMissingBlobs',
    { blobDigests: digests },
  );
  return reply.missingBlobDigests.map((digest) => digest.hash);
}

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

export function digestOf(data: Buffer): Digest {
  return { hash: sha256(data), sizeBytes: data.length };
}

/** Deterministic, incompressible-looking bytes. */
export function randomBlob(size: number, seed = randomUUID()): Buffer {
  const out = Buffer.alloc(size);
  let block = createHash('sha256').update(seed).digest();
  for (let at = 0; at < size; at += block.length) {
    block.copy(out, at);
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

export function uploadName(digest: Digest, instance = ''): string {
  const prefix = instance ? `${instance}/` : '';
  return `${prefix}uploads/${randomUUID()}/blobs/${digest.hash}/${digest.sizeBytes}`;
}

export function blobName(digest: Digest, instance = ''): string {
  const prefix = instance ? `${instance}/` : '';
  return `${prefix}blobs/${digest.hash}/${digest.sizeBytes}`;
}

export function codeOf(error: unknown): number | undefined {
  return (error as ServiceError | undefined)?.code;
}

export type { Metadata };
