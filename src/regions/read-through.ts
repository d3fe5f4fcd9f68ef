// Read-through from peer regions: on a local miss, find which peers have the blobs, fetch each
// from one of them, verify it against its digest while it is spooled into local staging, and
// commit it through this region's normal write path (S3, then the Redis commit). Only then does
// the caller see it, so this region never serves or reports a blob it does not hold itself.
//
// Bounds: every peer call has the `timeoutMs` deadline (a read: for its first message and for
// every gap). A peer that fails `FAILURE_THRESHOLD` times in a row is skipped for a cool-down
// (circuit-breaker.ts). A lookup-driven fetch (FindMissingBlobs) waits at most `timeoutMs` for the
// bytes and fetches at most LOOKUP_FETCH_MAX_BYTES per call; what is not committed by then is
// answered missing, and the fetches still running finish in the background. Concurrent misses of
// one digest share one fetch; a fetch and a client's upload of the same digest share one commit
// (Cas.commitOnce).
//
// A crash mid-fetch leaves a spool file (swept at the next start) or an aborted multipart upload
// (the janitor's business); never a commit, because the commit is the last step of Cas.putStream.
import { mapConcurrently } from '../cas/concurrency.ts';
import { type Digest, digestKey, formatDigest, isEmptyDigest } from '../cas/digest.ts';
import { CasError } from '../cas/errors.ts';
import type { ActionResult } from '../grpc/messages.ts';
import type { Logger } from '../observability/logger.ts';
import { CircuitBreaker } from './circuit-breaker.ts';
import { isPeerCall } from './peer-call.ts';
import type { PeerClient } from './peer-client.ts';

/** Failures in a row that make a peer skipped for COOL_DOWN_MS. */
const FAILURE_THRESHOLD = 3;
/** How long a failing peer is skipped before one call probes it again. */
export const COOL_DOWN_MS = 10_000;
/** Blobs fetched at the same time for one call. */
const FETCH_CONCURRENCY = 8;
/**
 * Bytes a FindMissingBlobs call may pull from peers before answering; larger sets are answered
 * missing (the client then uploads them, which is always correct).
 */
export const LOOKUP_FETCH_MAX_BYTES = 256 * 1024 * 1024;

/** Where fetched bytes go: verified while spooled, then committed (Cas.putStream). */
export interface ReadThroughTarget {
  putStream(digest: Digest, source: AsyncIterable<Uint8Array>): Promise<void>;
}

export interface ReadThroughOptions {
  readonly timeoutMs: number;
  readonly log: Logger;
  /** Overrides COOL_DOWN_MS (tests). */
  readonly coolDownMs?: number;
}

/** `lookup`: bounded by the deadline, for FindMissingBlobs. `read`: wait for every fetch. */
export type FillMode = 'lookup' | 'read';

interface Peer {
  readonly client: PeerClient;
  readonly breaker: CircuitBreaker;
}

/** An error that came from the peer (or the link to it), not from this region's own stores. */
class PeerFault extends Error {
  override readonly name = 'PeerFault';
}

export class ReadThrough {
  readonly #peers: readonly Peer[];
  readonly #options: ReadThroughOptions;
  readonly #inflight = new Map<string, Promise<boolean>>();
  #target: ReadThroughTarget | undefined;

  constructor(clients: readonly PeerClient[], options: ReadThroughOptions) {
    const coolDownMs = options.coolDownMs ?? COOL_DOWN_MS;
    this.#peers = clients.map((client) => ({
      client,
      breaker: new CircuitBreaker({ failureThreshold: FAILURE_THRESHOLD, coolDownMs }),
    }));
    this.#options = options;
  }

  /** Binds the CAS the fetched blobs are committed to; once, before serving. */
  bind(target: ReadThroughTarget): void {
    this.#target = target;
  }

  get enabled(): boolean {
    return this.#peers.length > 0;
  }

  /**
   * Fetches from peer regions those of `digests` (all missing here) that a peer has, and commits
   * them here. Resolves with the keys (digestKey) committed here by the time it returns. Never
   * rejects: a peer that is down, slow or wrong costs at most its deadline, then a miss.
   */
  async fill(digests: readonly Digest[], mode: FillMode): Promise<Set<string>> {
    const filled = new Set<string>();
    const wanted = digests.filter((digest) => !isEmptyDigest(digest));
    if (!this.enabled || this.#target === undefined || wanted.length === 0 || isPeerCall()) {
      return filled;
    }

    const holders = await this.#locate(wanted);
    let budget = mode === 'lookup' ? LOOKUP_FETCH_MAX_BYTES : Number.POSITIVE_INFINITY;
    const fetchable = wanted.filter((digest) => {
      if (!holders.has(digestKey(digest)) || digest.size > budget) return false;
      budget -= digest.size;
      return true;
    });
    if (fetchable.length === 0) return filled;

    const all = mapConcurrently(fetchable, FETCH_CONCURRENCY, async (digest) => {
      const key = digestKey(digest);
      if (await this.#fetchShared(digest, holders.get(key) ?? [])) filled.add(key);
    }).catch((error: unknown) => {
      this.#options.log.error({ err: error }, 'read-through failed unexpectedly');
    });
    if (mode === 'read') {
      await all;
      return filled;
    }
    // The fetches go on after the deadline and commit what they get; the answer does not wait.
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.#options.timeoutMs);
    });
    await Promise.race([all, deadline]);
    clearTimeout(timer);
    return new Set(filled);
  }

  /** Which peers hold which digests; each available peer asked once, all in parallel. */
  async #locate(digests: readonly Digest[]): Promise<Map<string, Peer[]>> {
    const holders = new Map<string, Peer[]>();
    const answers = await Promise.all(
      this.#peers.map(async (peer) => {
        if (!peer.breaker.tryAcquire()) return undefined;
        try {
          const present = await peer.client.lookup(digests);
          peer.breaker.succeeded();
          return { peer, present };
        } catch (error) {
          this.#peerFailed(peer, error, `looking up ${digests.length} blob(s)`);
          return undefined;
        }
      }),
    );
    // Peers keep their configured order, so the first one listed is asked first.
    for (const answer of answers) {
      if (answer === undefined) continue;
      for (const key of answer.present) {
        const list = holders.get(key);
        if (list) list.push(answer.peer);
        else holders.set(key, [answer.peer]);
      }
    }
    return holders;
  }

  #fetchShared(digest: Digest, peers: readonly Peer[]): Promise<boolean> {
    const key = digestKey(digest);
    const running = this.#inflight.get(key);
    if (running !== undefined) return running;
    const fetch = this.#fetch(digest, peers).finally(() => this.#inflight.delete(key));
    this.#inflight.set(key, fetch);
    return fetch;
  }

  /** Tries each peer that has the blob in turn; true once it is committed here. */
  async #fetch(digest: Digest, peers: readonly Peer[]): Promise<boolean> {
    const target = this.#target as ReadThroughTarget;
    const log = this.#options.log.child({ digest: formatDigest(digest) });
    for (const peer of peers) {
      if (!peer.breaker.tryAcquire()) continue;
      const started = performance.now();
      try {
        await target.putStream(digest, fromPeer(peer.client.read(digest)));
        peer.breaker.succeeded();
        log.info(
          {
            peer: peer.client.name,
            bytes: digest.size,
            ms: Math.round(performance.now() - started),
          },
          'read through from a peer region',
        );
        return true;
      } catch (error) {
        if (error instanceof PeerFault) {
          const cause = error.cause;
          // The peer lost it between lookup and read (its lease ran out): healthy, try the next.
          if (cause instanceof CasError && cause.code === 'not_found') {
            peer.breaker.succeeded();
            continue;
          }
          this.#peerFailed(peer, cause, `reading ${formatDigest(digest)}`);
          continue;
        }
        if (error instanceof CasError && error.code === 'invalid_argument') {
          // The spool's size or hash check refused what the peer sent: nothing was committed.
          log.error(
            { peer: peer.client.name, err: error },
            'a peer region sent bytes that do not match the digest; not committed',
          );
          peer.breaker.failed();
          continue;
        }
        // This region's own staging or stores failed: another peer would not help.
        log.warn({ peer: peer.client.name, err: error }, 'could not commit a blob read through');
        peer.breaker.succeeded();
        return false;
      }
    }
    return false;
  }

  /**
   * The action result of the first peer, in configured order, that has one; every available peer
   * is asked at once, so several dead peers cost one deadline, not one each.
   */
  async findActionResult(
    instance: string,
    action: Digest,
  ): Promise<{ result: ActionResult; peer: string } | undefined> {
    if (isPeerCall()) return undefined;
    const answers = await Promise.all(
      this.#peers.map(async (peer) => {
        if (!peer.breaker.tryAcquire()) return undefined;
        try {
          const result = await peer.client.getActionResult(instance, action);
          peer.breaker.succeeded();
          return result && { result, peer: peer.client.name };
        } catch (error) {
          this.#peerFailed(peer, error, `GetActionResult of ${formatDigest(action)}`);
          return undefined;
        }
      }),
    );
    return answers.find((answer) => answer !== undefined);
  }

  #peerFailed(peer: Peer, error: unknown, what: string): void {
    const opened = peer.breaker.failed();
    const log = this.#options.log.child({ peer: peer.client.name });
    log.warn({ err: error }, `peer region failed ${what}; answering from this region`);
    if (opened) {
      log.warn(
        { coolDownMs: this.#options.coolDownMs ?? COOL_DOWN_MS },
        'peer region skipped until its cool-down ends',
      );
    }
  }

  close(): void {
    for (const peer of this.#peers) peer.client.close();
  }
}

/** Tags every failure of the peer's stream, so it is told apart from local commit failures. */
async function* fromPeer(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  try {
    yield* source;
  } catch (error) {
    throw new PeerFault('peer read failed', { cause: error });
  }
}
