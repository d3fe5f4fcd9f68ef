// A client for hostile requests: every method of every service Tessera serves, on one channel,
// with an identity request serializer. A request given as a Buffer goes out as exactly those
// bytes (garbage included); a request given as an object is encoded with the method's own
// serializer first. Every call resolves with its outcome, never rejects.
import {
  type Client,
  type ClientReadableStream,
  type ClientWritableStream,
  credentials,
  type MethodDefinition,
  makeGenericClientConstructor,
  type ServiceError,
  status,
} from '@grpc/grpc-js';
import {
  actionCacheService,
  byteStreamService,
  capabilitiesService,
  casService,
  fetchService,
  pushService,
} from '../../src/grpc/proto.ts';

type AnyMethod = MethodDefinition<unknown, unknown>;

/** Method names are unique across the services, so one name picks one method. */
const METHODS: Record<string, AnyMethod> = Object.fromEntries(
  [
    capabilitiesService,
    casService,
    actionCacheService,
    byteStreamService,
    fetchService,
    pushService,
  ].flatMap((service) => Object.entries(service) as [string, AnyMethod][]),
);

export type Rpc =
  | 'GetCapabilities'
  | 'FindMissingBlobs'
  | 'BatchUpdateBlobs'
  | 'BatchReadBlobs'
  | 'GetTree'
  | 'SplitBlob'
  | 'SpliceBlob'
  | 'GetActionResult'
  | 'UpdateActionResult'
  | 'Read'
  | 'Write'
  | 'QueryWriteStatus'
  | 'FetchBlob'
  | 'FetchDirectory'
  | 'PushBlob'
  | 'PushDirectory';

export const RPCS = Object.keys(METHODS) as Rpc[];

/** A message as a plain object in the shape grpc-js uses, or raw bytes sent as they are. */
export type RawRequest = object | Buffer;

export interface Outcome {
  readonly code: status;
  readonly details: string;
  /** Decoded response messages: one for unary and client-streaming calls, any for streams. */
  readonly responses: unknown[];
}

export interface RawClient {
  /**
   * One request for unary and server-streaming methods; the whole stream for Write, where
   * `between(i)`, if given, runs after message i is sent and before the next one.
   */
  call(
    rpc: Rpc,
    requests: readonly RawRequest[],
    between?: (index: number) => Promise<void>,
  ): Promise<Outcome>;
  close(): void;
}

const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

export function connectRaw(address: string): RawClient {
  const identity = (bytes: Buffer) => bytes;
  const definition = Object.fromEntries(
    Object.entries(METHODS).map(([name, m]) => [name, { ...m, requestSerialize: identity }]),
  );
  const Constructor = makeGenericClientConstructor(definition, 'hostile');
  const client = new Constructor(address, credentials.createInsecure(), {
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  }) as Client & Record<string, (...args: unknown[]) => unknown>;

  return {
    call(rpc, requests, between) {
      const method = METHODS[rpc];
      if (!method) throw new Error(`no method ${rpc}`);
      const bytes = requests.map((r) => (Buffer.isBuffer(r) ? r : method.requestSerialize(r)));
      const start = client[rpc] as (...args: unknown[]) => unknown;
      return new Promise<Outcome>((resolve, reject) => {
        const responses: unknown[] = [];
        const settle = (error: ServiceError | null) =>
          resolve(
            error
              ? { code: error.code, details: error.details, responses }
              : { code: status.OK, details: 'OK', responses },
          );
        const collect = (error: ServiceError | null, response: unknown) => {
          if (!error) responses.push(response);
          settle(error);
        };
        if (method.requestStream) {
          const stream = start.call(client, collect) as ClientWritableStream<Buffer>;
          sendAll(stream, bytes, between).catch(reject);
        } else if (method.responseStream) {
          const stream = start.call(client, bytes[0]) as ClientReadableStream<unknown>;
          stream.on('data', (message: unknown) => responses.push(message));
          stream.on('error', (error: ServiceError) => settle(error));
          stream.on('end', () => settle(null));
        } else {
          start.call(client, bytes[0], collect);
        }
      });
    },
    close() {
      client.close();
    },
  };
}

async function sendAll(
  stream: ClientWritableStream<Buffer>,
  messages: readonly Buffer[],
  between: ((index: number) => Promise<void>) | undefined,
): Promise<void> {
  for (const [i, message] of messages.entries()) {
    stream.write(message);
    await between?.(i);
  }
  stream.end();
}
