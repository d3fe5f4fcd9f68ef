// Blob content in S3-compatible object storage (AWS S3, MinIO, Ceph RGW).
//
// Objects: `{prefix}cas/{fn}/{hash}`, the whole blob, written once per commit (rewriting the same
// key with the same bytes is harmless, which is what makes replicas safe without locks). Small
// blobs go up in one PutObject from the staging file; large ones in a multipart upload whose parts
// stream from ranges of that file (s3-multipart.ts), aborted if any part fails.
//
// An object existing says nothing about whether a blob is committed: that is the commit index's
// job. A crash during a multipart upload leaves an incomplete upload, which S3 never shows as an
// object; a bucket lifecycle rule that aborts incomplete multipart uploads reclaims it.
import { createReadStream } from 'node:fs';
import { Agent as HttpAgent } from 'node:http';
import { Agent } from 'node:https';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { Digest } from '../cas/digest.ts';
import { unavailable } from '../cas/errors.ts';
import type { Settings } from '../config/schema.ts';
import {
  type AbandonedUploadHandler,
  BODY_READ_BYTES,
  type CompletedPart,
  describeS3Error,
  isRetryable,
  PART_ATTEMPTS,
  partSizeFor,
  S3Multipart,
} from './s3-multipart.ts';

export interface S3Settings {
  readonly endpoint: string | undefined;
  readonly bucket: string;
  readonly region: string;
  readonly forcePathStyle: boolean;
  readonly prefix: string;
  readonly multipartThresholdBytes: number;
  readonly partSizeBytes: number;
  readonly uploadConcurrency: number;
  readonly credentials:
    | {
        accessKeyId: string;
        secretAccessKey: string;
        sessionToken?: string | undefined;
      }
    | undefined;
}

/** The S3 part of the server's settings; `s3Bucket` must be set (S3 mode). */
export function s3SettingsFrom(settings: Settings): S3Settings {
  if (settings.s3Bucket === undefined) throw new Error('s3Bucket is not set: not in S3 mode');
  const { awsAccessKeyId, awsSecretAccessKey, awsSessionToken } = settings;
  return {
    endpoint: settings.s3Endpoint,
    bucket: settings.s3Bucket,
    region: settings.s3Region,
    forcePathStyle: settings.s3ForcePathStyle,
    prefix: settings.s3Prefix,
    multipartThresholdBytes: settings.s3MultipartThresholdBytes,
    partSizeBytes: settings.s3PartSizeBytes,
    uploadConcurrency: settings.s3UploadConcurrency,
    credentials:
      awsAccessKeyId && awsSecretAccessKey
        ? {
            accessKeyId: awsAccessKeyId,
            secretAccessKey: awsSecretAccessKey,
            sessionToken: awsSessionToken,
          }
        : undefined,
  };
}

/** Thrown by `get` when the object does not exist. */
export class ObjectMissingError extends Error {
  override readonly name = 'ObjectMissingError';
}

const MAX_SOCKETS = 256;
const QUIET_SDK_LOGGER = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};
export class S3ObjectStore {
  readonly client: S3Client;
  readonly multipart: S3Multipart;
  readonly #settings: S3Settings;

  constructor(settings: S3Settings, onAbandoned: AbandonedUploadHandler = () => undefined) {
    this.#settings = settings;
    this.client = new S3Client({
      endpoint: settings.endpoint,
      region: settings.region,
      forcePathStyle: settings.forcePathStyle,
      credentials: settings.credentials,
      // RGW answers 411 to streamed PUTs when the SDK adds its default trailing checksums; the
      // content is verified by Tessera's own digest instead.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 3,
      // Without a logger the SDK warns on the console when it cannot retry a streamed body; that
      // failure reaches Tessera's own logs with its context when it is returned.
      logger: QUIET_SDK_LOGGER,
      requestHandler: new NodeHttpHandler({
        httpAgent: new HttpAgent({ keepAlive: true, maxSockets: MAX_SOCKETS }),
        httpsAgent: new Agent({ keepAlive: true, maxSockets: MAX_SOCKETS }),
        connectionTimeout: 5_000,
        requestTimeout: 120_000,
      }),
    });
    this.multipart = new S3Multipart(this.client, settings.bucket, onAbandoned);
  }

  get settings(): S3Settings {
    return this.#settings;
  }

  keyOf(digest: Digest): string {
    return `${this.#settings.prefix}cas/${digest.fn.toLowerCase()}/${digest.hash}`;
  }

  /**
   * Uploads the file at `path` as the object for `digest`, and returns only once S3 holds all of
   * it. Multipart uploads are checked with a HEAD afterwards: some S3 servers (RGW) return no ETag
   * from CompleteMultipartUpload, and the size check costs one round trip per large blob.
   */
  async put(digest: Digest, path: string, bytes?: readonly Uint8Array[]): Promise<void> {
    const key = this.keyOf(digest);
    if (digest.size < this.#settings.multipartThresholdBytes) {
      await this.#putWhole(digest, key, path, bytes);
      return;
    }
    await this.#putInParts(digest, key, path);
    const stored = await this.head(digest);
    if (stored !== digest.size) {
      throw unavailable(
        `object store holds ${stored ?? 'no'} bytes for ${key} after upload, ` +
          `expected ${digest.size}`,
      );
    }
  }

  /**
   * One PutObject, sent again on a retryable failure (a 503 SlowDown is routine for S3). The body
   * is `bytes` when the caller still has the blob in memory (the same bytes as the file), which
   * spares opening and reading the file back.
   */
  async #putWhole(
    digest: Digest,
    key: string,
    path: string,
    bytes: readonly Uint8Array[] | undefined,
  ): Promise<void> {
    const inMemory = bytes && (bytes.length === 1 ? bytes[0] : Buffer.concat(bytes, digest.size));
    let lastError: unknown;
    for (let attempt = 1; attempt <= PART_ATTEMPTS; attempt++) {
      try {
        await this.client.send(
          new PutObjectCommand({
            Bucket: this.#settings.bucket,
            Key: key,
            Body:
              digest.size === 0
                ? new Uint8Array(0)
                : (inMemory ?? createReadStream(path, { highWaterMark: BODY_READ_BYTES })),
            ContentLength: digest.size,
          }),
        );
        return;
      } catch (error) {
        lastError = error;
        if (!isRetryable(error)) break;
      }
    }
    throw unavailable(
      `object store rejected the upload of ${key}: ${describeS3Error(lastError)}`,
      lastError,
    );
  }

  async #putInParts(digest: Digest, key: string, path: string): Promise<void> {
    const partSize = partSizeFor(digest.size, this.#settings.partSizeBytes);
    const count = Math.ceil(digest.size / partSize);
    const uploadId = await this.multipart.create(key);
    try {
      const parts: CompletedPart[] = [];
      let next = 0;
      const worker = async () => {
        while (next < count) {
          const index = next++;
          const start = index * partSize;
          const length = Math.min(partSize, digest.size - start);
          parts.push(
            await this.multipart.uploadPart(key, uploadId, index + 1, { path, start, length }),
          );
        }
      };
      const workers = Math.min(this.#settings.uploadConcurrency, count);
      const results = await Promise.allSettled(Array.from({ length: workers }, worker));
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
      await this.multipart.complete(key, uploadId, parts);
    } catch (error) {
      await this.multipart.abort(key, uploadId);
      throw error;
    }
  }

  /** The object's size, or undefined when it does not exist. */
  async head(digest: Digest): Promise<number | undefined> {
    try {
      const answer = await this.client.send(
        new HeadObjectCommand({
          Bucket: this.#settings.bucket,
          Key: this.keyOf(digest),
        }),
      );
      return answer.ContentLength;
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw unavailable(`object store HEAD failed: ${describeS3Error(error)}`, error);
    }
  }

  /** The bytes [offset, offset + length) of the object; `length` must be at least 1. */
  async get(digest: Digest, offset: number, length: number): Promise<AsyncIterable<Uint8Array>> {
    const key = this.keyOf(digest);
    try {
      const answer = await this.client.send(
        new GetObjectCommand({
          Bucket: this.#settings.bucket,
          Key: key,
          Range: `bytes=${offset}-${offset + length - 1}`,
        }),
      );
      if (!answer.Body) throw new Error('response has no body');
      return answer.Body as AsyncIterable<Uint8Array>;
    } catch (error) {
      if (isMissing(error)) throw new ObjectMissingError(`object ${key} does not exist`);
      throw unavailable(`object store GET of ${key} failed: ${describeS3Error(error)}`, error);
    }
  }

  async delete(digest: Digest): Promise<void> {
    await this.client.send(
      new DeleteObjectCommand({
        Bucket: this.#settings.bucket,
        Key: this.keyOf(digest),
      }),
    );
  }

  close(): void {
    this.multipart.close();
    this.client.destroy();
  }
}

function isMissing(error: unknown): boolean {
  if (error instanceof S3ServiceException) {
    return (
      error.name === 'NoSuchKey' ||
      error.name === 'NotFound' ||
      error.$metadata.httpStatusCode === 404
    );
  }
  return false;
}
