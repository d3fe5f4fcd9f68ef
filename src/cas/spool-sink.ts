// The upload sink for blobs committed whole: bytes go to one spool file in the staging directory
// and, once verified at finish, the store commits the file (a rename in embedded mode, an S3 upload
// and a commit entry in S3 mode). Its progress lives in this process only.
import type { Spool } from '../staging/spool.ts';
import type { Cas } from './cas.ts';
import type { Digest } from './digest.ts';
import type { UploadSink } from './upload-sink.ts';

export class SpoolSink implements UploadSink {
  readonly #spool: Spool;
  readonly #cas: Cas;

  constructor(spool: Spool, cas: Cas) {
    this.#spool = spool;
    this.#cas = cas;
  }

  get digest(): Digest {
    return this.#spool.digest;
  }

  get received(): number {
    return this.#spool.size;
  }

  get resumeOffset(): number {
    return this.#spool.size;
  }

  append(offset: number, chunk: Uint8Array): Promise<void> {
    return this.#spool.append(offset, chunk);
  }

  async finish(): Promise<void> {
    const staged = await this.#spool.finish();
    await this.#cas.commit(staged);
  }

  abandon(): Promise<void> {
    return this.#spool.discard();
  }
}
