// How many bytes the staging directory may hold for uploads in progress. Every spool file and every
// streaming upload reserves its worst case before its first byte is written, so an upload that
// would not fit is refused with RESOURCE_EXHAUSTED up front instead of filling the disk half-way.
// The accounting is logical: it counts what uploads may write, not what the filesystem reports, so
// other files on the same disk are not seen (a real full disk is still RESOURCE_EXHAUSTED, through
// diskError).
import { CasError } from '../cas/errors.ts';

/** Bytes held for one upload; released once, when its files are gone. */
export interface Reservation {
  readonly bytes: number;
  release(): void;
}

export class StagingBudget {
  /** 0: no limit. */
  readonly maxBytes: number;
  #reservedBytes = 0;

  constructor(maxBytes: number) {
    this.maxBytes = maxBytes;
  }

  get reservedBytes(): number {
    return this.#reservedBytes;
  }

  /** Holds `bytes` for `what`, or throws RESOURCE_EXHAUSTED naming the limit. */
  reserve(bytes: number, what: string): Reservation {
    if (this.maxBytes > 0 && this.#reservedBytes + bytes > this.maxBytes) {
      const fix =
        bytes > this.maxBytes
          ? 'it can never fit; raise staging_max_bytes'
          : 'retry once other uploads have finished';
      throw new CasError(
        'resource_exhausted',
        `${what} needs ${bytes} bytes of staging space; ${this.#reservedBytes} of the ` +
          `${this.maxBytes} bytes staging_max_bytes allows are in use: ${fix}`,
      );
    }
    this.#reservedBytes += bytes;
    let held = true;
    return {
      bytes,
      release: () => {
        if (!held) return;
        held = false;
        this.#reservedBytes -= bytes;
      },
    };
  }
}
