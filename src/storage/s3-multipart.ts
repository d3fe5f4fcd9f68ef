// S3 multipart uploads, part by part, from files in the staging directory. Tessera drives the
// parts itself (rather than through @aws-sdk/lib-storage) for two reasons: each part streams from
// its file, so memory per upload stays at a few socket buffers whatever the part size; and the
// parts already stored can be recorded (see commit-index/upload-state.ts), so an upload broken off
// on one replica continues on another without the client resending them.
//
// S3's limits: parts of 5 MiB to 5 GiB (the last may be smaller), at most 10,000 parts. An
// incomplete multipart upload is never visible as an object; it holds storage until completed or
// aborted, which is why every failure path here aborts, and keeps retrying the abort while the
// store is down.
import { createReadStream } from 'node:fs';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  type S3Client,
  S3ServiceException,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { unavailable } from '../cas/errors.ts';

export const S3_MAX_PARTS = 10_000;
/**
 * Attempts per request with a streamed file body: the SDK does not retry those itself (it cannot
 * rewind a stream), so we do, opening the file again each time.
 */
export const PART_ATTEMPTS = 3;
/**
 * Read size of the file streams that carry part and object bodies to S3. Node's 64 KiB default
 * cost four times the read and socket-write calls, a visible share of the CPU of a large upload;
 * larger blocks would multiply the memory of concurrent uploads (each holds a few per part).
 */
export const BODY_READ_BYTES = 256 * 1024;
const ABORT_RETRY_BASE_MS = 500;
const ABORT_RETRY_MAX_MS = 60_000;
/** About an hour of retries; after that the bucket's lifecycle rule is the backstop. */
const MAX_ABORT_ATTEMPTS = 70;

const MIB = 1024 * 1024;

/** The part size for a blob: the configured one, grown so the blob fits in 10,000 parts. */
export function partSizeFor(size: number, configured: number): number {
  const needed = Math.ceil(size / S3_MAX_PARTS);
  return needed <= configured ? configured : Math.ceil(needed / MIB) * MIB;
}

export interface CompletedPart {
  readonly partNumber: number;
  readonly etag: string;
}

/** A part's bytes: `length` bytes of `path` from `start`. */
export interface PartSource {
  readonly path: string;
  readonly start: number;
  readonly length: number;
}

/** Told about a multipart upload that could not be aborted, for the log. */
export type AbandonedUploadHandler = (key: string, uploadId: string, error: unknown) => void;

export class S3Multipart {
  readonly #client: S3Client;
  readonly #bucket: string;
  readonly #onAbandoned: AbandonedUploadHandler;
  readonly #pendingAborts = new Set<string>();
  #closed = false;

  constructor(client: S3Client, bucket: string, onAbandoned: AbandonedUploadHandler) {
    this.#client = client;
    this.#bucket = bucket;
    this.#onAbandoned = onAbandoned;
  }

  /** Multipart uploads whose abort has not yet succeeded. */
  get pendingAborts(): number {
    return this.#pendingAborts.size;
  }

  async create(key: string): Promise<string> {
    const answer = await this.#send('start a multipart upload', key, () =>
      this.#client.send(new CreateMultipartUploadCommand({ Bucket: this.#bucket, Key: key })),
    );
    if (!answer.UploadId) throw unavailable(`object store gave no upload id for ${key}`);
    return answer.UploadId;
  }

  async uploadPart(
    key: string,
    uploadId: string,
    partNumber: number,
    source: PartSource,
  ): Promise<CompletedPart> {
    let lastError: unknown;
    for (let attempt = 1; attempt <= PART_ATTEMPTS; attempt++) {
      try {
        const answer = await this.#client.send(
          new UploadPartCommand({
            Bucket: this.#bucket,
            Key: key,
            UploadId: uploadId,
            PartNumber: partNumber,
            ContentLength: source.length,
            Body:
              source.length === 0
                ? new Uint8Array(0)
                : createReadStream(source.path, {
                    start: source.start,
                    end: source.start + source.length - 1,
                    highWaterMark: BODY_READ_BYTES,
                  }),
          }),
        );
        if (!answer.ETag) throw new Error(`no ETag for part ${partNumber}`);
        return { partNumber, etag: answer.ETag };
      } catch (error) {
        lastError = error;
        if (!isRetryable(error)) break;
      }
    }
    throw unavailable(
      `object store rejected part ${partNumber} of ${key}: ${describeS3Error(lastError)}`,
      lastError,
    );
  }

  async complete(key: string, uploadId: string, parts: readonly CompletedPart[]): Promise<void> {
    const sorted = [...parts].sort((a, b) => a.partNumber - b.partNumber);
    await this.#send('complete a multipart upload', key, () =>
      this.#client.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.#bucket,
          Key: key,
          UploadId: uploadId,
          MultipartUpload: {
            Parts: sorted.map((p) => ({ PartNumber: p.partNumber, ETag: p.etag })),
          },
        }),
      ),
    );
  }

  /**
   * Aborts now and, if the store does not answer, keeps retrying in the background. Resolves once
   * the first attempt is over, whatever its outcome.
   */
  async abort(key: string, uploadId: string): Promise<void> {
    await this.#abortAttempt(key, uploadId, 0);
  }

  close(): void {
    this.#closed = true;
  }

  async #abortAttempt(key: string, uploadId: string, attempt: number): Promise<void> {
    this.#pendingAborts.add(uploadId);
    try {
      await this.#client.send(
        new AbortMultipartUploadCommand({ Bucket: this.#bucket, Key: key, UploadId: uploadId }),
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
      const delay = Math.min(ABORT_RETRY_BASE_MS * 2 ** attempt, ABORT_RETRY_MAX_MS);
      setTimeout(() => void this.#abortAttempt(key, uploadId, attempt + 1), delay).unref();
    }
  }

  async #send<T>(what: string, key: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      throw unavailable(
        `object store failed to ${what} for ${key}: ${describeS3Error(error)}`,
        error,
      );
    }
  }
}

/** Whether an S3 failure may pass if the request is sent again (5xx, throttling, network). */
export function isRetryable(error: unknown): boolean {
  if (error instanceof S3ServiceException) {
    const code = error.$metadata.httpStatusCode ?? 500;
    return (
      code >= 500 || code === 429 || error.name === 'SlowDown' || error.name === 'RequestTimeout'
    );
  }
  return true;
}

export function describeS3Error(error: unknown): string {
  if (error instanceof S3ServiceException) {
    return `${error.name} (HTTP ${error.$metadata.httpStatusCode ?? '?'})`;
  }
  if (error instanceof Error) return (error as NodeJS.ErrnoException).code ?? error.message;
  return String(error);
}
