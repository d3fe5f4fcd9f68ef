// What an ActionResult references, and whether all of it is committed. An action result is served
// only when every blob a client may fetch because of it is committed: output files, stdout and
// stderr, each output directory's Tree blob and every file inside that tree.
import type { ActionResult, Tree } from '../grpc/messages.ts';
import { decodeMessage } from '../grpc/proto.ts';
import type { Cas } from './cas.ts';
import {
  type Digest,
  type DigestFunction,
  digestKey,
  formatDigest,
  fromWireDigest,
} from './digest.ts';
import { invalidArgument } from './errors.ts';

const TREE_TYPE = 'build.bazel.remote.execution.v2.Tree';

/** Digests an ActionResult names directly. Throws INVALID_ARGUMENT on a malformed one. */
export function directReferences(result: ActionResult, fn: DigestFunction): Digest[] {
  const digests: Digest[] = [];
  const add = (wire: { hash: string; sizeBytes: number } | null, what: string) => {
    if (!wire) return;
    try {
      digests.push(fromWireDigest(wire, fn));
    } catch (error) {
      throw invalidArgument(`${what}: ${(error as Error).message}`);
    }
  };
  for (const file of result.outputFiles) {
    if (!file.digest) throw invalidArgument(`output file "${file.path}" has no digest`);
    add(file.digest, `output file "${file.path}"`);
  }
  for (const dir of result.outputDirectories) {
    if (!dir.treeDigest) throw invalidArgument(`output directory "${dir.path}" has no tree digest`);
    add(dir.treeDigest, `output directory "${dir.path}"`);
    add(dir.rootDirectoryDigest, `output directory "${dir.path}" root`);
  }
  add(result.stdoutDigest, 'stdout digest');
  add(result.stderrDigest, 'stderr digest');
  return digests;
}

/**
 * The referenced blobs that are not committed (empty when the result can be served). Looking them
 * up refreshes their leases, so a served result keeps its outputs alive.
 */
export async function findMissingReferences(
  cas: Cas,
  result: ActionResult,
  fn: DigestFunction,
): Promise<Digest[]> {
  const direct = directReferences(result, fn);
  const missing = await cas.findMissing(direct);
  if (missing.length > 0) return missing;

  const treeFiles = new Map<string, Digest>();
  for (const dir of result.outputDirectories) {
    const treeDigest = fromWireDigest(dir.treeDigest, fn);
    const tree = decodeTree(await cas.readAll(treeDigest), dir.path, treeDigest);
    for (const directory of [tree.root, ...tree.children]) {
      for (const file of directory?.files ?? []) {
        const digest = fromWireDigest(file.digest, fn);
        treeFiles.set(digestKey(digest), digest);
      }
    }
  }
  return cas.findMissing([...treeFiles.values()]);
}

/** The committed blob an output directory names as its tree; a client's error if it is none. */
function decodeTree(blob: Buffer, path: string, digest: Digest): Tree {
  try {
    return decodeMessage<Tree>(TREE_TYPE, blob);
  } catch {
    throw invalidArgument(
      `output directory "${path}": tree_digest ${formatDigest(digest)} is not a Tree message`,
    );
  }
}
