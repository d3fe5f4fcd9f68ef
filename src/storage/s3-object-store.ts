// Blob content in S3-compatible object storage (AWS S3, MinIO, Ceph RGW).
//
// Objects: `{prefix}cas/{fn}/{hash}`, the whole blob, written once per commit (rewriting the same
// key with the same bytes is harmless, which is what makes replicas safe without locks). Small
// blobs go up in one PutObject from the staging file; large ones in a multipart upload through
// @aws-sdk/lib-storage, which aborts the upload when a part fails so no parts are stranded.
//
// An object existing says nothing about whether a blob is committed: that is the commit index's
// job. A crash during a multipart upload leaves an incomplete upload, which S3 never shows as an
// object; a bucket lifecycle rule that aborts incomplete multipart uploads reclaims it.
import { createReadStream } from 'node:fs';
import { Agent as HttpAgent } from 'node:http';
import { Agent } from 'node:https';
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { Digest } from '../cas/digest.ts';
import { unavailable } from '../cas/errors.ts';

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

/** Thrown by `get` when the object does not exist. */
export class ObjectMissingError extends Error {
  override readonly name = 'ObjectMissingError';
}

const MAX_SOCKETS = 256;
const ABORT_RETRY_BASE_MS = 500;
const ABORT_RETRY_MAX_MS = 60_000;
/** About an hour of retries; after that the bucket's lifecycle rule is the backstop. */
const MAX_ABORT_ATTEMPTS = 70;

/** Told about a multipart upload that could not be aborted, for the log. */
export type AbandonedUploadHandler = (key: string, uploadId: string, error: unknown) => void;

export class S3ObjectStore {
  readonly client: S3Client;
  readonly #settings: S3Settings;
  readonly #pendingAborts = new Set<string>();
  readonly #onAbandoned: AbandonedUploadHandler;
  #closed = false;

  constructor(settings: S3Settings, onAbandoned: AbandonedUploadHandler = () => undefined) {
    this.#settings = settings;
    this.#onAbandoned = onAbandoned;
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
      requestHandler: new NodeHttpHandler({
        httpAgent: new HttpAgent({ keepAlive: true, maxSockets: MAX_SOCKETS }),
        httpsAgent: new Agent({ keepAlive: true, maxSockets: MAX_SOCKETS }),
        connectionTimeout: 5_000,
        requestTimeout: 120_000,
      }),
    });
  }

  keyOf(digest: Digest): string {
    return `${this.#settings.prefix}cas/${digest.fn.toLowerCase()}/${digest.hash}`;
  }

  /**
   * Uploads the file at `path` as the object for `digest`, and returns only once S3 holds all of
   * it. Multipart uploads are checked with a HEAD afterwards: some S3 servers (RGW) return no ETag
   * from CompleteMultipartUpload, and the size check costs one round trip per large blob.
   */
  async put(digest: Digest, path: string): Promise<void> {
    const key = this.keyOf(digest);
    const { bucket } = this.#settings;
    let upload: Upload | undefined;
    try {
      if (digest.size < this.#settings.multipartThresholdBytes) {
        await this.client.send(
          new PutObjectCommand({
            Bucket: bucket,
            Key: key,
            Body: digest.size === 0 ? new Uint8Array(0) : createReadStream(path),
            ContentLength: digest.size,
          }),
        );
        return;
      }
      upload = new Upload({
        client: this.client,
        params: { Bucket: bucket, Key: key, Body: createReadStream(path) },
        partSize: this.#settings.partSizeBytes,
        queueSize: this.#settings.uploadConcurrency,
        leavePartsOnError: false,
      });
      await upload.done();
    } catch (error) {
      // lib-storage aborts the multipart upload on failure, but that abort can itself fail (the
      // store is down). Abort again here, and keep retrying in the background until it sticks.
      if (upload?.uploadId) this.#abortSoon(key, upload.uploadId, 0);
      throw unavailable(`object store rejected the upload of ${key}: ${describe(error)}`, error);
    }
    const stored = await this.head(digest);
    if (stored !== digest.size) {
      throw unavailable(
        `object store holds ${stored ?? 'no'} bytes for ${key} after upload, expected ${digest.size}`,
      );
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
      throw unavailable(`object store HEAD failed: ${describe(error)}`, error);
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
      throw unavailable(`object store GET of ${key} failed: ${describe(error)}`, error);
    }
  }

  /** Multipart uploads whose abort has not yet succeeded. */
  get pendingAborts(): number {
    return this.#pendingAborts.size;
  }

  #abortSoon(key: string, uploadId: string, attempt: number): void {
    this.#pendingAborts.add(uploadId);
    const run = async () => {
      try {
        await this.client.send(
          new AbortMultipartUploadCommand({
            Bucket: this.#settings.bucket,
            Key: key,
            UploadId: uploadId,
          }),
        );
        this.#pendingAborts.delete(uploadId);
      } catch (error) {
        if (error instanceof S3ServiceException && error.name === 'NoSuchUpload') {
          this.#pendingAborts.delete(uploadId);
          return;
        }
        if (this.#closed || attempt >= MAX_ABORT_ATTEMPTS) {
          this.#pendingAborts.delete(uploadId);
          this.#onAbandoned(key, uploadId, error);
          return;
        }
        const timer = setTimeout(
          () => this.#abortSoon(key, uploadId, attempt + 1),
          Math.min(ABORT_RETRY_BASE_MS * 2 ** attempt, ABORT_RETRY_MAX_MS),
        );
        timer.unref();
      }
    };
    void run();
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
    this.#closed = true;
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

function describe(error: unknown): string {
  if (error instanceof S3ServiceException) {
    return `${error.name} (HTTP ${error.$metadata.httpStatusCode ?? '?'})`;
  }
  if (error instanceof Error) return (error as NodeJS.ErrnoException).code ?? error.message;
  return String(error);
}
