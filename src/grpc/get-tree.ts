// GetTree: every Directory under a root, breadth first, in pages. All pages are streamed in one
// call; each carries a page token from which a new call can resume. The token holds the digests
// still to visit, so any replica can continue a walk another one began. A directory reachable
// along two paths is sent once per page it is found in; subtrees that are not committed are
// skipped, as the protocol asks.
import type { ServerWritableStream } from '@grpc/grpc-js';
import type { Cas } from '../cas/cas.ts';
import { type Digest, digestKey, toDigest } from '../cas/digest.ts';
import { CasError, invalidArgument, notFound } from '../cas/errors.ts';
import { sendWithBackpressure } from './handlers.ts';
import type { Directory, GetTreeResponse } from './messages.ts';
import { decodeMessage } from './proto.ts';

const DEFAULT_PAGE_SIZE = 1_000;
/** Keeps each page well under the 4 MiB a default gRPC client accepts. */
const MAX_PAGE_BYTES = 2 * 1024 * 1024;
const READ_CONCURRENCY = 32;
const DIRECTORY_TYPE = 'build.bazel.remote.execution.v2.Directory';

export async function readTreePages(
  cas: Cas,
  call: ServerWritableStream<unknown, GetTreeResponse>,
  root: Digest,
  pageSize: number,
  pageToken: string,
): Promise<void> {
  const limit = pageSize > 0 ? pageSize : DEFAULT_PAGE_SIZE;
  const queue: Digest[] = pageToken ? decodeToken(pageToken, root) : [root];
  const first = !pageToken;

  let directories: Directory[] = [];
  let pageBytes = 0;
  let seen = new Set<string>();
  while (queue.length > 0) {
    const wave = queue.splice(0, Math.min(READ_CONCURRENCY, limit - directories.length));
    const blobs = await Promise.all(wave.map((digest) => readOptional(cas, digest)));
    for (const [i, blob] of blobs.entries()) {
      const digest = wave[i] as Digest;
      if (blob === undefined) {
        if (first && digest === root)
          throw notFound(`root directory ${digest.hash} is not in the cache`);
        continue;
      }
      if (seen.has(digestKey(digest))) continue;
      seen.add(digestKey(digest));
      const directory = decodeDirectory(blob, digest);
      directories.push(directory);
      pageBytes += blob.length;
      for (const child of directory.directories) {
        if (child.digest) queue.push(toDigest(root.fn, child.digest.hash, child.digest.sizeBytes));
      }
    }
    if (directories.length >= limit || pageBytes >= MAX_PAGE_BYTES) {
      const token = queue.length > 0 ? encodeToken(queue) : '';
      if (
        !(await sendWithBackpressure(call, {
          directories,
          nextPageToken: token,
        }))
      )
        return;
      directories = [];
      pageBytes = 0;
      seen = new Set();
    }
  }
  if (directories.length > 0 || first) {
    await sendWithBackpressure(call, { directories, nextPageToken: '' });
  }
}

async function readOptional(cas: Cas, digest: Digest): Promise<Buffer | undefined> {
  try {
    return await cas.readAll(digest);
  } catch (error) {
    if (error instanceof CasError && error.code === 'not_found') return undefined;
    throw error;
  }
}

function decodeDirectory(blob: Buffer, digest: Digest): Directory {
  try {
    return decodeMessage<Directory>(DIRECTORY_TYPE, blob);
  } catch {
    throw invalidArgument(`blob ${digest.hash} in the tree is not a Directory message`);
  }
}

function encodeToken(queue: readonly Digest[]): string {
  return Buffer.from(queue.map((d) => `${d.hash}/${d.size}`).join(',')).toString('base64url');
}

function decodeToken(token: string, root: Digest): Digest[] {
  const forged = (why: string) =>
    invalidArgument(`page_token "${token.slice(0, 40)}" was not issued by this server: ${why}`);
  const text = Buffer.from(token, 'base64url').toString('utf8');
  const digests: Digest[] = [];
  for (const entry of text.split(',')) {
    const [hash, size] = entry.split('/');
    if (!hash || size === undefined || !/^\d+$/.test(size)) {
      throw forged(`"${entry.slice(0, 40)}" is not a hash/size pair`);
    }
    try {
      digests.push(toDigest(root.fn, hash, Number(size)));
    } catch (error) {
      throw error instanceof CasError ? forged(error.message) : error;
    }
  }
  return digests;
}
