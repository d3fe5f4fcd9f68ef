// ByteStream upload sessions. A Write that breaks off leaves its session (the spool file, the
// running hash and the byte count) here, so a second Write with the same resource name continues at
// the reported `committed_size` instead of starting over. Sessions live in this process only:
// a session idle for the configured timeout is discarded with its staging file.
import { type Digest, digestKey, formatDigest } from './digest.ts';
import { CasError } from './errors.ts';
import type { Cas } from './cas.ts';
import type { Spool } from '../staging/spool.ts';

export interface UploadKey {
  readonly instance: string;
  readonly uploadId: string;
  readonly digest: Digest;
}

export class UploadSession {
  readonly key: string;
  readonly spool: Spool;
  #timer: NodeJS.Timeout | undefined;

  constructor(key: string, spool: Spool) {
    this.key = key;
    this.spool = spool;
  }

  get busy(): boolean {
    return this.#timer === undefined;
  }

  /** @internal */
  park(timer: NodeJS.Timeout): void {
    this.#timer = timer;
  }

  /** @internal */
  unpark(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
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

  /**
   * The session for this upload, created if new. Only one call may hold a session at a time: a
   * second concurrent Write of the same resource gets ABORTED.
   */
  async acquire(upload: UploadKey): Promise<UploadSession> {
    const key = keyOf(upload);
    const existing = this.#sessions.get(key);
    if (existing) {
      if (existing.busy) {
        throw new CasError(
          'aborted',
          `upload ${upload.uploadId} of ${formatDigest(upload.digest)} is in use by another Write`,
        );
      }
      existing.unpark();
      return existing;
    }
    const session = new UploadSession(key, await this.#cas.createSpool(upload.digest));
    this.#sessions.set(key, session);
    return session;
  }

  /** Hands a session back after a Write that did not finish it; it waits for a resume. */
  release(session: UploadSession): void {
    if (this.#sessions.get(session.key) !== session) return;
    const timer = setTimeout(() => void this.discard(session), this.#idleTimeoutMs);
    timer.unref();
    session.park(timer);
  }

  /** Forgets a session whose spool was finished or must be dropped; removes its file. */
  async discard(session: UploadSession): Promise<void> {
    session.unpark();
    if (this.#sessions.get(session.key) === session) this.#sessions.delete(session.key);
    await session.spool.discard();
  }

  /** Forgets a session whose spool was handed over to a commit. */
  forget(session: UploadSession): void {
    session.unpark();
    if (this.#sessions.get(session.key) === session) this.#sessions.delete(session.key);
  }

  /** Bytes received so far for an unfinished upload, or undefined when there is none. */
  receivedBytes(upload: UploadKey): number | undefined {
    return this.#sessions.get(keyOf(upload))?.spool.size;
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.#sessions.values()].map((session) => this.discard(session)));
  }
}

function keyOf(upload: UploadKey): string {
  return `${upload.instance}\u0000${upload.uploadId}\u0000${digestKey(upload.digest)}`;
}
