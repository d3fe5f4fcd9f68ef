// A Remote Asset client for tests (build.bazel.remote.asset.v1 Fetch and Push), built on the same
// protos as the server, with promise helpers and the response shapes the suites read.
import { credentials, makeClientConstructor } from '@grpc/grpc-js';
import { fetchService, pushService } from '../../src/grpc/proto.ts';
import { callUnary, type Digest, type Untyped } from './client.ts';

export interface Qualifier {
  name: string;
  value: string;
}

export interface Timestamp {
  seconds: number;
  nanos: number;
}

export interface FetchResponse {
  status: { code: number; message: string } | null;
  uri: string;
  qualifiers: Qualifier[];
  expiresAt: Timestamp | null;
  digestFunction: string;
}

export interface FetchBlobResponse extends FetchResponse {
  blobDigest: Digest | null;
}

export interface FetchDirectoryResponse extends FetchResponse {
  rootDirectoryDigest: Digest | null;
}

/** Request fields shared by the four calls; tests add the digest fields they need. */
export interface AssetRequest {
  instanceName?: string;
  uris?: string[];
  qualifiers?: Qualifier[];
  digestFunction?: string | number;
  [field: string]: unknown;
}

export interface AssetClient {
  fetchBlob(request: AssetRequest): Promise<FetchBlobResponse>;
  fetchDirectory(request: AssetRequest): Promise<FetchDirectoryResponse>;
  pushBlob(request: AssetRequest): Promise<object>;
  pushDirectory(request: AssetRequest): Promise<object>;
  close(): void;
}

export function connectAssets(address: string): AssetClient {
  const make = (definition: Parameters<typeof makeClientConstructor>[0]) =>
    new (makeClientConstructor(definition, 'svc'))(
      address,
      credentials.createInsecure(),
    ) as unknown as Untyped;
  const fetch = make(fetchService);
  const push = make(pushService);
  const unary = callUnary;

  return {
    fetchBlob: (request) => unary(fetch, 'FetchBlob', request),
    fetchDirectory: (request) => unary(fetch, 'FetchDirectory', request),
    pushBlob: (request) => unary(push, 'PushBlob', request),
    pushDirectory: (request) => unary(push, 'PushDirectory', request),
    close() {
      fetch.close();
      push.close();
    },
  };
}

/** A Timestamp `offsetMs` from now. */
export function timestampIn(offsetMs: number): Timestamp {
  const ms = Date.now() + offsetMs;
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanos: (ms - seconds * 1000) * 1_000_000 };
}
