// Tessera in S3 + Redis mode, in this process, for integration tests that look behind the server:
// its log lines, its staging directory, the bucket and Redis, under a prefix of its own.
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { Redis } from 'ioredis';
import { type App, startApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config/load.ts';
import { connect, type Digest, type TestClient } from './client.ts';
import { captureLogs } from './logs.ts';
import { createTestS3Client, type S3Settings } from './services/index.ts';

export interface RigOptions {
  readonly s3: S3Settings;
  readonly redisUrl: string;
  /** Where the server sends its S3 requests, when not straight to `s3` (a fault proxy). */
  readonly s3Endpoint?: string;
  /** More settings (TESSERA_* names). */
  readonly env?: Record<string, string>;
  /** Another rig's prefix, to run a second replica on the same bucket prefix and Redis keys. */
  readonly prefix?: string;
}

export interface Rig {
  readonly app: App;
  readonly client: TestClient;
  /** A client of the real S3 server, bypassing any proxy. */
  readonly s3: S3Client;
  readonly redis: Redis;
  readonly bucket: string;
  readonly prefix: string;
  readonly stagingDir: string;
  /** Every log line the server wrote, parsed. */
  readonly logs: Record<string, unknown>[];
  /** The Redis commit entry and the S3 object of a SHA-256 blob. */
  commitKey(digest: Digest): string;
  objectKey(digest: Digest): string;
  close(): Promise<void>;
}

export async function startRig(options: RigOptions): Promise<Rig> {
  const { s3, redisUrl } = options;
  const prefix = options.prefix ?? `rig-${randomUUID().slice(0, 8)}/`;
  const stagingDir = await mkdtemp(join(tmpdir(), 'tessera-rig-'));
  const settings = loadConfig({
    argv: ['--listen', '127.0.0.1:0'],
    env: {
      TESSERA_S3_ENDPOINT: options.s3Endpoint ?? s3.endpoint,
      TESSERA_S3_BUCKET: s3.bucket,
      TESSERA_S3_REGION: s3.region,
      TESSERA_S3_FORCE_PATH_STYLE: String(s3.forcePathStyle),
      TESSERA_S3_PREFIX: prefix,
      TESSERA_REDIS_URL: redisUrl,
      TESSERA_REDIS_PREFIX: `tessera-test:${prefix}`,
      TESSERA_STAGING_DIR: stagingDir,
      AWS_ACCESS_KEY_ID: s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
      ...options.env,
    },
  });
  const { log, lines } = captureLogs(settings.logLevel);
  let app: App;
  try {
    app = await startApp(settings, log);
  } catch (error) {
    await rm(stagingDir, { recursive: true, force: true });
    throw error;
  }
  const client = connect(app.address);
  const s3Client = createTestS3Client(s3);
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  redis.on('error', () => undefined);
  return {
    app,
    client,
    s3: s3Client,
    redis,
    bucket: s3.bucket,
    prefix,
    stagingDir,
    logs: lines,
    commitKey: (d) => `tessera-test:${prefix}cas:sha256:${d.hash}`,
    objectKey: (d) => `${prefix}cas/sha256/${d.hash}`,
    async close() {
      client.close();
      await app.close();
      s3Client.destroy();
      redis.disconnect();
      await rm(stagingDir, { recursive: true, force: true });
    },
  };
}
