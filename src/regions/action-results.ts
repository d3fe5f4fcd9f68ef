// Read-through of action results: on a local miss, ask the peer regions for the result, read
// through every blob it references, and store the result here only once the completeness check
// (src/cas/action-results.ts) passes against this region's own commits. So a result this region
// serves never sends a client after an output this region does not hold, whatever the peer did.
import { directReferences, findMissingReferences } from '../cas/action-results.ts';
import type { Cas } from '../cas/cas.ts';
import { type Digest, formatDigest } from '../cas/digest.ts';
import type { ActionCacheStore } from '../cas/store.ts';
import { encodeMessage } from '../grpc/proto.ts';
import type { Logger } from '../observability/logger.ts';
import { isPeerCall } from './peer-call.ts';
import type { ReadThrough } from './read-through.ts';

const ACTION_RESULT_TYPE = 'build.bazel.remote.execution.v2.ActionResult';

export class ReadThroughActionCache implements ActionCacheStore {
  readonly #local: ActionCacheStore;
  readonly #readThrough: ReadThrough;
  readonly #cas: Cas;
  readonly #log: Logger;

  constructor(local: ActionCacheStore, readThrough: ReadThrough, cas: Cas, log: Logger) {
    this.#local = local;
    this.#readThrough = readThrough;
    this.#cas = cas;
    this.#log = log;
  }

  async getActionResult(instance: string, action: Digest): Promise<Buffer | undefined> {
    const local = await this.#local.getActionResult(instance, action);
    if (local !== undefined || !this.#readThrough.enabled || isPeerCall()) return local;

    const found = await this.#readThrough.findActionResult(instance, action);
    if (found === undefined) return undefined;
    const { result, peer } = found;
    const log = this.#log.child({ action: formatDigest(action), peer });
    try {
      await this.#readThrough.fill(directReferences(result, action.fn), 'read');
      let missing = await findMissingReferences(this.#cas, result, action.fn);
      if (missing.length > 0) {
        await this.#readThrough.fill(missing, 'read');
        missing = await findMissingReferences(this.#cas, result, action.fn);
      }
      if (missing.length > 0) {
        log.info(
          { missing: missing.slice(0, 5).map(formatDigest) },
          "peer region's action result not stored: outputs could not all be read through",
        );
        return undefined;
      }
    } catch (error) {
      log.warn({ err: error }, "peer region's action result not stored");
      return undefined;
    }
    const encoded = encodeMessage(ACTION_RESULT_TYPE, result);
    await this.#local.putActionResult(instance, action, encoded);
    log.info('action result read through from a peer region');
    return encoded;
  }

  putActionResult(instance: string, action: Digest, encoded: Uint8Array): Promise<void> {
    return this.#local.putActionResult(instance, action, encoded);
  }
}
