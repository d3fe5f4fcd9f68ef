// The readiness probes of each backend (see readiness.ts): the cheapest operation that proves the
// backend answers and that this replica may use it.
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { HeadBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import type { Redis } from 'ioredis';
import type { Probe } from './readiness.ts';

/** PING. The commit index fails commands at once while disconnected, so this does too. */
export function redisProbe(redis: Redis): Probe {
  return {
    name: 'redis',
    async check() {
      await redis.ping();
    },
  };
}

/** HeadBucket: the endpoint answers, the credentials work and the bucket exists. */
export function s3Probe(client: S3Client, bucket: string): Probe {
  return {
    name: 's3',
    async check(signal) {
      await client.send(new HeadBucketCommand({ Bucket: bucket }), { abortSignal: signal });
    },
  };
}

/** The data directory exists and this process may write to it (a read-only remount fails it). */
export function dataDirProbe(dataDir: string): Probe {
  return {
    name: 'data-dir',
    async check() {
      await access(dataDir, constants.W_OK);
    },
  };
}
