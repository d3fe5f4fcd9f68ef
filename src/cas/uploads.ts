// ByteStream upload sessions in this process. A Write that breaks off leaves its session (its
// sink: a spool file, or a resumable S3 upload) here, so a later Write with the same resource name
// continues at the reported `committed_size` instead of starting over. Resumable S3 uploads are
// also checkpointed in Redis, so another replica can continue them (see cas/upload-sink.ts); a
// spool session lives here only. A session idle for the configured timeout is abandoned.
//
// A session has one owner at a time: the newest Write of that resource name. A client resumes only
// after it gave up on the old stream, but the server may not have seen the old stream die yet, so a
// new Write takes the session over and the old one, if it is still running, fails with ABORTED at
// its next message. Sinks serialise their appends, so the hand-over cannot interleave bytes.
//
// At most `maxSessions` sessions exist at once, parked ones included. A new session beyond that
// first evicts the session parked longest (a parked session is only a hope of a resume; a new
// upload is a client waiting now); a resumable one is let go of, not ended, so its checkpoint
// still serves a resume. With no parked session to evict, the new upload is refused with
// RESOURCE_EXHAUSTED. Sessions being written are never evicted: a stalled Write ends after the
// idle timeout (see grpc/bytestream-service.ts), which frees its slot.
import type { Cas } from './cas.ts';
import { digestKey, formatDigest } from './digest.ts';
import { CasError } from './errors.ts';
import type { UploadIdentity, UploadSink } from './upload-sink.ts';

export class UploadSession {
  readonly key: string;
  readonly sink: UploadSink;
  #owner: symbol;
  #timer: NodeJS.Timeout | undefined;
  /** @internal Called when the session stops being parked. */
  onUnpark: (() => void) | undefined;

  constructor(key: string, sink: UploadSink, owner: symbol) {
    this.key = key;
    this.sink = sink;
    this.#owner = owner;
  }

  /** Throws ABORTED when a newer Write has taken this session over from `owner`. */
  assertOwner(owner: symbol): void {
    if (owner !== this.#owner) {
      throw new CasError(
        'aborted',
        `a newer Write of ${formatDigest(this.sink.digest)} with the same resource name took ` +
          'over this upload',
      );
    }
  }

  isOwnedBy(owner: symbol): boolean {
    return owner === this.#owner;
  }

  /** @internal */
  takeOver(owner: symbol): void {
    this.#owner = owner;
    this.unpark();
  }

  /** @internal */
  park(timer: NodeJS.Timeout): void {
    clearTimeout(this.#timer);
    this.#timer = timer;
  }

  /** @internal */
  unpark(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.onUnpark?.();
  }
}

export interface Lease {
  readonly session: UploadSession;
  readonly owner: symbol;
}

export class UploadRegistry {
  /** How long a session may wait for its next message or for a resume. */
  readonly idleTimeoutMs: number;
  readonly #cas: Cas;
  readonly #maxSessions: number;
  readonly #sessions = new Map<string, UploadSession>();
  /** Parked sessions, longest parked first: the order they are evicted in. */
  readonly #parked = new Set<UploadSession>();
  /** Sessions whose sink is being opened; they count against the limit already. */
  #opening = 0;
  /** Acquisitions in progress, so two Writes of one name never build two sinks. */
  readonly #acquiring = new Map<string, Promise<unknown>>();
  /** Resumable sessions per digest, so a second upload of the same blob does not stream too. */
  readonly #streaming = new Map<string, number>();

  constructor(cas: Cas, idleTimeoutMs: number, maxSessions = Number.POSITIVE_INFINITY) {
    this.#cas = cas;
    this.idleTimeoutMs = idleTimeoutMs;
    this.#maxSessions = maxSessions;
  }

  get size(): number {
    return this.#sessions.size;
  }

  /** The most sessions that may exist at once (max_concurrent_uploads), parked ones included. */
  get maxSessions(): number {
    return this.#maxSessions;
  }

  /**
   * Sessions now, as they count against `maxSessions`: `writing` have a Write attached or are
   * being opened (never evicted), `parked` wait for a resume (evicted first when full).
   */
  sessionCounts(): { writing: number; parked: number } {
    const parked = this.#parked.size;
    return { writing: this.#sessions.size - parked + this.#opening, parked };
  }

  /** The session for this upload, created or resumed if need be, owned by the caller from now. */
  async acquire(upload: UploadIdentity): Promise<Lease> {
    const key = keyOf(upload);
    const before = this.#acquiring.get(key) ?? Promise.resolve();
    const run = before.then(() => this.#acquire(key, upload));
    const settled = run.catch(() => undefined);
    this.#acquiring.set(key, settled);
    try {
      return await run;
    } finally {
      if (this.#acquiring.get(key) === settled) this.#acquiring.delete(key);
    }
  }

  /** Hands a session back after a Write that did not finish it; it waits for a resume. */
  release({ session, owner }: Lease): void {
    if (!session.isOwnedBy(owner) || this.#sessions.get(session.key) !== session) return;
    const timer = setTimeout(() => void this.#drop(session), this.idleTimeoutMs);
    timer.unref();
    session.park(timer);
    this.#parked.delete(session);
    this.#parked.add(session);
    session.onUnpark = () => this.#parked.delete(session);
  }

  /** Drops a session whose data can never form the blob, with everything its sink holds. */
  async discard({ session, owner }: Lease): Promise<void> {
    if (!session.isOwnedBy(owner)) return;
    await this.#drop(session);
  }

  /** Forgets a session that is about to finish; its sink cleans up after itself. */
  forget({ session, owner }: Lease): void {
    if (!session.isOwnedBy(owner)) return;
    this.#remove(session);
  }

  /** Where a client may resume this upload, or undefined when no replica has it. */
  async progress(upload: UploadIdentity): Promise<number | undefined> {
    const local = this.#sessions.get(keyOf(upload));
    if (local) return local.sink.resumeOffset;
    return this.#cas.recordedProgress(upload);
  }

  /**
   * At shutdown: uploads other replicas can continue are let go of (kept resumable); the others
   * are abandoned with their files.
   */
  async closeAll(): Promise<void> {
    await Promise.all(
      [...this.#sessions.values()].map(async (session) => {
        this.#remove(session);
        if (session.sink.detach) await session.sink.detach();
        else await session.sink.abandon();
      }),
    );
  }

  async #acquire(key: string, upload: UploadIdentity): Promise<Lease> {
    const owner = Symbol(key);
    const existing = this.#sessions.get(key);
    if (existing) {
      if (!existing.sink.reclaim || (await existing.sink.reclaim())) {
        existing.takeOver(owner);
        return { session: existing, owner };
      }
      // Another replica advanced the upload; continue from its checkpoint instead.
      this.#remove(existing);
    }
    const digest = digestKey(upload.digest);
    await this.#makeRoom();
    let sink: UploadSink;
    this.#opening += 1;
    try {
      sink = await this.#cas.openSink(upload, (this.#streaming.get(digest) ?? 0) > 0);
    } finally {
      this.#opening -= 1;
    }
    const session = new UploadSession(key, sink, owner);
    this.#sessions.set(key, session);
    if (sink.reclaim) this.#streaming.set(digest, (this.#streaming.get(digest) ?? 0) + 1);
    return { session, owner };
  }

  /** Evicts parked sessions until a new one fits, or throws RESOURCE_EXHAUSTED. */
  async #makeRoom(): Promise<void> {
    while (this.#sessions.size + this.#opening >= this.#maxSessions) {
      const oldest = this.#parked.values().next().value;
      if (!oldest) {
        throw new CasError(
          'resource_exhausted',
          `${this.#sessions.size + this.#opening} uploads are in progress, the most ` +
            `max_concurrent_uploads (${this.#maxSessions}) allows; retry later`,
        );
      }
      this.#remove(oldest);
      if (oldest.sink.detach) await oldest.sink.detach();
      else await oldest.sink.abandon();
    }
  }

  #remove(session: UploadSession): void {
    session.unpark();
    if (this.#sessions.get(session.key) !== session) return;
    this.#sessions.delete(session.key);
    if (session.sink.reclaim) {
      const digest = digestKey(session.sink.digest);
      const count = (this.#streaming.get(digest) ?? 1) - 1;
      if (count > 0) this.#streaming.set(digest, count);
      else this.#streaming.delete(digest);
    }
  }

  async #drop(session: UploadSession): Promise<void> {
    this.#remove(session);
    await session.sink.abandon();
  }
}

function keyOf(upload: UploadIdentity): string {
  const compressor = upload.compressor ?? 'identity';
  return `${upload.instance}\u0000${upload.uploadId}\u0000${digestKey(upload.digest)}\u0000${compressor}`;
}
