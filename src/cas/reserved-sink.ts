// An upload sink that holds a staging reservation (staging/budget.ts) for as long as it may have
// files in the staging directory, and releases it once the sink is spent: finished (whatever the
// outcome), abandoned, detached, or found superseded by another replica at a reclaim.
import type { Reservation } from '../staging/budget.ts';
import type { Digest } from './digest.ts';
import type { UploadSink } from './upload-sink.ts';

export class ReservedSink implements UploadSink {
  readonly detach?: () => Promise<void>;
  readonly reclaim?: () => Promise<boolean>;
  readonly #inner: UploadSink;
  readonly #reservation: Reservation;

  constructor(inner: UploadSink, reservation: Reservation) {
    this.#inner = inner;
    this.#reservation = reservation;
    const { detach, reclaim } = inner;
    if (detach) this.detach = () => this.#releasing(detach.call(inner));
    if (reclaim) {
      this.reclaim = async () => {
        const kept = await reclaim.call(inner);
        if (!kept) this.#reservation.release();
        return kept;
      };
    }
  }

  get digest(): Digest {
    return this.#inner.digest;
  }

  get received(): number {
    return this.#inner.received;
  }

  get resumeOffset(): number {
    return this.#inner.resumeOffset;
  }

  append(offset: number, chunk: Uint8Array): Promise<void> {
    return this.#inner.append(offset, chunk);
  }

  finish(): Promise<void> {
    return this.#releasing(this.#inner.finish());
  }

  abandon(): Promise<void> {
    return this.#releasing(this.#inner.abandon());
  }

  async #releasing(work: Promise<void>): Promise<void> {
    try {
      await work;
    } finally {
      this.#reservation.release();
    }
  }
}
