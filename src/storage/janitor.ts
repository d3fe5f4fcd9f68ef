// Reclaims what dead replicas leave in S3: multipart uploads that no live upload owns.
//
// A streaming upload marks its multipart upload in Redis ({prefix}mpu:{upload id}, see
// commit-index/upload-state.ts) for as long as its checkpoint lives; other multipart uploads (of
// spooled blobs) finish within one call. So a multipart upload under this replica's prefix that is
// older than the grace period and has no marker belongs to nobody: its replica died, or its client
// never came back. The janitor aborts it. It runs at start and then every interval; every replica
// runs one, and two aborting the same upload is harmless.
//
// Incomplete multipart uploads are never visible as objects, so the janitor cannot damage a
// committed blob; at worst a too-short grace period would fail a slow spooled upload with
// UNAVAILABLE, which the client retries.
import { ListMultipartUploadsCommand, type S3Client } from '@aws-sdk/client-s3';
import type { Redis } from 'ioredis';
import type { Logger } from '../observability/logger.ts';
import type { S3Multipart } from './s3-multipart.ts';

export interface JanitorSettings {
  readonly bucket: string;
  /** Key prefix of this deployment's blobs (TESSERA_S3_PREFIX + "cas/"). */
  readonly keyPrefix: string;
  /** Prefix of the `mpu:` markers in Redis. */
  readonly markerPrefix: string;
  readonly graceMs: number;
  /** 0 runs the janitor once, at start, and never again. */
  readonly intervalMs: number;
}

export interface SweepReport {
  readonly aborted: number;
  readonly kept: number;
}

export class MultipartJanitor {
  readonly #client: S3Client;
  readonly #multipart: S3Multipart;
  readonly #redis: Redis;
  readonly #settings: JanitorSettings;
  readonly #log: Logger;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<unknown> = Promise.resolve();

  constructor(
    client: S3Client,
    multipart: S3Multipart,
    redis: Redis,
    settings: JanitorSettings,
    log: Logger,
  ) {
    this.#client = client;
    this.#multipart = multipart;
    this.#redis = redis;
    this.#settings = settings;
    this.#log = log.child({ component: 'janitor' });
  }

  /** Sweeps now, then every interval, until `stop`. */
  start(): void {
    const run = () => {
      this.#running = this.sweep().catch((error: unknown) =>
        this.#log.warn({ err: error }, 'multipart janitor sweep failed; will try again'),
      );
    };
    run();
    if (this.#settings.intervalMs > 0) {
      this.#timer = setInterval(run, this.#settings.intervalMs);
      this.#timer.unref();
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#running;
  }

  /** One pass over every incomplete multipart upload under the prefix. */
  async sweep(): Promise<SweepReport> {
    const { bucket, keyPrefix, graceMs, markerPrefix } = this.#settings;
    const cutoff = Date.now() - graceMs;
    let aborted = 0;
    let kept = 0;
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      const page = await this.#client.send(
        new ListMultipartUploadsCommand({
          Bucket: bucket,
          Prefix: keyPrefix,
          KeyMarker: keyMarker,
          UploadIdMarker: uploadIdMarker,
        }),
      );
      for (const upload of page.Uploads ?? []) {
        if (!upload.Key || !upload.UploadId) continue;
        const young = (upload.Initiated?.getTime() ?? Date.now()) > cutoff;
        if (young || (await this.#redis.exists(`${markerPrefix}${upload.UploadId}`)) === 1) {
          kept += 1;
          continue;
        }
        await this.#multipart.abort(upload.Key, upload.UploadId);
        aborted += 1;
      }
      if (!page.IsTruncated) break;
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
    }
    if (aborted > 0) this.#log.info({ aborted, kept }, 'aborted abandoned multipart uploads');
    return { aborted, kept };
  }
}
