// Wrappers that give every RPC handler the same shape: access control first, a child logger with
// the method name, one place that turns anything thrown into a status, and duration logging at
// debug level.
//
// Access control cannot be left out: each wrapper takes the method's permission and either a
// function that finds the request's instance name (checked before the handler runs) or, for a
// client stream whose instance arrives with its first message, hands the handler an `authorize`
// to call. The server refuses at startup to register a method that was not built by one of these
// wrappers (see permissionOf and src/grpc/server.ts).
import type {
  handleClientStreamingCall,
  handleServerStreamingCall,
  handleUnaryCall,
  ServerReadableStream,
  ServerUnaryCall,
  ServerWritableStream,
  sendUnaryData,
} from '@grpc/grpc-js';
import type { AccessControl, Caller } from '../auth/access-control.ts';
import type { Permission } from '../auth/permissions.ts';
import { CasError } from '../cas/errors.ts';
import type { Logger } from '../observability/logger.ts';
import { parseInstanceName } from './resource-name.ts';
import { toServiceError } from './status.ts';

/** What every service needs from the server around it. */
export interface RpcContext {
  readonly log: Logger;
  readonly access: AccessControl;
}

export interface Route<Req> {
  readonly method: string;
  readonly permission: Permission;
  /** The validated instance name of the request; throws INVALID_ARGUMENT. */
  readonly instance: (request: Req) => string;
}

export interface StreamRoute {
  readonly method: string;
  readonly permission: Permission;
}

/** Checks `permission` for this call on an instance; throws PERMISSION_DENIED. */
export type Authorize = (instance: string) => void;

/** The instance of a request message with an `instance_name` field. */
export const instanceField = (request: { instanceName?: unknown }): string =>
  parseInstanceName(request.instanceName);

/** The route of a method whose request names its instance in `instance_name`. */
export function route(method: string, permission: Permission): Route<{ instanceName?: unknown }> {
  return { method, permission, instance: instanceField };
}

const PERMISSION_OF = new WeakMap<object, Permission>();

/** The permission a handler was registered with; undefined if no wrapper here built it. */
export function permissionOf(handler: unknown): Permission | undefined {
  return typeof handler === 'function' ? PERMISSION_OF.get(handler) : undefined;
}

function guarded<H extends object>(permission: Permission, handler: H): H {
  PERMISSION_OF.set(handler, permission);
  return handler;
}

export function unary<Req, Res>(
  rpc: RpcContext,
  route: Route<Req>,
  handler: (request: Req, call: ServerUnaryCall<Req, Res>, log: Logger) => Promise<Res>,
): handleUnaryCall<Req, Res> {
  return guarded(route.permission, (call: ServerUnaryCall<Req, Res>, cb: sendUnaryData<Res>) => {
    let rpcLog = rpc.log.child({ method: route.method });
    const started = performance.now();
    const run = async () => {
      rpcLog = admit(rpc, route, call.metadata, call.request, rpcLog);
      return handler(call.request, call, rpcLog);
    };
    run().then(
      (response) => {
        rpcLog.debug({ ms: elapsed(started) }, 'ok');
        cb(null, response);
      },
      (error: unknown) => cb(toServiceError(error, rpcLog)),
    );
  });
}

export function serverStreaming<Req, Res>(
  rpc: RpcContext,
  route: Route<Req>,
  handler: (call: ServerWritableStream<Req, Res>, log: Logger) => Promise<void>,
): handleServerStreamingCall<Req, Res> {
  return guarded(route.permission, (call: ServerWritableStream<Req, Res>) => {
    let rpcLog = rpc.log.child({ method: route.method });
    const started = performance.now();
    const run = async () => {
      rpcLog = admit(rpc, route, call.metadata, call.request, rpcLog);
      return handler(call, rpcLog);
    };
    run().then(
      () => {
        rpcLog.debug({ ms: elapsed(started) }, 'ok');
        call.end();
      },
      (error: unknown) => {
        if (call.cancelled) {
          rpcLog.debug('client cancelled');
          return;
        }
        call.emit('error', toServiceError(error, rpcLog));
      },
    );
  });
}

/**
 * A client stream: the caller is authenticated before the first message is read; the handler
 * must call `authorize` with the instance as soon as it has parsed it, before acting on the
 * request. A handler that answers without having authorized answers INTERNAL instead.
 */
export function clientStreaming<Req, Res>(
  rpc: RpcContext,
  route: StreamRoute,
  handler: (
    call: ServerReadableStream<Req, Res>,
    log: Logger,
    authorize: Authorize,
  ) => Promise<Res>,
): handleClientStreamingCall<Req, Res> {
  return guarded(
    route.permission,
    (call: ServerReadableStream<Req, Res>, cb: sendUnaryData<Res>) => {
      let rpcLog = rpc.log.child({ method: route.method });
      const started = performance.now();
      const run = async () => {
        const caller = rpc.access.authenticate(route.method, call.metadata);
        rpcLog = withCaller(rpcLog, caller);
        let authorized = false;
        const response = await handler(call, rpcLog, (instance) => {
          rpc.access.authorize(caller, route.method, instance, route.permission);
          authorized = true;
        });
        if (!authorized) {
          throw new CasError('internal', `${route.method} answered without checking access`);
        }
        return response;
      };
      run().then(
        (response) => {
          rpcLog.debug({ ms: elapsed(started) }, 'ok');
          cb(null, response);
        },
        (error: unknown) => cb(toServiceError(error, rpcLog)),
      );
    },
  );
}

/** Authenticates the call and authorizes it for the request's instance; returns its logger. */
function admit<Req>(
  rpc: RpcContext,
  route: Route<Req>,
  metadata: ServerUnaryCall<Req, unknown>['metadata'],
  request: Req,
  log: Logger,
): Logger {
  const caller = rpc.access.authenticate(route.method, metadata);
  rpc.access.authorize(caller, route.method, route.instance(request), route.permission);
  return withCaller(log, caller);
}

function withCaller(log: Logger, caller: Caller): Logger {
  return caller.name === undefined ? log : log.child({ caller: caller.name });
}

/**
 * Sends one message on a server stream, waiting while the client's window is full. Resolves false
 * when the client has gone away (the caller should stop producing).
 */
export async function sendWithBackpressure<Res>(
  call: ServerWritableStream<unknown, Res>,
  message: Res,
): Promise<boolean> {
  if (call.cancelled || call.destroyed) return false;
  if (call.write(message)) return true;
  return new Promise<boolean>((resolve) => {
    const done = (ok: boolean) => {
      call.off('drain', onDrain);
      call.off('cancelled', onGone);
      call.off('close', onGone);
      resolve(ok);
    };
    const onDrain = () => done(true);
    const onGone = () => done(false);
    call.on('drain', onDrain);
    call.on('cancelled', onGone);
    call.on('close', onGone);
  });
}

function elapsed(started: number): number {
  return Math.round(performance.now() - started);
}
