// The gRPC server: the four REAPI services, the two Remote Asset services and grpc.health.v1 on one
// port, with message limits that match what Capabilities advertises. Every method of every service
// must have an access check (see handlers.ts; health's is `public`); the server refuses to start
// with one that has none.
import {
  Server,
  type ServerCredentials,
  type ServiceDefinition,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { createFetchService, createPushService } from '../asset/asset-service.ts';
import type { AssetStore } from '../asset/asset-store.ts';
import type { AccessControl } from '../auth/access-control.ts';
import type { Cas } from '../cas/cas.ts';
import type { ActionCacheStore } from '../cas/store.ts';
import type { UploadRegistry } from '../cas/uploads.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { Readiness } from '../observability/readiness.ts';
import { createActionCacheService } from './action-cache-service.ts';
import { createByteStreamService } from './bytestream-service.ts';
import { createCapabilitiesService } from './capabilities-service.ts';
import { createCasService } from './cas-service.ts';
import { permissionOf, type RpcContext } from './handlers.ts';
import { createHealthService, HEALTH_SERVICE_NAME } from './health-service.ts';
import {
  actionCacheService,
  byteStreamService,
  capabilitiesService,
  casService,
  fetchService,
  healthService,
  pushService,
} from './proto.ts';
import { refuseUndecodableRequests } from './undecodable.ts';

/** Room for message framing, digests and statuses around the batch payload. */
const MESSAGE_OVERHEAD_BYTES = 4 * 1024 * 1024;

export interface GrpcServerDeps {
  readonly cas: Cas;
  readonly uploads: UploadRegistry;
  readonly actions: ActionCacheStore;
  readonly assets: AssetStore;
  readonly maxBatchTotalSizeBytes: number;
  readonly log: Logger;
  readonly access: AccessControl;
  readonly metrics: Metrics;
  /** What grpc.health.v1.Health reports. */
  readonly readiness: Readiness;
  /** Aborted when shutdown begins; ends open health watches. */
  readonly shutdown: AbortSignal;
}

export interface RegisteredService {
  readonly definition: ServiceDefinition;
  readonly implementation: UntypedServiceImplementation;
}

/** Every service the server registers, with its implementation. */
export function createServices(deps: GrpcServerDeps): RegisteredService[] {
  const rpc: RpcContext = { log: deps.log, access: deps.access, metrics: deps.metrics };
  const limit = deps.cas.store.maxBlobSizeBytes;
  const settings = {
    maxBatchTotalSizeBytes: deps.maxBatchTotalSizeBytes,
    maxCasBlobSizeBytes: limit >= Number.MAX_SAFE_INTEGER ? 0 : limit,
  };
  const { cas, assets } = deps;
  const services: RegisteredService[] = [
    { definition: capabilitiesService, implementation: createCapabilitiesService(settings, rpc) },
    { definition: casService, implementation: createCasService(cas, settings, rpc) },
    {
      definition: byteStreamService,
      implementation: createByteStreamService(cas, deps.uploads, rpc),
    },
    {
      definition: actionCacheService,
      implementation: createActionCacheService(cas, deps.actions, rpc),
    },
    { definition: fetchService, implementation: createFetchService(cas, assets, rpc) },
    { definition: pushService, implementation: createPushService(cas, assets, rpc) },
  ];
  const names = [
    ...services.map((service) => serviceName(service.definition)),
    HEALTH_SERVICE_NAME,
  ];
  const health = { readiness: deps.readiness, services: names, shutdown: deps.shutdown };
  services.push({
    definition: healthService,
    implementation: createHealthService(health, rpc),
  });
  return services;
}

/** `pkg.Service` from the path of the definition's first method (`/pkg.Service/Method`). */
function serviceName(definition: ServiceDefinition): string {
  const path = Object.values(definition)[0]?.path ?? '';
  return path.slice(1, path.lastIndexOf('/'));
}

/** Throws unless every method of the service has a handler built with an access check. */
export function assertAccessChecked({ definition, implementation }: RegisteredService): void {
  for (const [name, method] of Object.entries(definition)) {
    if (permissionOf(implementation[name]) === undefined) {
      throw new Error(
        `${method.path} has no access check: build its handler with unary, serverStreaming or ` +
          'clientStreaming from src/grpc/handlers.ts',
      );
    }
  }
}

export function createGrpcServer(deps: GrpcServerDeps): Server {
  const maxMessageBytes = deps.maxBatchTotalSizeBytes + MESSAGE_OVERHEAD_BYTES;
  const server = new Server({
    'grpc.max_receive_message_length': maxMessageBytes,
    'grpc.max_send_message_length': maxMessageBytes,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': 10_000,
    interceptors: [refuseUndecodableRequests],
  });
  for (const service of createServices(deps)) {
    assertAccessChecked(service);
    server.addService(service.definition, service.implementation);
  }
  return server;
}

/** Binds `host:port` (port 0 picks a free one) and returns the address actually bound. */
export async function bindServer(
  server: Server,
  listen: string,
  credentials: ServerCredentials,
): Promise<string> {
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(listen, credentials, (error, bound) =>
      error ? reject(error) : resolve(bound),
    );
  });
  const host = listen.slice(0, listen.lastIndexOf(':'));
  return `${host}:${port}`;
}

/** Stops taking calls, lets running ones finish for `graceMs`, then cuts what is left. */
export async function shutdownServer(server: Server, graceMs: number): Promise<void> {
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    timer.unref();
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
