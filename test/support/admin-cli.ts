// Runs `tessera gc | reindex | scrub | stat` as an operator would, on a rig's bucket prefix and
// Redis prefix.
import { type SpawnSyncReturns, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Rig } from './rig.ts';
import type { TestServices } from './services/index.ts';

const ENTRY = fileURLToPath(new URL('../../bin/tessera.js', import.meta.url));

export function runAdmin(
  rig: Rig,
  services: TestServices,
  args: string[],
  env: Record<string, string> = {},
): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [ENTRY, ...args], {
    env: {
      ...process.env,
      TESSERA_S3_ENDPOINT: services.s3.endpoint,
      TESSERA_S3_BUCKET: services.s3.bucket,
      TESSERA_S3_REGION: services.s3.region,
      TESSERA_S3_FORCE_PATH_STYLE: String(services.s3.forcePathStyle),
      TESSERA_S3_PREFIX: rig.prefix,
      TESSERA_REDIS_URL: services.redisUrl,
      TESSERA_REDIS_PREFIX: `tessera-test:${rig.prefix}`,
      AWS_ACCESS_KEY_ID: services.s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: services.s3.secretAccessKey,
      ...env,
    },
    encoding: 'utf8',
    timeout: 60_000,
  });
}
