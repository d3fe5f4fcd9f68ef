// What the conformance suite needs from a server under test: its address, and a look behind it at
// the backend (is there a commit, is there staging debris), so tests assert on real state.

import { randomUUID } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { type App, startApp } from '../../src/app.ts';
import type { Digest } from '../../src/cas/digest.ts';
import { loadConfig } from '../../src/config/load.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { getServices } from '../support/services/index.ts';

export interface ServerUnderTest {
  readonly address: string;
  readonly app: App;
  readonly stagingDir: string;
  /** Whether the backend holds a commit for the digest (bypassing the gRPC API). */
  isCommitted(digest: Digest): Promise<boolean>;
  /** Removes a blob's commit, as garbage collection would; the blob must then look missing. */
  forgetCommit(digest: Digest): Promise<void>;
  stagingFiles(): Promise<string[]>;
  stop(): Promise<void>;
}

export type ServerFactory = (extraEnv?: Record<string, string>) => Promise<ServerUnderTest>;

async function startWith(
  env: Record<string, string>,
  stagingDir: string,
  cleanup: () => Promise<void>,
) {
  const settings = loadConfig({ argv: ['--listen', '127.0.0.1:0'], env });
  const app = await startApp(settings, silentLogger());
  return {
    address: app.address,
    app,
    stagingDir,
    async isCommitted(digest: Digest) {
      const [size] = await app.backend.blobs.lookup([digest]);
      return size !== undefined;
    },
    async stagingFiles() {
      return (await readdir(stagingDir)).filter((name) => name.endsWith('.spool'));
    },
    async stop() {
      await app.close();
      await cleanup();
    },
  };
}

export const startEmbedded: ServerFactory = async (extraEnv = {}) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'tessera-embedded-'));
  const stagingDir = join(dataDir, 'staging');
  const base = await startWith({ TESSERA_DATA_DIR: dataDir, ...extraEnv }, stagingDir, () =>
    rm(dataDir, { recursive: true, force: true }),
  );
  return {
    ...base,
    async forgetCommit(digest: Digest) {
      const fn = digest.fn.toLowerCase();
      await rm(join(dataDir, 'cas', fn, digest.hash.slice(0, 2), digest.hash));
    },
  };
};

export const startS3Redis: ServerFactory = async (extraEnv = {}) => {
  const services = await getServices();
  const prefix = `t-${randomUUID().slice(0, 8)}/`;
  const stagingDir = await mkdtemp(join(tmpdir(), 'tessera-staging-'));
  const env = {
    TESSERA_S3_ENDPOINT: services.s3.endpoint,
    TESSERA_S3_BUCKET: services.s3.bucket,
    TESSERA_S3_REGION: services.s3.region,
    TESSERA_S3_FORCE_PATH_STYLE: String(services.s3.forcePathStyle),
    TESSERA_S3_PREFIX: prefix,
    TESSERA_REDIS_URL: services.redisUrl,
    TESSERA_REDIS_PREFIX: `tessera-test:${prefix}`,
    TESSERA_STAGING_DIR: stagingDir,
    AWS_ACCESS_KEY_ID: services.s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: services.s3.secretAccessKey,
    ...extraEnv,
  };
  const base = await startWith(env, stagingDir, () =>
    rm(stagingDir, { recursive: true, force: true }),
  );
  return {
    ...base,
    async forgetCommit(digest: Digest) {
      const redis = new Redis(services.redisUrl);
      await redis.del(`tessera-test:${prefix}cas:${digest.fn.toLowerCase()}:${digest.hash}`);
      redis.disconnect();
    },
  };
};
