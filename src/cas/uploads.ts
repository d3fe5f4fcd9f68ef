// ByteStream upload sessions. A Write that breaks off leaves its session (the spool file, the
// running hash and the byte count) here, so a later Write with the same resource name continues at
// the reported `committed_size` instead of starting over. Sessions live in this process only; one
// idle for the configured timeout is discarded with its staging file.
//
// A session has one owner at a time: the newest Write of that resource name. A client resumes only
// after it gave up on the old stream, but the server may not have seen the old stream die yet, so a
// new Write takes the session over and the old one, if it is still running, fails with ABORTED at
// its next message. The spool serialises appends, so the hand-over cannot interleave bytes.
import type { Spool } from '../staging/spool.ts';
import type { Cas } from './cas.ts';
import { type Digest, digestKey, formatDigest } from './digest.ts';
import { CasError } from './errors.ts';

export interface UploadKey {
  readonly instance: string;
  readonly uploadId: string;
  readonly digest: Digest;
}

export class UploadSession {
  readonly key: string;
  readonly spool: Spool;
  #owner: symbol;
  #timer: NodeJS.Timeout | undefined;

  constructor(key: string, spool: Spool, owner: symbol) {
    this.key = key;
    this.spool = spool;
    this.#owner = owner;
  }

  /** Throws ABORTED when a newer Write has taken this session over from `owner`. */
  assertOwner(owner: symbol): void {
    if (owner !== this.#owner) {
      throw new CasError(
        'aborted',
        `a newer Write of ${formatDigest(this.spool.digest)} with the same resource name took ` +
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
  }
}

export interface Lease {
  readonly session: UploadSession;
  readonly owner: symbol;
}

export class UploadRegistry {
  readonly #cas: Cas;
  readonly #idleTimeoutMs: number;
  readonly #sessions = new Map<string, UploadSession>();

  constructor(cas: Cas, idleTimeoutMs: number) {
    this.#cas = cas;
    this.#idleTimeoutMs = idleTimeoutMs;
  }

  get size(): number {
    return this.#sessions.size;
  }

  /** The session for this upload, created if new, owned by the caller from now on. */
  async acquire(upload: UploadKey): Promise<Lease> {
    const key = keyOf(upload);
    const owner = Symbol(key);
    const existing = this.#sessions.get(key);
    if (existing) {
      existing.takeOver(owner);
      return { session: existing, owner };
    }
    const session = new UploadSession(key, await this.#cas.createSpool(upload.digest), owner);
    // Another Write of the same name may have created one while the spool was being made.
    const raced = this.#sessions.get(key);
    if (raced) {
      await session.spool.discard();
      raced.takeOver(owner);
      return { session: raced, owner };
    }
    this.#sessions.set(key, session);
    return { session, owner };
  }

  /** Hands a session back after a Write that did not finish it; it waits for a resume. */
  release({ session, owner }: Lease): void {
    if (!session.isOwnedBy(owner) || this.#sessions.get(session.key) !== session) return;
    const timer = setTimeout(() => void this.#drop(session), this.#idleTimeoutMs);
    timer.unref();
    session.park(timer);
  }

  /** Drops a session whose data can never form the blob, and its file. */
  async discard({ session, owner }: Lease): Promise<void> {
    if (!session.isOwnedBy(owner)) return;
    await this.#drop(session);
  }

  /** Forgets a session whose spool was handed on (to finish and commit). */
  forget({ session, owner }: Lease): void {
    if (!session.isOwnedBy(owner)) return;
    session.unpark();
    if (this.#sessions.get(session.key) === session) this.#sessions.delete(session.key);
  }

  /** Bytes received so far for an unfinished upload, or undefined when there is none. */
  receivedBytes(upload: UploadKey): number | undefined {
    return this.#sessions.get(keyOf(upload))?.spool.size;
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.#sessions.values()].map((session) => this.#drop(session)));
  }

  async #drop(session: UploadSession): Promise<void> {
    session.unpark();
    if (this.#sessions.get(session.key) === session) this.#sessions.delete(session.key);
    await session.spool.discard();
  }
}

function keyOf(upload: UploadKey): string {
  return `${upload.instance}\u0000${upload.uploadId}\u0000${digestKey(upload.digest)}`;
}
