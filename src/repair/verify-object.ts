// Reads a stored object whole and checks it against a digest, streaming: memory stays at a few
// response chunks whatever the blob's size.
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { createHasher, type Digest } from '../cas/digest.ts';
import type { S3ObjectStore } from '../storage/s3-object-store.ts';

export type Verdict =
  | { readonly ok: true; readonly bytes: number }
  | {
      readonly ok: false;
      readonly reason: 'missing' | 'size' | 'mismatch';
      readonly detail: string;
    };

export async function verifyObject(objects: S3ObjectStore, digest: Digest): Promise<Verdict> {
  const key = objects.keyOf(digest);
  let body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
  try {
    const answer = await objects.client.send(
      new GetObjectCommand({ Bucket: objects.settings.bucket, Key: key }),
    );
    body = (answer.Body as AsyncIterable<Uint8Array> | undefined) ?? [];
  } catch (error) {
    const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata;
    if (status?.httpStatusCode === 404) {
      return { ok: false, reason: 'missing', detail: `object ${key} does not exist` };
    }
    throw error;
  }

  const hasher = await createHasher(digest.fn);
  let bytes = 0;
  for await (const chunk of body) {
    bytes += chunk.byteLength;
    hasher.update(chunk);
  }
  if (bytes !== digest.size) {
    return { ok: false, reason: 'size', detail: `object holds ${bytes} bytes, not ${digest.size}` };
  }
  const actual = hasher.digest();
  if (actual !== digest.hash) {
    return { ok: false, reason: 'mismatch', detail: `object hashes to ${actual}` };
  }
  return { ok: true, bytes };
}
