// The four timed transfers: the AWS SDK straight to S3 (the baseline), and ByteStream Write and
// Read through Tessera. All of them stream: a file is read from disk a block at a time and a
// download is hashed and counted as it arrives, so memory stays flat whatever the blob size.
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { ClientReadableStream, ClientWritableStream, ServiceError } from '@grpc/grpc-js';
import type { TestClient } from '../test/support/client.ts';
import { type BenchFile, BLOCK_BYTES } from './files.ts';
import { since } from './measure.ts';

export interface UploadTiming {
  readonly seconds: number;
  /** Tessera only: from the last byte leaving the client to the server's answer. */
  readonly afterLastByteSeconds?: number;
}

export interface DownloadTiming {
  readonly seconds: number;
  readonly bytes: number;
  readonly sha256: string;
}

export interface MultipartSettings {
  readonly partSizeBytes: number;
  readonly queueSize: number;
}

/** lib-storage's multipart upload of the file, as Tessera itself uploads a staged blob. */
export async function sdkUpload(
  s3: S3Client,
  target: { bucket: string; key: string },
  file: BenchFile,
  multipart: MultipartSettings,
): Promise<UploadTiming> {
  const started = performance.now();
  const upload = new Upload({
    client: s3,
    params: { Bucket: target.bucket, Key: target.key, Body: createReadStream(file.path) },
    partSize: multipart.partSizeBytes,
    queueSize: multipart.queueSize,
    leavePartsOnError: false,
  });
  await upload.done();
  return { seconds: since(started) };
}

export async function sdkDownload(
  s3: S3Client,
  target: { bucket: string; key: string },
): Promise<DownloadTiming> {
  const started = performance.now();
  const answer = await s3.send(new GetObjectCommand({ Bucket: target.bucket, Key: target.key }));
  if (!answer.Body) throw new Error(`GetObject of ${target.key} returned no body`);
  const { bytes, sha256 } = await countAndHash(answer.Body as AsyncIterable<Uint8Array>);
  return { seconds: since(started), bytes, sha256 };
}

interface WriteMessage {
  resourceName: string;
  writeOffset: number;
  data: Buffer;
  finishWrite: boolean;
}

type WriteCallback = (error: ServiceError | null, response: { committedSize: number }) => void;

/**
 * Streams the file to ByteStream Write in `chunkBytes` messages, waiting for 'drain' whenever the
 * call's buffer is full. Resolves once the server answers, which Tessera does only after commit.
 */
export async function byteStreamWrite(
  client: TestClient,
  resourceName: string,
  file: BenchFile,
  chunkBytes: number,
): Promise<UploadTiming> {
  if (file.size === 0) throw new Error('the bench writes non-empty blobs only');
  const started = performance.now();
  const startCall = client.byteStream.Write as (
    callback: WriteCallback,
  ) => ClientWritableStream<WriteMessage>;
  let call: ClientWritableStream<WriteMessage> | undefined;
  const answer = new Promise<number>((resolve, reject) => {
    call = startCall.call(client.byteStream, (error, response) =>
      error ? reject(error) : resolve(Number(response.committedSize)),
    );
  });
  if (!call) throw new Error('ByteStream Write did not start a call');
  const stream = call;
  let answered = false;
  // Marks the answer as handled; awaiting it below still surfaces a failure.
  const settled = answer.then(
    () => {
      answered = true;
    },
    () => {
      answered = true;
    },
  );

  const source = createReadStream(file.path, { highWaterMark: BLOCK_BYTES });
  let offset = 0;
  try {
    for await (const block of source as AsyncIterable<Buffer>) {
      for (let at = 0; at < block.length && !answered; at += chunkBytes) {
        const data = block.subarray(at, Math.min(at + chunkBytes, block.length));
        const message: WriteMessage = {
          resourceName: offset === 0 ? resourceName : '',
          writeOffset: offset,
          data,
          finishWrite: offset + data.length === file.size,
        };
        offset += data.length;
        if (!stream.write(message)) await Promise.race([once(stream, 'drain'), answer]);
      }
      // The server answered before the end: the blob was already there, or the write failed.
      if (answered) break;
    }
  } catch (error) {
    stream.cancel();
    throw error;
  } finally {
    source.destroy();
  }

  const flushed = once(stream, 'finish');
  stream.end();
  await Promise.race([flushed, settled]);
  const lastByteAt = performance.now();
  const committedSize = await answer;
  if (committedSize !== file.size) {
    throw new Error(`Write of ${resourceName} answered committed_size ${committedSize}`);
  }
  return { seconds: since(started), afterLastByteSeconds: since(lastByteAt) };
}

/** Streams ByteStream Read of the whole blob, counting and hashing what arrives. */
export async function byteStreamRead(
  client: TestClient,
  resourceName: string,
): Promise<DownloadTiming> {
  const started = performance.now();
  const startCall = client.byteStream.Read as (request: object) => ClientReadableStream<{
    data: Buffer;
  }>;
  const call = startCall.call(client.byteStream, { resourceName, readOffset: 0, readLimit: 0 });
  const { bytes, sha256 } = await countAndHash(
    (async function* () {
      for await (const message of call as AsyncIterable<{ data: Buffer }>) yield message.data;
    })(),
  );
  return { seconds: since(started), bytes, sha256 };
}

async function countAndHash(
  source: AsyncIterable<Uint8Array>,
): Promise<{ bytes: number; sha256: string }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of source) {
    hash.update(chunk);
    bytes += chunk.length;
  }
  return { bytes, sha256: hash.digest('hex') };
}
