// grpc.health.v1.Health on the main gRPC port, for load balancers, Kubernetes gRPC probes and
// grpc_health_probe. It needs no credentials (permission `public`). Every known service name
// ("" for the whole server, or any service the server registers) reports the server's readiness
// (src/observability/readiness.ts): SERVING while every backend answers, NOT_SERVING while one does
// not or once shutdown has begun. Check on an unknown name is NOT_FOUND; Watch on one sends
// SERVICE_UNKNOWN and keeps watching, as the protocol asks.
//
// Watch re-reads readiness every WATCH_INTERVAL_MS (readiness caches probes, so many watchers cost
// the backends no more than one) and sends only changes. At shutdown every Watch gets its last
// status and ends, so that open watches never hold up the server's graceful stop.
import type { ServerWritableStream, UntypedServiceImplementation } from '@grpc/grpc-js';
import { notFound } from '../cas/errors.ts';
import type { Readiness } from '../observability/readiness.ts';
import {
  publicRoute,
  type RpcContext,
  sendWithBackpressure,
  serverStreaming,
  unary,
} from './handlers.ts';

type ServingStatus = 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';

interface HealthCheckRequest {
  service: string;
}

interface HealthCheckResponse {
  status: ServingStatus;
}

export const WATCH_INTERVAL_MS = 1_000;
export const HEALTH_SERVICE_NAME = 'grpc.health.v1.Health';

export interface HealthDeps {
  readonly readiness: Readiness;
  /** Fully qualified names of every service the server registers, this one included. */
  readonly services: readonly string[];
  /** Aborted when the server begins to shut down: watches send their last status and end. */
  readonly shutdown: AbortSignal;
}

export function createHealthService(
  deps: HealthDeps,
  rpc: RpcContext,
): UntypedServiceImplementation {
  const known = new Set(['', ...deps.services]);
  const statusNow = async (service: string): Promise<ServingStatus> => {
    if (!known.has(service)) return 'SERVICE_UNKNOWN';
    return (await deps.readiness.check()).ready ? 'SERVING' : 'NOT_SERVING';
  };

  return {
    Check: unary(
      rpc,
      publicRoute('Check'),
      async (request: HealthCheckRequest): Promise<HealthCheckResponse> => {
        const status = await statusNow(request.service);
        if (status === 'SERVICE_UNKNOWN') {
          throw notFound(`no service named "${request.service}" is served here`);
        }
        return { status };
      },
    ),

    Watch: serverStreaming(
      rpc,
      publicRoute('Watch'),
      async (call: ServerWritableStream<HealthCheckRequest, HealthCheckResponse>) => {
        const { service } = call.request;
        let sent: ServingStatus | undefined;
        for (;;) {
          const status = await statusNow(service);
          if (status !== sent) {
            if (!(await sendWithBackpressure(call, { status }))) return;
            sent = status;
          }
          if (deps.shutdown.aborted) return;
          if (!(await pause(call, deps.shutdown))) return;
        }
      },
    ),
  };
}

/** Waits WATCH_INTERVAL_MS; false if the client went away meanwhile. Shutdown cuts it short. */
async function pause(call: ServerWritableStream<unknown, unknown>, shutdown: AbortSignal) {
  if (call.cancelled) return false;
  return new Promise<boolean>((resolve) => {
    const done = (alive: boolean) => {
      clearTimeout(timer);
      call.off('cancelled', onGone);
      shutdown.removeEventListener('abort', onShutdown);
      resolve(alive);
    };
    const onGone = () => done(false);
    const onShutdown = () => done(true);
    const timer = setTimeout(() => done(true), WATCH_INTERVAL_MS);
    call.on('cancelled', onGone);
    shutdown.addEventListener('abort', onShutdown);
  });
}
