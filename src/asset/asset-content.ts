// Whether everything an asset mapping names is committed. A pushed directory is whole only when
// its root Directory, every Directory below it and every file in them are committed, so Push
// refuses a mapping to a partial tree and Fetch never hands out one. The check goes through
// `Cas.findMissing` and `Cas.readAll`, so it sees exactly the commits the CAS serves and refreshes
// the lease of everything it finds, keeping a fetched asset's content alive.

import type { Cas } from '../cas/cas.ts';
import { mapConcurrently } from '../cas/concurrency.ts';
import { type Digest, digestKey, formatDigest, fromWireDigest } from '../cas/digest.ts';
import { CasError, invalidArgument } from '../cas/errors.ts';
import type { Directory } from '../grpc/messages.ts';
import { decodeMessage } from '../grpc/proto.ts';
import type { AssetKind } from './asset-record.ts';

const DIRECTORY_TYPE = 'build.bazel.remote.execution.v2.Directory';
const READ_CONCURRENCY = 32;
/** Trees larger than this are refused: each check reads every Directory of the tree. */
export const MAX_TREE_DIRECTORIES = 100_000;

export interface AssetContent {
  readonly kind: AssetKind;
  readonly target: Digest;
  readonly referencedBlobs: readonly Digest[];
  readonly referencedDirectories: readonly Digest[];
}

export interface MissingContent {
  readonly digest: Digest;
  /** Where in the mapping it was named, for messages. */
  readonly where: string;
}

/**
 * The first piece of content that is not committed, checking the target first, then the
 * referenced blobs, then the referenced directory trees; undefined when all of it is committed.
 */
export async function findMissingContent(
  cas: Cas,
  content: AssetContent,
): Promise<MissingContent | undefined> {
  if (content.kind === 'blob') {
    const [missing] = await cas.findMissing([content.target]);
    if (missing) return { digest: missing, where: 'blob_digest' };
  } else {
    const missing = await findMissingInTrees(cas, [content.target]);
    if (missing) return { digest: missing, where: 'the tree of root_directory_digest' };
  }
  const [blob] = await cas.findMissing(content.referencedBlobs);
  if (blob) return { digest: blob, where: 'references_blobs' };
  const inTree = await findMissingInTrees(cas, content.referencedDirectories);
  if (inTree) return { digest: inTree, where: 'the trees of references_directories' };
  return undefined;
}

/**
 * The first Directory or file under `roots` that is not committed, breadth first (each level's
 * Directories before their files); undefined when every tree is whole.
 */
export async function findMissingInTrees(
  cas: Cas,
  roots: readonly Digest[],
): Promise<Digest | undefined> {
  const seen = new Set<string>();
  let level = unseen(roots, seen);
  while (level.length > 0) {
    if (seen.size > MAX_TREE_DIRECTORIES) {
      throw new CasError(
        'resource_exhausted',
        `directory tree has more than ${MAX_TREE_DIRECTORIES} directories`,
      );
    }
    const [missingDirectory] = await cas.findMissing(level);
    if (missingDirectory) return missingDirectory;

    const read = await mapConcurrently(level, READ_CONCURRENCY, (digest) =>
      readDirectory(cas, digest),
    );
    const vanished = read.find((entry) => entry.directory === undefined);
    if (vanished) return vanished.digest;

    const files = new Map<string, Digest>();
    const children: Digest[] = [];
    for (const { digest, directory } of read) {
      for (const file of directory?.files ?? []) {
        const fileDigest = childDigest(file.digest, digest, `file "${file.name}"`);
        files.set(digestKey(fileDigest), fileDigest);
      }
      for (const child of directory?.directories ?? []) {
        children.push(childDigest(child.digest, digest, `directory "${child.name}"`));
      }
    }
    const [missingFile] = await cas.findMissing([...files.values()]);
    if (missingFile) return missingFile;
    level = unseen(children, seen);
  }
  return undefined;
}

/** The Directory, or undefined when its commit vanished since the lookup. */
async function readDirectory(
  cas: Cas,
  digest: Digest,
): Promise<{ digest: Digest; directory: Directory | undefined }> {
  let blob: Buffer;
  try {
    blob = await cas.readAll(digest);
  } catch (error) {
    if (error instanceof CasError && error.code === 'not_found') {
      return { digest, directory: undefined };
    }
    throw error;
  }
  try {
    return { digest, directory: decodeMessage<Directory>(DIRECTORY_TYPE, blob) };
  } catch {
    throw invalidArgument(`blob ${formatDigest(digest)} in the tree is not a Directory message`);
  }
}

function childDigest(
  wire: { hash: string; sizeBytes: number } | null,
  parent: Digest,
  what: string,
): Digest {
  try {
    return fromWireDigest(wire, parent.fn);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw invalidArgument(`${what} in Directory ${formatDigest(parent)}: ${reason}`);
  }
}

function unseen(digests: readonly Digest[], seen: Set<string>): Digest[] {
  const fresh: Digest[] = [];
  for (const digest of digests) {
    const key = digestKey(digest);
    if (seen.has(key)) continue;
    seen.add(key);
    fresh.push(digest);
  }
  return fresh;
}
