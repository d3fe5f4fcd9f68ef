// Capabilities: what this server supports, as clients (Bazel first of all) check before a build.
import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import { DIGEST_FUNCTIONS } from '../cas/digest.ts';
import { type RpcContext, route, unary } from './handlers.ts';

export interface CapabilitiesSettings {
  readonly maxBatchTotalSizeBytes: number;
  /** 0 when the store states no limit. */
  readonly maxCasBlobSizeBytes: number;
}

/** API versions served: 2.0 (Bazel 4) through 2.3 (digest_function in requests, compressors). */
export const LOW_API_VERSION = { major: 2, minor: 0, patch: 0, prerelease: '' };
export const HIGH_API_VERSION = {
  major: 2,
  minor: 3,
  patch: 0,
  prerelease: '',
};

export function createCapabilitiesService(
  settings: CapabilitiesSettings,
  rpc: RpcContext,
): UntypedServiceImplementation {
  const capabilities = {
    cacheCapabilities: {
      digestFunctions: [...DIGEST_FUNCTIONS],
      actionCacheUpdateCapabilities: { updateEnabled: true },
      cachePriorityCapabilities: {
        priorities: [{ minPriority: 0, maxPriority: 0 }],
      },
      maxBatchTotalSizeBytes: settings.maxBatchTotalSizeBytes,
      symlinkAbsolutePathStrategy: 'ALLOWED',
      // IDENTITY is implied. zstd on ByteStream (compressed-blobs/zstd) and in batches.
      supportedCompressors: ['ZSTD'],
      supportedBatchUpdateCompressors: ['ZSTD'],
      maxCasBlobSizeBytes: settings.maxCasBlobSizeBytes,
    },
    executionCapabilities: {
      digestFunction: 'SHA256',
      execEnabled: false,
      digestFunctions: [...DIGEST_FUNCTIONS],
    },
    lowApiVersion: LOW_API_VERSION,
    highApiVersion: HIGH_API_VERSION,
  };
  return {
    GetCapabilities: unary(rpc, route('GetCapabilities', 'read'), async () => capabilities),
  };
}
