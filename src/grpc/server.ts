// The gRPC server: the four REAPI services and the two Remote Asset services on one port, with
// message limits that match what Capabilities advertises.
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { createFetchService, createPushService } from '../asset/asset-service.ts';
import type { AssetStore } from '../asset/asset-store.ts';
import type { Cas } from '../cas/cas.ts';
import type { ActionCacheStore } from '../cas/store.ts';
import type { UploadRegistry } from '../cas/uploads.ts';
import type { Logger } from '../observability/logger.ts';
import { createActionCacheService } from './action-cache-service.ts';
import { createByteStreamService } from './bytestream-service.ts';
import { createCapabilitiesService } from './capabilities-service.ts';
import { createCasService } from './cas-service.ts';
import {
  actionCacheService,
  byteStreamService,
  capabilitiesService,
  casService,
  fetchService,
  pushService,
} from './proto.ts';

/** Room for message framing, digests and statuses around the batch payload. */
const MESSAGE_OVERHEAD_BYTES = 4 * 1024 * 1024;

export interface GrpcServerDeps {
  readonly cas: Cas;
  readonly uploads: UploadRegistry;
  readonly actions: ActionCacheStore;
  readonly assets: AssetStore;
  readonly maxBatchTotalSizeBytes: number;
  readonly log: Logger;
}

export function createGrpcServer(deps: GrpcServerDeps): Server {
  const maxMessageBytes = deps.maxBatchTotalSizeBytes + MESSAGE_OVERHEAD_BYTES;
  const server = new Server({
    'grpc.max_receive_message_length': maxMessageBytes,
    'grpc.max_send_message_length': maxMessageBytes,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': 10_000,
  });
  const settings = { maxBatchTotalSizeBytes: deps.maxBatchTotalSizeBytes };
  server.addService(capabilitiesService, createCapabilitiesService(settings, deps.log));
  server.addService(casService, createCasService(deps.cas, settings, deps.log));
  server.addService(byteStreamService, createByteStreamService(deps.cas, deps.uploads, deps.log));
  server.addService(actionCacheService, createActionCacheService(deps.cas, deps.actions, deps.log));
  server.addService(fetchService, createFetchService(deps.cas, deps.assets, deps.log));
  server.addService(pushService, createPushService(deps.cas, deps.assets, deps.log));
  return server;
}

/** Binds `host:port` (port 0 picks a free one) and returns the address actually bound. */
export async function bindServer(server: Server, listen: string): Promise<string> {
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(listen, ServerCredentials.createInsecure(), (error, bound) =>
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
