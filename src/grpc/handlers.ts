// Wrappers that give every RPC handler the same shape: a child logger with the method name, one
// place that turns anything thrown into a status, and duration logging at debug level.
import type {
  handleClientStreamingCall,
  handleServerStreamingCall,
  handleUnaryCall,
  ServerReadableStream,
  ServerUnaryCall,
  ServerWritableStream,
  sendUnaryData,
} from '@grpc/grpc-js';
import type { Logger } from '../observability/logger.ts';
import { toServiceError } from './status.ts';

export function unary<Req, Res>(
  log: Logger,
  method: string,
  handler: (request: Req, call: ServerUnaryCall<Req, Res>, log: Logger) => Promise<Res>,
): handleUnaryCall<Req, Res> {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
    const rpcLog = log.child({ method });
    const started = performance.now();
    handler(call.request, call, rpcLog).then(
      (response) => {
        rpcLog.debug({ ms: elapsed(started) }, 'ok');
        callback(null, response);
      },
      (error: unknown) => callback(toServiceError(error, rpcLog)),
    );
  };
}

export function clientStreaming<Req, Res>(
  log: Logger,
  method: string,
  handler: (call: ServerReadableStream<Req, Res>, log: Logger) => Promise<Res>,
): handleClientStreamingCall<Req, Res> {
  return (call: ServerReadableStream<Req, Res>, callback: sendUnaryData<Res>) => {
    const rpcLog = log.child({ method });
    const started = performance.now();
    handler(call, rpcLog).then(
      (response) => {
        rpcLog.debug({ ms: elapsed(started) }, 'ok');
        callback(null, response);
      },
      (error: unknown) => callback(toServiceError(error, rpcLog)),
    );
  };
}

export function serverStreaming<Req, Res>(
  log: Logger,
  method: string,
  handler: (call: ServerWritableStream<Req, Res>, log: Logger) => Promise<void>,
): handleServerStreamingCall<Req, Res> {
  return (call: ServerWritableStream<Req, Res>) => {
    const rpcLog = log.child({ method });
    const started = performance.now();
    handler(call, rpcLog).then(
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

function elapsed(started: number): number {
  return Math.round(performance.now() - started);
}
