// Loads Tessera's .proto files (under <repo>/proto) twice, from the same sources and with the same
// conversion options: once through @grpc/proto-loader for the gRPC server and clients, and once as
// a protobufjs Root for encoding messages that are stored rather than sent (ActionResult, Tree,
// Directory). Objects from either path are interchangeable: camelCase fields, int64 as number,
// enums as names (an enum number this build does not know stays a number), bytes as Buffer, and
// every field present with its default.
//
// Loading happens once, at import. A broken or missing .proto file fails the import, which is
// what should stop the server from starting.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import { withReadResponseEncoder } from './read-response.ts';
import { decodingNeverThrows } from './undecodable.ts';

export type * from './messages.ts';

/** Absolute path of the repository's proto directory, the only include path. */
export const PROTO_DIR = fileURLToPath(new URL('../../proto', import.meta.url));

/** Entry files; everything they import is found through PROTO_DIR or protobufjs' bundled WKTs. */
const PROTO_FILES = [
  'build/bazel/remote/execution/v2/remote_execution.proto',
  'build/bazel/remote/asset/v1/remote_asset.proto',
  'google/bytestream/bytestream.proto',
  'grpc/health/v1/health.proto',
];

/** How decoded messages look. Shared by grpc-js (via proto-loader) and decodeMessage. */
const CONVERSION = {
  longs: Number,
  enums: String,
  bytes: Buffer,
  defaults: true,
  oneofs: true,
} as const;

/** The proto-loader result, keyed by fully qualified service and message name. */
export const packageDefinition: protoLoader.PackageDefinition = protoLoader.loadSync(PROTO_FILES, {
  ...CONVERSION,
  keepCase: false,
  includeDirs: [PROTO_DIR],
});

/**
 * The nested namespace grpc-js builds from packageDefinition (clients as constructors, services
 * with `.service`). Typed loosely: callers that need a client cast to the shape they use.
 */
export const grpcObject: grpc.GrpcObject = grpc.loadPackageDefinition(packageDefinition);

/**
 * A service's definition. A request that does not decode becomes an UndecodableRequest, which the
 * server answers with INVALID_ARGUMENT (see undecodable.ts); clients use only the other halves.
 */
function serviceDefinition(fullName: string): grpc.ServiceDefinition {
  const definition = packageDefinition[fullName];
  if (definition === undefined || 'format' in definition) {
    throw new Error(`service ${fullName} is not defined in ${PROTO_DIR}`);
  }
  return decodingNeverThrows(definition as grpc.ServiceDefinition);
}

const REAPI_V2 = 'build.bazel.remote.execution.v2';

export const capabilitiesService = serviceDefinition(`${REAPI_V2}.Capabilities`);
export const casService = serviceDefinition(`${REAPI_V2}.ContentAddressableStorage`);
export const actionCacheService = serviceDefinition(`${REAPI_V2}.ActionCache`);
export const byteStreamService = withReadResponseEncoder(
  serviceDefinition('google.bytestream.ByteStream'),
);
export const fetchService = serviceDefinition('build.bazel.remote.asset.v1.Fetch');
export const pushService = serviceDefinition('build.bazel.remote.asset.v1.Push');
export const healthService = serviceDefinition('grpc.health.v1.Health');

function loadRoot(): protobuf.Root {
  const root = new protobuf.Root();
  // Same lookup rule proto-loader applies with includeDirs; the google/protobuf well-known types
  // never reach this hook because protobufjs serves them from its bundled copies.
  root.resolvePath = (_origin, target) =>
    path.isAbsolute(target) ? target : path.join(PROTO_DIR, target);
  root.loadSync(PROTO_FILES, { keepCase: false });
  root.resolveAll();
  return root;
}

/** protobufjs view of the same files, for messages Tessera encodes itself. */
export const protoRoot: protobuf.Root = loadRoot();

const typeCache = new Map<string, protobuf.Type>();

/**
 * The message type with this fully qualified name (`build.bazel.remote.execution.v2.Tree`; a
 * leading dot is accepted). Throws if the name is unknown or names something else.
 */
export function lookupMessageType(typeName: string): protobuf.Type {
  const cached = typeCache.get(typeName);
  if (cached !== undefined) return cached;

  const found = protoRoot.lookup(typeName.startsWith('.') ? typeName : `.${typeName}`);
  if (!(found instanceof protobuf.Type)) {
    throw new Error(`${typeName} is not a message type in ${PROTO_DIR}`);
  }
  typeCache.set(typeName, found);
  return found;
}

/**
 * Encodes a plain object, shaped as grpc-js hands it to handlers, into wire bytes. Conversion is
 * the lenient one proto-loader uses for outgoing messages: missing fields take their defaults,
 * enum names and numbers both work. Throws a TypeError when a field has an impossible type.
 */
export function encodeMessage(typeName: string, obj: object): Buffer {
  const type = lookupMessageType(typeName);
  const bytes = type.encode(type.fromObject(obj)).finish();
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}

/**
 * Decodes wire bytes into the plain object grpc-js would hand a handler. Throws when the bytes
 * are not a valid encoding of the type. The result is not validated beyond that: the caller's T
 * is a promise about shape, not about content.
 */
export function decodeMessage<T>(typeName: string, bytes: Uint8Array): T {
  const type = lookupMessageType(typeName);
  return type.toObject(type.decode(bytes), CONVERSION) as T;
}
