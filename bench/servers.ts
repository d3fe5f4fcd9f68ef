// The processes a bench scenario talks to: a fresh `tessera serve` per row (so its VmHWM is that
// row's peak), and for the multi-GiB scenario an S3 server with room for it.
//
// Room matters because the test RGW keeps objects in a memstore OSD of 6 GiB that refuses writes at
// about 5.7 GiB, and deleting an object does not give the space back soon: RGW hands the object's
// data to its garbage collector, which waits hours by default. A 2 GiB blob plus its 2 GiB baseline
// cannot share one such cluster with the 256 MiB scenarios, so when the bench started RGW itself it
// starts a private, empty one for each half of the large scenario. S3 named by the environment is
// used as it is, and the bench deletes what it wrote there.
import { join } from 'node:path';
import { DeleteObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { connect, type TestClient } from '../test/support/client.ts';
import {
  createTestS3Client,
  type RunningServices,
  type S3Settings,
  startRgw,
} from '../test/support/services/index.ts';
import { startTessera } from '../test/support/tessera.ts';
import { cpuSeconds, peakRssBytes } from './measure.ts';
import type { MultipartSettings } from './transfer.ts';

/**
 * The bench's gRPC client lets the server have 1 MiB in flight per stream before it must wait for
 * a window update, as Bazel's gRPC client (Netty) does by default; grpc-js's own default is 64 KiB,
 * which made every read wait on a round trip per 64 KiB and measured the client, not Tessera.
 */
export const CLIENT_CHANNEL_OPTIONS = { 'grpc-node.flow_control_window': 1024 * 1024 };

export interface ServerOptions {
  readonly label: string;
  readonly s3: S3Settings;
  readonly redisUrl: string;
  /** Object keys and Redis keys of the server start with this (plus `tessera/` in S3). */
  readonly runPrefix: string;
  readonly stagingDir: string;
  readonly multipart: MultipartSettings;
  readonly multipartThresholdBytes: number;
  readonly nodeArgs: readonly string[];
  /** Redis key prefix of the server's commit entries; `runPrefix:` unless given. */
  readonly redisPrefix?: string;
  /** Settings of this server only, over the ones every bench server gets. */
  readonly env?: Readonly<Record<string, string>>;
}

export interface BenchServer {
  readonly client: TestClient;
  readonly address: string;
  readonly pid: number;
  cpuSeconds(): number;
  /** Closes the client, reads the server's VmHWM, stops it; returns that peak in bytes. */
  finish(): Promise<number>;
}

export async function startBenchServer(options: ServerOptions): Promise<BenchServer> {
  const { s3 } = options;
  const tessera = await startTessera({
    nodeArgs: [...options.nodeArgs],
    env: {
      TESSERA_S3_ENDPOINT: s3.endpoint,
      TESSERA_S3_BUCKET: s3.bucket,
      TESSERA_S3_REGION: s3.region,
      TESSERA_S3_FORCE_PATH_STYLE: String(s3.forcePathStyle),
      TESSERA_S3_PREFIX: `${options.runPrefix}/tessera/`,
      TESSERA_S3_PART_SIZE_BYTES: String(options.multipart.partSizeBytes),
      TESSERA_S3_UPLOAD_CONCURRENCY: String(options.multipart.queueSize),
      TESSERA_S3_MULTIPART_THRESHOLD_BYTES: String(options.multipartThresholdBytes),
      TESSERA_REDIS_URL: options.redisUrl,
      TESSERA_REDIS_PREFIX: options.redisPrefix ?? `${options.runPrefix}:`,
      TESSERA_STAGING_DIR: join(options.stagingDir, options.label),
      AWS_ACCESS_KEY_ID: s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
      // Not warn: startTessera waits for the 'listening' line, which is logged at info. Info adds
      // one line per committed blob, nothing per chunk.
      TESSERA_LOG_LEVEL: 'info',
      ...options.env,
    },
  });
  const pid = tessera.child.pid;
  if (pid === undefined) {
    await tessera.kill();
    throw new Error(`tessera server ${options.label} has no pid`);
  }
  const client = connect(tessera.address, { channelOptions: CLIENT_CHANNEL_OPTIONS });
  return {
    client,
    address: tessera.address,
    pid,
    cpuSeconds: () => cpuSeconds(pid),
    async finish() {
      client.close();
      let peak: number;
      try {
        peak = peakRssBytes(pid);
      } finally {
        await tessera.stop();
      }
      return peak;
    },
  };
}

export interface ScratchS3 {
  readonly s3: S3Settings;
  readonly client: S3Client;
  /** Stops a private cluster, or deletes this run's objects from a shared server. */
  release(): Promise<void>;
}

/** An S3 server with room for one half of the large scenario. */
export async function scratchS3(running: RunningServices, runPrefix: string): Promise<ScratchS3> {
  if (!running.started.includes('rgw')) {
    const s3 = running.services.s3;
    const client = createTestS3Client(s3);
    return {
      s3,
      client,
      async release() {
        try {
          await deleteUnder(client, s3.bucket, `${runPrefix}/`);
        } finally {
          client.destroy();
        }
      },
    };
  }
  const rgw = await startRgw({ bucket: running.services.s3.bucket });
  const { endpoint, bucket, region, accessKeyId, secretAccessKey, forcePathStyle } = rgw;
  const s3 = { endpoint, bucket, region, accessKeyId, secretAccessKey, forcePathStyle };
  const client = createTestS3Client(s3);
  return {
    s3,
    client,
    async release() {
      client.destroy();
      await rgw.stop();
    },
  };
}

/** Deletes every object under `prefix`. */
export async function deleteUnder(client: S3Client, bucket: string, prefix: string): Promise<void> {
  let token: string | undefined;
  do {
    const page = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
    );
    // One DeleteObject per key: the bench leaves a handful, and the batch call needs a checksum
    // header that not every S3 server accepts.
    for (const item of page.Contents ?? []) {
      if (item.Key) await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: item.Key }));
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token !== undefined);
}
