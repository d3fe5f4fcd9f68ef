// Connection settings for the Redis and S3 server that integration tests talk to.
//
// Services named in the environment are used as they are (a developer's MinIO and Redis from
// docker-compose, or the ones scripts/test.sh started once for the whole run). Whatever the
// environment does not name is started here, once per process, and killed at process exit.
//
// Tests that crash or restart a service on purpose must not do it to these shared ones: they call
// startRedis() / startRgw() for a private instance (see localServicesAvailable()).
import { DEFAULT_TEST_BUCKET, ensureBucket, type S3Settings, startRgw } from './ceph-rgw.ts';
import { isOnPath } from './daemon.ts';
import { startRedis } from './redis.ts';

export {
  createTestS3Client,
  type RgwOptions,
  type RgwServer,
  type S3Settings,
  startRgw,
} from './ceph-rgw.ts';
export { type RedisServer, startRedis } from './redis.ts';

export interface TestServices {
  readonly redisUrl: string;
  readonly s3: S3Settings;
}

/** The environment variables that name existing services; each group may be set on its own. */
export const SERVICE_ENV = {
  redisUrl: 'TESSERA_TEST_REDIS_URL',
  s3Endpoint: 'TESSERA_TEST_S3_ENDPOINT',
  s3Bucket: 'TESSERA_TEST_S3_BUCKET',
  s3Region: 'TESSERA_TEST_S3_REGION',
  s3ForcePathStyle: 'TESSERA_TEST_S3_FORCE_PATH_STYLE',
  accessKeyId: 'AWS_ACCESS_KEY_ID',
  secretAccessKey: 'AWS_SECRET_ACCESS_KEY',
} as const;

const DEFAULT_REGION = 'us-east-1';

export interface RunningServices {
  readonly services: TestServices;
  /** Which services were started here rather than taken from the environment. */
  readonly started: readonly ('redis' | 'rgw')[];
  /** Stops what was started here; services named by the environment are left alone. */
  stop(): Promise<void>;
}

let shared: Promise<TestServices> | undefined;

/**
 * Resolves the services for this process; the first call may take a couple of seconds. What it
 * starts is killed when the process exits.
 */
export function getServices(): Promise<TestServices> {
  shared ??= startServices(process.env).then((running) => running.services);
  return shared;
}

/** Whether this machine can start private services (the binaries install-test-deps.sh adds). */
export function localServicesAvailable(): { readonly redis: boolean; readonly rgw: boolean } {
  const rgwTools = ['ceph', 'ceph-mon', 'ceph-osd', 'monmaptool', 'radosgw', 'radosgw-admin'];
  return { redis: isOnPath('redis-server'), rgw: rgwTools.every(isOnPath) };
}

/** Takes what `env` names and starts the rest. */
export async function startServices(env: NodeJS.ProcessEnv): Promise<RunningServices> {
  const redisUrl = nonEmpty(env[SERVICE_ENV.redisUrl]);
  const s3 = s3FromEnv(env);

  const [redis, rgw] = await Promise.allSettled([
    redisUrl === undefined
      ? startRedis().then((server) => ({ url: server.url, server }))
      : { url: redisUrl, server: undefined },
    s3 === undefined
      ? startRgw().then((server) => ({ settings: toSettings(server), server }))
      : ensureBucket(s3).then(() => ({ settings: s3, server: undefined })),
  ]);
  const servers = [redis, rgw].flatMap((r) => (r.status === 'fulfilled' ? [r.value.server] : []));
  const stop = async () => {
    await Promise.all(servers.map((server) => server?.stop()));
  };
  // One failed to start: stop the other before reporting, so no daemon outlives the failure.
  if (redis.status === 'rejected') {
    await stop();
    throw redis.reason;
  }
  if (rgw.status === 'rejected') {
    await stop();
    throw rgw.reason;
  }

  const started = [
    ...(redis.value.server === undefined ? [] : ['redis' as const]),
    ...(rgw.value.server === undefined ? [] : ['rgw' as const]),
  ];
  return { services: { redisUrl: redis.value.url, s3: rgw.value.settings }, started, stop };
}

function s3FromEnv(env: NodeJS.ProcessEnv): S3Settings | undefined {
  const endpoint = nonEmpty(env[SERVICE_ENV.s3Endpoint]);
  if (endpoint === undefined) return undefined;

  const accessKeyId = nonEmpty(env[SERVICE_ENV.accessKeyId]);
  const secretAccessKey = nonEmpty(env[SERVICE_ENV.secretAccessKey]);
  if (accessKeyId === undefined || secretAccessKey === undefined) {
    throw new Error(
      `${SERVICE_ENV.s3Endpoint} is set to ${endpoint} but ${SERVICE_ENV.accessKeyId} or ` +
        `${SERVICE_ENV.secretAccessKey} is not; set both to that server's keys`,
    );
  }
  const pathStyle = nonEmpty(env[SERVICE_ENV.s3ForcePathStyle]) ?? 'true';
  if (pathStyle !== 'true' && pathStyle !== 'false') {
    throw new Error(`${SERVICE_ENV.s3ForcePathStyle} must be true or false, got ${pathStyle}`);
  }
  return {
    endpoint,
    bucket: nonEmpty(env[SERVICE_ENV.s3Bucket]) ?? DEFAULT_TEST_BUCKET,
    region: nonEmpty(env[SERVICE_ENV.s3Region]) ?? DEFAULT_REGION,
    accessKeyId,
    secretAccessKey,
    forcePathStyle: pathStyle === 'true',
  };
}

/** Copies only the settings, so callers never get hold of a server's start/stop handles. */
function toSettings(s3: S3Settings): S3Settings {
  const { endpoint, bucket, region, accessKeyId, secretAccessKey, forcePathStyle } = s3;
  return { endpoint, bucket, region, accessKeyId, secretAccessKey, forcePathStyle };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

/** The environment that names `services`, for a child process that should reuse them. */
export function servicesEnv(services: TestServices): Record<string, string> {
  return {
    [SERVICE_ENV.redisUrl]: services.redisUrl,
    [SERVICE_ENV.s3Endpoint]: services.s3.endpoint,
    [SERVICE_ENV.s3Bucket]: services.s3.bucket,
    [SERVICE_ENV.s3Region]: services.s3.region,
    [SERVICE_ENV.s3ForcePathStyle]: String(services.s3.forcePathStyle),
    [SERVICE_ENV.accessKeyId]: services.s3.accessKeyId,
    [SERVICE_ENV.secretAccessKey]: services.s3.secretAccessKey,
  };
}
