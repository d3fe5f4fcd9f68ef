// ByteStream Write from the client side: one blob, sent in the chunks its source yields (1 MiB
// from the uploader), never faster than the HTTP/2 stream drains. A server that already has the
// blob may answer before the last chunk; sending then stops and the blob counts as uploaded.
//
// A compressed Write (compressed-blobs/zstd) sends one zstd frame made as the source is read, in
// the encoder's pieces (up to 128 KiB each); its offsets and committed_size count compressed
// bytes, and a server that already has the blob answers -1.
import type { ClientWritableStream, ServiceError } from '@grpc/grpc-js';
import type { Digest } from '../cas/digest.ts';
import { compressStream } from '../cas/zstd.ts';
import type { WriteRequest } from '../grpc/messages.ts';
import { type ClientError, failure } from './errors.ts';

export type WriteCallback = (
  error: ServiceError | null,
  response: { committedSize: number },
) => void;

/** Opens a Write call whose final answer goes to `callback`. */
export type StartWrite = (callback: WriteCallback) => ClientWritableStream<WriteRequest>;

/**
 * Sends `source` (exactly digest.size bytes) as one Write under resource name `name`, respecting
 * the call's backpressure, and resolves once the server reports the whole blob committed. With
 * `compressed`, `name` must be a compressed-blobs/zstd one: the bytes go as one zstd frame.
 */
export async function writeBlob(
  start: StartWrite,
  name: string,
  digest: Digest,
  source: AsyncIterable<Uint8Array>,
  compressed = false,
): Promise<void> {
  let answered = false;
  let reply: WriteCallback = () => {};
  const answer = new Promise<number>((resolve, reject) => {
    reply = (error, response) => {
      answered = true;
      if (error) reject(error);
      else resolve(response.committedSize);
    };
  });
  const call = start(reply);
  // Handled here so a rejection that arrives while the loop below waits is not "unhandled".
  const settled = answer.then(
    () => undefined,
    () => undefined,
  );

  const requests = compressed
    ? compressedRequests(name, digest, source)
    : plainRequests(name, digest, source);
  let sent = 0;
  try {
    for await (const request of requests) {
      // The server answers before finish_write when it already has the blob: stop sending.
      if (answered) break;
      const more = call.write(request);
      sent = request.writeOffset + request.data.length;
      if (!more) await Promise.race([drained(call), settled]);
    }
  } catch (error) {
    call.cancel();
    await settled;
    throw error;
  } finally {
    call.end();
  }

  const committed = await answer;
  if (compressed ? committed !== -1 && committed !== sent : committed !== digest.size) {
    const expected = compressed ? `${sent} compressed bytes` : `${digest.size} bytes`;
    throw failure(
      `server committed ${committed} of ${expected} of blob ${digest.hash}/${digest.size}`,
    );
  }
}

/** The source's chunks as they are, the last one marked finish_write. */
async function* plainRequests(
  name: string,
  digest: Digest,
  source: AsyncIterable<Uint8Array>,
): AsyncGenerator<WriteRequest> {
  if (digest.size === 0) yield message(name, 0, Buffer.alloc(0), true);
  let offset = 0;
  for await (const chunk of source) {
    const end = offset + chunk.length;
    if (end > digest.size) throw changed(digest, `more than ${digest.size}`);
    yield message(offset === 0 ? name : '', offset, chunk, end === digest.size);
    offset = end;
  }
  if (offset !== digest.size) throw changed(digest, String(offset));
}

/**
 * The source compressed into one frame. Each piece is held back until the next one exists, so the
 * last carries finish_write; the encoder always ends with at least one piece (the frame's end).
 */
async function* compressedRequests(
  name: string,
  digest: Digest,
  source: AsyncIterable<Uint8Array>,
): AsyncGenerator<WriteRequest> {
  let offset = 0;
  let pending: Buffer | undefined;
  for await (const piece of compressStream(exactly(digest, source), digest.size)) {
    if (pending) {
      yield message(offset === 0 ? name : '', offset, pending, false);
      offset += pending.length;
    }
    pending = piece;
  }
  yield message(offset === 0 ? name : '', offset, pending ?? Buffer.alloc(0), true);
}

/** `source`, checked to hold exactly digest.size bytes before the encoder sees the end. */
async function* exactly(
  digest: Digest,
  source: AsyncIterable<Uint8Array>,
): AsyncGenerator<Uint8Array> {
  let total = 0;
  for await (const chunk of source) {
    total += chunk.length;
    if (total > digest.size) throw changed(digest, `more than ${digest.size}`);
    yield chunk;
  }
  if (total !== digest.size) throw changed(digest, String(total));
}

function message(
  resourceName: string,
  writeOffset: number,
  data: Uint8Array,
  finish: boolean,
): WriteRequest {
  const bytes = Buffer.isBuffer(data)
    ? data
    : Buffer.from(data.buffer, data.byteOffset, data.length);
  return { resourceName, writeOffset, data: bytes, finishWrite: finish };
}

function drained(call: ClientWritableStream<WriteRequest>): Promise<void> {
  return new Promise((resolve) => call.once('drain', () => resolve()));
}

function changed(digest: Digest, got: string): ClientError {
  return failure(
    `source of blob ${digest.hash}/${digest.size} has ${got} bytes; it changed since it was hashed`,
  );
}
