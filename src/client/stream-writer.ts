// ByteStream Write from the client side: one blob, sent in the chunks its source yields (1 MiB
// from the uploader), never faster than the HTTP/2 stream drains. A server that already has the
// blob may answer before the last chunk; sending then stops and the blob counts as uploaded.
import type { ClientWritableStream, ServiceError } from '@grpc/grpc-js';
import type { Digest } from '../cas/digest.ts';
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
 * the call's backpressure, and resolves once the server reports the whole blob committed.
 */
export async function writeBlob(
  start: StartWrite,
  name: string,
  digest: Digest,
  source: AsyncIterable<Uint8Array>,
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

  let offset = 0;
  try {
    if (digest.size === 0) call.write(message(name, 0, Buffer.alloc(0), true));
    for await (const chunk of source) {
      // The server answers before finish_write when it already has the blob: stop sending.
      if (answered) break;
      const end = offset + chunk.length;
      if (end > digest.size) throw changed(digest, `more than ${digest.size}`);
      const more = call.write(
        message(offset === 0 ? name : '', offset, chunk, end === digest.size),
      );
      offset = end;
      if (!more) await Promise.race([drained(call), settled]);
    }
    if (!answered && offset !== digest.size) throw changed(digest, String(offset));
  } catch (error) {
    call.cancel();
    await settled;
    throw error;
  } finally {
    call.end();
  }

  const committed = await answer;
  if (committed !== digest.size) {
    throw failure(
      `server committed ${committed} of ${digest.size} bytes of blob ${digest.hash}/${digest.size}`,
    );
  }
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
