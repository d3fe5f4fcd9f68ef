// What the admin commands (gc, reindex, scrub, stat) work on: the same bucket and Redis as
// `tessera serve`, opened from the same settings, without a gRPC server.
import { RedisCommitIndex } from '../commit-index/redis-commit-index.ts';
import { ConfigError } from '../config/load.ts';
import { isCloudMode, type Settings } from '../config/schema.ts';
import { S3ObjectStore, s3SettingsFrom } from '../storage/s3-object-store.ts';

const REDIS_CONNECT_WAIT_MS = 5_000;

export interface AdminContext {
  readonly settings: Settings;
  readonly index: RedisCommitIndex;
  readonly objects: S3ObjectStore;
  close(): Promise<void>;
}

/** Thrown when Redis cannot be reached: exit code 3, like the client commands. */
export class UnreachableError extends Error {
  override readonly name = 'UnreachableError';
}

export async function openAdminContext(settings: Settings): Promise<AdminContext> {
  if (!isCloudMode(settings)) {
    throw new ConfigError(
      'this command works on the S3 + Redis store: set s3Bucket (TESSERA_S3_BUCKET) and ' +
        'redisUrl (TESSERA_REDIS_URL) as for tessera serve',
    );
  }
  const objects = new S3ObjectStore(s3SettingsFrom(settings));
  const index = new RedisCommitIndex({
    url: settings.redisUrl as string,
    prefix: settings.redisPrefix,
    leaseSeconds: settings.casLeaseSeconds,
  });
  if (!(await index.connect(REDIS_CONNECT_WAIT_MS))) {
    await index.close();
    objects.close();
    throw new UnreachableError(`redis at ${settings.redisUrl} is not reachable`);
  }
  return {
    settings,
    index,
    objects,
    async close() {
      await index.close();
      objects.close();
    },
  };
}
