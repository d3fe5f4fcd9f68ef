// Requests whose bytes are not a valid encoding of their message type. They are a client's error,
// so the client must hear INVALID_ARGUMENT. grpc-js answers a deserializer that throws with
// INTERNAL instead, which says the server is broken and which clients such as Bazel retry. So the
// server's deserializers never throw (`decodingNeverThrows`, applied in proto.ts): they hand on an
// UndecodableRequest, and `refuseUndecodableRequests`, a server interceptor, answers it before any
// handler sees it.
import {
  ServerInterceptingCall,
  type ServerInterceptingCallInterface,
  type ServerInterceptor,
  type ServiceDefinition,
  status,
} from '@grpc/grpc-js';

export class UndecodableRequest {
  readonly message: string;

  constructor(method: string, typeName: string, reason: string) {
    this.message = `${method} request is not a valid ${typeName} message: ${reason}`;
  }
}

/** The same service definition, with request deserializers that never throw. */
export function decodingNeverThrows(definition: ServiceDefinition): ServiceDefinition {
  const methods = Object.entries(definition).map(([name, method]) => {
    const decode = method.requestDeserialize;
    const typeName = typeNameOf(method, name);
    const requestDeserialize = (bytes: Buffer): unknown => {
      try {
        return decode(bytes);
      } catch (error) {
        const reason = error instanceof Error ? error.message : String(error);
        return new UndecodableRequest(name, typeName, reason);
      }
    };
    return [name, { ...method, requestDeserialize }];
  });
  return Object.fromEntries(methods) as ServiceDefinition;
}

/** Ends a call with INVALID_ARGUMENT at the first message that could not be decoded. */
export const refuseUndecodableRequests: ServerInterceptor = (
  _method,
  call: ServerInterceptingCallInterface,
) =>
  new ServerInterceptingCall(call, {
    start: (next) =>
      next({
        onReceiveMessage: (message, pass) => {
          if (!(message instanceof UndecodableRequest)) {
            pass(message);
            return;
          }
          call.sendStatus({ code: status.INVALID_ARGUMENT, details: message.message });
        },
      }),
  });

/** proto-loader records the request type's short name; fall back to the method's name. */
function typeNameOf(method: object, name: string): string {
  const type = (method as { requestType?: { type?: { name?: unknown } } }).requestType?.type;
  return typeof type?.name === 'string' ? type.name : `${name}Request`;
}
