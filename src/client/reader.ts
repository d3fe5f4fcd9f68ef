// Reads one blob with ByteStream, hashing as the bytes arrive, and hands each chunk on before the
// next is requested, so a slow sink (a file, a pipe) holds the stream back instead of memory
// filling up. A read the server breaks off with UNAVAILABLE resumes at the byte it stopped at.
//
// The digest can only be checked after the last byte: a sink has already seen every chunk when a
// mismatch is reported. Sinks that must not keep bad data (files) remove it on that error.
import { createHasher, type Digest, isEmptyDigest } from '../cas/digest.ts';
import { type Connection, withRetries } from './connection.ts';
import { failure, toClientError } from './errors.ts';

export type ChunkSink = (chunk: Buffer) => Promise<void> | void;

/** Streams the blob into `sink`; throws a ClientError when it is missing or does not match. */
export async function readBlob(
  connection: Connection,
  digest: Digest,
  sink: ChunkSink,
): Promise<void> {
  if (isEmptyDigest(digest)) return;
  const hasher = await createHasher(digest.fn);
  const name = `${digest.hash}/${digest.size}`;

  let received = 0;
  try {
    await withRetries(async () => {
      for await (const chunk of connection.read(digest, received)) {
        if (received + chunk.length > digest.size) {
          throw failure(`blob ${name} sent more than ${digest.size} bytes: digest mismatch`);
        }
        hasher.update(chunk);
        received += chunk.length;
        await sink(chunk);
      }
    });
  } catch (error) {
    throw toClientError(error, `reading blob ${name}`);
  }

  const hash = hasher.digest();
  if (received !== digest.size || hash !== digest.hash) {
    throw failure(`blob ${name} arrived as ${received} bytes hashing to ${hash}: digest mismatch`);
  }
}

/** The whole blob in memory; for blobs known to be small, such as Directory messages. */
export async function readBlobBytes(connection: Connection, digest: Digest): Promise<Buffer> {
  const parts: Buffer[] = [];
  await readBlob(connection, digest, (chunk) => void parts.push(chunk));
  return Buffer.concat(parts);
}
