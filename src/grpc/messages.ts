// TypeScript shapes of the protocol messages Tessera handles, exactly as src/grpc/proto.ts loads
// them: camelCase fields, int64 and uint64 as number, bytes as Buffer, every scalar and repeated
// field present with its default, and an unset message field as null.
//
// Enum fields hold the value's name; an enum number newer than our .proto files arrives as the
// bare number, hence the `| number` on every enum field a client sets.
//
// These are written by hand against proto/; test/unit/proto.test.ts decodes real messages through
// them. When a .proto file changes, change the matching interface here in the same commit. The
// file is long but flat, one interface per message, so each .proto has one TypeScript counterpart.

// ---- Well-known types -------------------------------------------------------------------------

export interface Timestamp {
  seconds: number;
  nanos: number;
}

export interface Duration {
  seconds: number;
  nanos: number;
}

/** protobufjs keeps this field's snake_case name even with keepCase off. */
export interface Any {
  type_url: string;
  value: Buffer;
}

export interface UInt32Value {
  value: number;
}

/** google.rpc.Status: the per-item outcome of batch and remote-asset calls. */
export interface RpcStatus {
  code: number;
  message: string;
  details: unknown[];
}

export interface SemVer {
  major: number;
  minor: number;
  patch: number;
  prerelease: string;
}

// ---- Enums ------------------------------------------------------------------------------------

export type DigestFunctionValue =
  | 'UNKNOWN'
  | 'SHA256'
  | 'SHA1'
  | 'MD5'
  | 'VSO'
  | 'SHA384'
  | 'SHA512'
  | 'MURMUR3'
  | 'SHA256TREE'
  | 'BLAKE3'
  | 'GITSHA1';

export type CompressorValue = 'IDENTITY' | 'ZSTD' | 'DEFLATE' | 'BROTLI';

export type ChunkingFunctionValue = 'UNKNOWN' | 'FAST_CDC_2020' | 'REP_MAX_CDC';

export type SymlinkAbsolutePathStrategyValue = 'UNKNOWN' | 'DISALLOWED' | 'ALLOWED';

export type OutputDirectoryFormat = 'TREE_ONLY' | 'DIRECTORY_ONLY' | 'TREE_AND_DIRECTORY';

// ---- Digests and trees ------------------------------------------------------------------------

/** A digest as it travels: hash in lowercase hex, size in uncompressed bytes. */
export interface Digest {
  hash: string;
  sizeBytes: number;
}

export interface NodeProperty {
  name: string;
  value: string;
}

export interface NodeProperties {
  properties: NodeProperty[];
  mtime: Timestamp | null;
  unixMode: UInt32Value | null;
}

export interface FileNode {
  name: string;
  digest: Digest | null;
  isExecutable: boolean;
  nodeProperties: NodeProperties | null;
}

export interface DirectoryNode {
  name: string;
  digest: Digest | null;
}

export interface SymlinkNode {
  name: string;
  target: string;
  nodeProperties: NodeProperties | null;
}

export interface Directory {
  files: FileNode[];
  directories: DirectoryNode[];
  symlinks: SymlinkNode[];
  nodeProperties: NodeProperties | null;
}

export interface Tree {
  root: Directory | null;
  children: Directory[];
}

// ---- Actions and results ----------------------------------------------------------------------

export interface PlatformProperty {
  name: string;
  value: string;
}

export interface Platform {
  properties: PlatformProperty[];
}

export interface Action {
  commandDigest: Digest | null;
  inputRootDigest: Digest | null;
  timeout: Duration | null;
  doNotCache: boolean;
  salt: Buffer;
  platform: Platform | null;
}

export interface EnvironmentVariable {
  name: string;
  value: string;
}

export interface Command {
  arguments: string[];
  environmentVariables: EnvironmentVariable[];
  outputFiles: string[];
  outputDirectories: string[];
  platform: Platform | null;
  workingDirectory: string;
  outputPaths: string[];
  outputNodeProperties: string[];
  outputDirectoryFormat: OutputDirectoryFormat | number;
}

export interface OutputFile {
  path: string;
  digest: Digest | null;
  isExecutable: boolean;
  contents: Buffer;
  nodeProperties: NodeProperties | null;
}

export interface OutputDirectory {
  path: string;
  treeDigest: Digest | null;
  isTopologicallySorted: boolean;
  rootDirectoryDigest: Digest | null;
}

export interface OutputSymlink {
  path: string;
  target: string;
  nodeProperties: NodeProperties | null;
}

export interface ExecutedActionMetadata {
  worker: string;
  queuedTimestamp: Timestamp | null;
  workerStartTimestamp: Timestamp | null;
  workerCompletedTimestamp: Timestamp | null;
  inputFetchStartTimestamp: Timestamp | null;
  inputFetchCompletedTimestamp: Timestamp | null;
  executionStartTimestamp: Timestamp | null;
  executionCompletedTimestamp: Timestamp | null;
  outputUploadStartTimestamp: Timestamp | null;
  outputUploadCompletedTimestamp: Timestamp | null;
  auxiliaryMetadata: Any[];
  virtualExecutionDuration: Duration | null;
}

export interface ActionResult {
  outputFiles: OutputFile[];
  outputDirectories: OutputDirectory[];
  exitCode: number;
  stdoutRaw: Buffer;
  stdoutDigest: Digest | null;
  stderrRaw: Buffer;
  stderrDigest: Digest | null;
  executionMetadata: ExecutedActionMetadata | null;
  /** Deprecated by the protocol in favour of outputSymlinks; old clients still fill it. */
  outputFileSymlinks: OutputSymlink[];
  /** Deprecated by the protocol in favour of outputSymlinks; old clients still fill it. */
  outputDirectorySymlinks: OutputSymlink[];
  outputSymlinks: OutputSymlink[];
}

export interface ResultsCachePolicy {
  priority: number;
}

// ---- ActionCache ------------------------------------------------------------------------------

export interface GetActionResultRequest {
  instanceName: string;
  actionDigest: Digest | null;
  inlineStdout: boolean;
  inlineStderr: boolean;
  inlineOutputFiles: string[];
  digestFunction: DigestFunctionValue | number;
}

export interface UpdateActionResultRequest {
  instanceName: string;
  actionDigest: Digest | null;
  actionResult: ActionResult | null;
  resultsCachePolicy: ResultsCachePolicy | null;
  digestFunction: DigestFunctionValue | number;
}

// ---- ContentAddressableStorage ----------------------------------------------------------------

export interface FindMissingBlobsRequest {
  instanceName: string;
  blobDigests: Digest[];
  digestFunction: DigestFunctionValue | number;
}

export interface FindMissingBlobsResponse {
  missingBlobDigests: Digest[];
}

/** BatchUpdateBlobsRequest.Request: one blob to store. */
export interface BatchUpdateBlobsRequestItem {
  digest: Digest | null;
  data: Buffer;
  compressor: CompressorValue | number;
}

export interface BatchUpdateBlobsRequest {
  instanceName: string;
  requests: BatchUpdateBlobsRequestItem[];
  digestFunction: DigestFunctionValue | number;
}

/** BatchUpdateBlobsResponse.Response: whether one blob was stored. */
export interface BatchUpdateBlobsResponseItem {
  digest: Digest | null;
  status: RpcStatus | null;
}

export interface BatchUpdateBlobsResponse {
  responses: BatchUpdateBlobsResponseItem[];
}

export interface BatchReadBlobsRequest {
  instanceName: string;
  digests: Digest[];
  acceptableCompressors: (CompressorValue | number)[];
  digestFunction: DigestFunctionValue | number;
}

/** BatchReadBlobsResponse.Response: one blob's bytes, or why they could not be read. */
export interface BatchReadBlobsResponseItem {
  digest: Digest | null;
  data: Buffer;
  compressor: CompressorValue | number;
  status: RpcStatus | null;
}

export interface BatchReadBlobsResponse {
  responses: BatchReadBlobsResponseItem[];
}

export interface GetTreeRequest {
  instanceName: string;
  rootDigest: Digest | null;
  pageSize: number;
  pageToken: string;
  digestFunction: DigestFunctionValue | number;
}

export interface GetTreeResponse {
  directories: Directory[];
  nextPageToken: string;
}

export interface SplitBlobRequest {
  instanceName: string;
  blobDigest: Digest | null;
  digestFunction: DigestFunctionValue | number;
  chunkingFunction: ChunkingFunctionValue | number;
}

export interface SplitBlobResponse {
  chunkDigests: Digest[];
  chunkingFunction: ChunkingFunctionValue | number;
}

export interface SpliceBlobRequest {
  instanceName: string;
  blobDigest: Digest | null;
  chunkDigests: Digest[];
  digestFunction: DigestFunctionValue | number;
  chunkingFunction: ChunkingFunctionValue | number;
}

export interface SpliceBlobResponse {
  blobDigest: Digest | null;
}

// ---- Capabilities -----------------------------------------------------------------------------

export interface GetCapabilitiesRequest {
  instanceName: string;
}

export interface ActionCacheUpdateCapabilities {
  updateEnabled: boolean;
}

export interface PriorityRange {
  minPriority: number;
  maxPriority: number;
}

export interface PriorityCapabilities {
  priorities: PriorityRange[];
}

export interface FastCdc2020Params {
  avgChunkSizeBytes: number;
  seed: number;
}

export interface RepMaxCdcParams {
  minChunkSizeBytes: number;
  horizonSizeBytes: number;
}

export interface CacheCapabilities {
  digestFunctions: (DigestFunctionValue | number)[];
  actionCacheUpdateCapabilities: ActionCacheUpdateCapabilities | null;
  cachePriorityCapabilities: PriorityCapabilities | null;
  maxBatchTotalSizeBytes: number;
  symlinkAbsolutePathStrategy: SymlinkAbsolutePathStrategyValue | number;
  supportedCompressors: (CompressorValue | number)[];
  supportedBatchUpdateCompressors: (CompressorValue | number)[];
  maxCasBlobSizeBytes: number;
  splitBlobSupport: boolean;
  spliceBlobSupport: boolean;
  /** protobufjs camel-cases `fast_cdc_2020_params` this way: no capital after a digit. */
  fastCdc_2020Params: FastCdc2020Params | null;
  repMaxCdcParams: RepMaxCdcParams | null;
}

export interface ExecutionCapabilities {
  digestFunction: DigestFunctionValue | number;
  execEnabled: boolean;
  executionPriorityCapabilities: PriorityCapabilities | null;
  supportedNodeProperties: string[];
  digestFunctions: (DigestFunctionValue | number)[];
}

export interface ServerCapabilities {
  cacheCapabilities: CacheCapabilities | null;
  executionCapabilities: ExecutionCapabilities | null;
  deprecatedApiVersion: SemVer | null;
  lowApiVersion: SemVer | null;
  highApiVersion: SemVer | null;
}

// ---- Request metadata -------------------------------------------------------------------------

export interface ToolDetails {
  toolName: string;
  toolVersion: string;
}

/** Decoded from the `build.bazel.remote.execution.v2.requestmetadata-bin` header. */
export interface RequestMetadata {
  toolDetails: ToolDetails | null;
  actionId: string;
  toolInvocationId: string;
  correlatedInvocationsId: string;
  actionMnemonic: string;
  targetId: string;
  configurationId: string;
}

// ---- ByteStream -------------------------------------------------------------------------------

export interface ReadRequest {
  resourceName: string;
  readOffset: number;
  readLimit: number;
}

export interface ReadResponse {
  data: Buffer;
}

export interface WriteRequest {
  resourceName: string;
  writeOffset: number;
  finishWrite: boolean;
  data: Buffer;
}

export interface WriteResponse {
  committedSize: number;
}

export interface QueryWriteStatusRequest {
  resourceName: string;
}

export interface QueryWriteStatusResponse {
  committedSize: number;
  complete: boolean;
}

// ---- Remote Asset -----------------------------------------------------------------------------

export interface Qualifier {
  name: string;
  value: string;
}

export interface FetchBlobRequest {
  instanceName: string;
  timeout: Duration | null;
  oldestContentAccepted: Timestamp | null;
  uris: string[];
  qualifiers: Qualifier[];
  digestFunction: DigestFunctionValue | number;
}

export interface FetchBlobResponse {
  status: RpcStatus | null;
  uri: string;
  qualifiers: Qualifier[];
  expiresAt: Timestamp | null;
  blobDigest: Digest | null;
  digestFunction: DigestFunctionValue | number;
}

export interface FetchDirectoryRequest {
  instanceName: string;
  timeout: Duration | null;
  oldestContentAccepted: Timestamp | null;
  uris: string[];
  qualifiers: Qualifier[];
  digestFunction: DigestFunctionValue | number;
}

export interface FetchDirectoryResponse {
  status: RpcStatus | null;
  uri: string;
  qualifiers: Qualifier[];
  expiresAt: Timestamp | null;
  rootDirectoryDigest: Digest | null;
  digestFunction: DigestFunctionValue | number;
}

export interface PushBlobRequest {
  instanceName: string;
  uris: string[];
  qualifiers: Qualifier[];
  expireAt: Timestamp | null;
  blobDigest: Digest | null;
  referencesBlobs: Digest[];
  referencesDirectories: Digest[];
  digestFunction: DigestFunctionValue | number;
}

export type PushBlobResponse = Record<string, never>;

export interface PushDirectoryRequest {
  instanceName: string;
  uris: string[];
  qualifiers: Qualifier[];
  expireAt: Timestamp | null;
  rootDirectoryDigest: Digest | null;
  referencesBlobs: Digest[];
  referencesDirectories: Digest[];
  digestFunction: DigestFunctionValue | number;
}

export type PushDirectoryResponse = Record<string, never>;

// ---- Building outgoing messages ---------------------------------------------------------------

type PartialField<V> = V extends Buffer | Uint8Array
  ? V | Uint8Array
  : V extends readonly (infer E)[]
    ? readonly PartialField<E>[]
    : V extends object
      ? PartialMessage<V>
      : V;

/**
 * What a handler may return or pass to encodeMessage: any field may be left out (it then takes
 * its default on the wire), at any depth.
 */
export type PartialMessage<T> = { [K in keyof T]?: PartialField<T[K]> };
