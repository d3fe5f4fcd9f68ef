// Wrappers that give every RPC handler the same shape: access control first, a child logger with
// the method name, one place that turns anything thrown into a status, and one place that records
// each finished call (tessera_rpcs_total, tessera_rpc_duration_seconds, transfers in flight; see
// src/observability/metrics.ts) and logs it in one line, so no service can forget to.
//
// Logs: each call's child logger carries the method, the caller's token name, the instance, the
// client's RequestMetadata (tool, invocation, action, target; see request-metadata.ts) and what the
// handler adds with `annotate` (digest, counts). One line per finished call: `info` "ok" with
// status, ms and blob bytes; a failure's line is its error message, at `info` for client mistakes
// and `error` for server faults (status.ts). Health checks log at `debug`. Every REAPI call is
// `info`, FindMissingBlobs and batches included: one line per call is what ties a slow or failed
// build to the server, and `logLevel: warn` silences them all.
//
// Access control cannot be left out: each wrapper takes the method's permission and either a
// function that finds the request's instance name (checked before the handler runs) or, for a
// client stream whose instance arrives with its first message, hands the handler an `authorize`
// to call. The server refuses at startup to register a method that was not built by one of these
// wrappers (see permissionOf and src/grpc/server.ts).
import {
  type handleClientStreamingCall,
  type handleServerStreamingCall,
  type handleUnaryCall,
  type Metadata,
  type ServerReadableStream,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceError,
  type sendUnaryData,
  status,
} from '@grpc/grpc-js';
import type { AccessControl, Caller } from '../auth/access-control.ts';
import type { RoutePermission } from '../auth/permissions.ts';
import { CasError, toCasError } from '../cas/errors.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import { runMarked } from '../regions/peer-call.ts';
import { readRequestMetadata } from './request-metadata.ts';
import { parseInstanceName } from './resource-name.ts';
import { grpcCodeOf, toServiceError } from './status.ts';

/** What every service needs from the server around it. */
export interface RpcContext {
  readonly log: Logger;
  readonly access: AccessControl;
  readonly metrics: Metrics;
}

/** Calls that move blobs are counted in tessera_transfers_in_flight. */
export type Transfer = 'upload' | 'download';

export interface StreamRoute {
  readonly method: string;
  /** `public`: no credentials are asked for or checked (health checks only). */
  readonly permission: RoutePermission;
  readonly transfer?: Transfer;
}

export interface Route<Req> extends StreamRoute {
  /** The validated instance name of the request; throws INVALID_ARGUMENT. */
  readonly instance: (request: Req) => string;
}

/** Checks `permission` for this call on an instance; throws PERMISSION_DENIED. */
export type Authorize = (instance: string) => void;

/** The instance of a request message with an `instance_name` field. */
export const instanceField = (request: { instanceName?: unknown }): string =>
  parseInstanceName(request.instanceName);

/** The route of a method whose request names its instance in `instance_name`. */
export function route(
  method: string,
  permission: RoutePermission,
  transfer?: Transfer,
): Route<{ instanceName?: unknown }> {
  return { method, permission, instance: instanceField, ...(transfer ? { transfer } : {}) };
}

/** The route of a method anyone may call without credentials. */
export function publicRoute(method: string): Route<unknown> {
  return { method, permission: 'public', instance: () => '' };
}

const PERMISSION_OF = new WeakMap<object, RoutePermission>();

/** The permission a handler was registered with; undefined if no wrapper here built it. */
export function permissionOf(handler: unknown): RoutePermission | undefined {
  return typeof handler === 'function' ? PERMISSION_OF.get(handler) : undefined;
}

function guarded<H extends object>(permission: RoutePermission, handler: H): H {
  PERMISSION_OF.set(handler, permission);
  return handler;
}

export function unary<Req, Res>(
  rpc: RpcContext,
  route: Route<Req>,
  handler: (request: Req, call: ServerUnaryCall<Req, Res>, log: Logger) => Promise<Res>,
): handleUnaryCall<Req, Res> {
  return guarded(route.permission, (call: ServerUnaryCall<Req, Res>, cb: sendUnaryData<Res>) => {
    const record = begin(rpc, route, call);
    const run = async () => {
      record.log = admit(rpc, route, call.metadata, call.request, record.log);
      return handler(call.request, call, record.log);
    };
    runMarked(call.metadata, run).then(
      (response) => {
        finish(record, undefined);
        cb(null, response);
      },
      (error: unknown) => cb(finish(record, error)),
    );
  });
}

export function serverStreaming<Req, Res>(
  rpc: RpcContext,
  route: Route<Req>,
  handler: (call: ServerWritableStream<Req, Res>, log: Logger) => Promise<void>,
): handleServerStreamingCall<Req, Res> {
  return guarded(route.permission, (call: ServerWritableStream<Req, Res>) => {
    const record = begin(rpc, route, call);
    const run = async () => {
      record.log = admit(rpc, route, call.metadata, call.request, record.log);
      return handler(call, record.log);
    };
    runMarked(call.metadata, run).then(
      () => {
        finish(record, call.cancelled ? CLIENT_CANCELLED : undefined);
        call.end();
      },
      (error: unknown) => {
        const wire = finish(record, call.cancelled ? CLIENT_CANCELLED : error);
        if (!call.cancelled) call.emit('error', wire);
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
      const record = begin(rpc, route, call);
      const run = async () => {
        const { permission } = route;
        const caller =
          permission === 'public'
            ? PUBLIC_CALLER
            : rpc.access.authenticate(route.method, call.metadata);
        record.log = withCaller(record.log, caller);
        let authorized = false;
        const response = await handler(call, record.log, (instance) => {
          if (permission !== 'public') {
            rpc.access.authorize(caller, route.method, instance, permission);
          }
          authorized = true;
        });
        if (!authorized) {
          throw new CasError('internal', `${route.method} answered without checking access`);
        }
        return response;
      };
      runMarked(call.metadata, run).then(
        (response) => {
          finish(record, undefined);
          cb(null, response);
        },
        (error: unknown) => cb(finish(record, error)),
      );
    },
  );
}

/** What one call has done so far, for its metrics and its closing log line. */
interface CallRecord {
  readonly method: string;
  readonly transfer: Transfer | undefined;
  readonly metrics: Metrics;
  readonly started: number;
  /** Health checks come every few seconds from every prober: their lines are debug. */
  readonly quiet: boolean;
  log: Logger;
  receivedBytes: number;
  sentBytes: number;
}

const RECORDS = new WeakMap<object, CallRecord>();
const CLIENT_CANCELLED = new CasError('cancelled', 'the client cancelled the call');

function begin(rpc: RpcContext, route: StreamRoute, call: { metadata: Metadata }): CallRecord {
  const client = readRequestMetadata(call.metadata);
  const record: CallRecord = {
    method: route.method,
    transfer: route.transfer,
    metrics: rpc.metrics,
    started: performance.now(),
    log: rpc.log.child({ method: route.method, ...(client.ok ? client.fields : {}) }),
    quiet: route.permission === 'public',
    receivedBytes: 0,
    sentBytes: 0,
  };
  if (!client.ok) record.log.debug({ problem: client.problem }, 'request metadata ignored');
  RECORDS.set(call, record);
  if (record.transfer) rpc.metrics.rpc.inFlight.inc(inFlightLabels(record));
  return record;
}

/** Records the call's outcome; for a failure, returns what grpc-js should send. */
function finish(record: CallRecord, error: undefined): undefined;
function finish(record: CallRecord, error: unknown): Partial<ServiceError>;
function finish(record: CallRecord, error: unknown): Partial<ServiceError> | undefined {
  const seconds = (performance.now() - record.started) / 1000;
  const failure = error === undefined ? undefined : toCasError(error);
  const code = failure === undefined ? 'OK' : status[grpcCodeOf(failure.code)];
  const labels = { method: record.method, code };
  const { rpc } = record.metrics;
  rpc.handled.inc(labels);
  rpc.duration.observe(labels, seconds);
  if (record.transfer) rpc.inFlight.dec(inFlightLabels(record));

  const fields = {
    status: code,
    ms: Math.round(seconds * 1000),
    ...(record.receivedBytes > 0 ? { bytesReceived: record.receivedBytes } : {}),
    ...(record.sentBytes > 0 ? { bytesSent: record.sentBytes } : {}),
  };
  if (failure === undefined) {
    if (record.quiet) record.log.debug(fields, 'ok');
    else record.log.info(fields, 'ok');
    return undefined;
  }
  return toServiceError(failure, record.log.child(fields));
}

/**
 * Adds fields (digest, instance, counts) to the call's log line and to every later line of its
 * logger; returns that logger, which the handler should use from then on.
 */
export function annotate(call: object, fields: Record<string, unknown>): Logger {
  const record = RECORDS.get(call);
  if (record === undefined) throw new Error('annotate() called on a call no wrapper began');
  record.log = record.log.child(fields);
  return record.log;
}

function inFlightLabels(record: CallRecord) {
  return { method: record.method, direction: record.transfer as Transfer };
}

/** Counts blob bytes a call received from its client (metrics and the call's log line). */
export function countReceived(call: object, bytes: number): void {
  const record = RECORDS.get(call);
  if (record === undefined || bytes === 0) return;
  record.receivedBytes += bytes;
  record.metrics.rpc.receivedBytes.inc({ method: record.method }, bytes);
}

/** Counts blob bytes a call sent to its client. */
export function countSent(call: object, bytes: number): void {
  const record = RECORDS.get(call);
  if (record === undefined || bytes === 0) return;
  record.sentBytes += bytes;
  record.metrics.rpc.sentBytes.inc({ method: record.method }, bytes);
}

/** Authenticates the call and authorizes it for the request's instance; returns its logger. */
function admit<Req>(
  rpc: RpcContext,
  route: Route<Req>,
  metadata: ServerUnaryCall<Req, unknown>['metadata'],
  request: Req,
  log: Logger,
): Logger {
  const { permission } = route;
  if (permission === 'public') return log;
  const caller = rpc.access.authenticate(route.method, metadata);
  const instance = route.instance(request);
  rpc.access.authorize(caller, route.method, instance, permission);
  return withCaller(log, caller).child({ instance });
}

const PUBLIC_CALLER: Caller = { name: undefined };

function withCaller(log: Logger, caller: Caller): Logger {
  return caller.name === undefined ? log : log.child({ caller: caller.name });
}

/**
 * A sender for a long server stream that keeps at most `maxUnsent` messages inside grpc-js and
 * HTTP/2 at a time: grpc-js buffers 16 messages before `write` returns false, which for a
 * ByteStream Read of 256 KiB chunks is 4 MiB per call while the client's window is full, and
 * 128 MiB for 32 such reads. Each send resolves false once the client has gone away.
 */
export function createBoundedSender<Res>(
  call: ServerWritableStream<unknown, Res>,
  maxUnsent: number,
): (message: Res) => Promise<boolean> {
  const unsent: { sent: boolean; done: Promise<void> }[] = [];
  // A cancelled call drops its queued messages without calling their callbacks.
  const gone = new Promise<void>((resolve) => {
    call.once('cancelled', () => resolve());
    call.once('close', () => resolve());
  });
  const dropSent = () => {
    while (unsent[0]?.sent) unsent.shift();
  };
  return async (message) => {
    if (call.cancelled || call.destroyed) return false;
    const entry = { sent: false, done: Promise.resolve() };
    entry.done = new Promise<void>((resolve) => {
      call.write(message, () => {
        entry.sent = true;
        resolve();
      });
    });
    unsent.push(entry);
    dropSent();
    while (unsent.length >= maxUnsent) {
      await Promise.race([(unsent[0] as (typeof unsent)[number]).done, gone]);
      if (call.cancelled || call.destroyed) return false;
      dropSent();
    }
    return true;
  };
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
