// Hashing for uploads whose hasher state must survive this process (resumable multipart uploads,
// storage/s3-streaming-upload.ts), done off the event loop.
//
// Why a worker: a state that another replica can load needs a hasher whose state can be exported,
// which Node's native hashers cannot do; hash-wasm's can, but it runs at a few hundred MB/s,
// several times slower than the native code, and on the event loop it was a third of the
// server's CPU during a large write, stalling every other call meanwhile. In a worker thread it
// overlaps with receiving, spooling and uploading, and the event loop stays free.
//
// Jobs are stateless: each carries the state the previous part ended with and a range of a part
// file that is already on disk, and returns the state after it (or the digest, for the last
// part). An upload chains its jobs; jobs of different uploads may go to different workers.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { DigestFunction } from './digest.ts';

/** Worker threads, at most: one core is left to the event loop. */
const MAX_WORKERS = 4;

export interface HashJob {
  readonly fn: DigestFunction;
  /** The state after the previous part; undefined starts a fresh hash. */
  readonly state: Uint8Array | undefined;
  /** The bytes [start, start + length) of this file; `length` 0 reads nothing. */
  readonly path: string;
  readonly start: number;
  readonly length: number;
}

interface Reply {
  readonly id: number;
  readonly state?: Uint8Array;
  readonly digest?: string;
  readonly error?: string;
}

interface Pending {
  resolve(reply: Reply): void;
  reject(error: Error): void;
}

class HashThread {
  readonly #pending = new Map<number, Pending>();
  #worker: Worker | undefined;

  get load(): number {
    return this.#pending.size;
  }

  run(id: number, job: HashJob & { final: boolean }): Promise<Reply> {
    const worker = this.#started();
    return new Promise<Reply>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      worker.postMessage({ id, ...job });
    });
  }

  async stop(): Promise<void> {
    const worker = this.#worker;
    this.#worker = undefined;
    await worker?.terminate();
  }

  #started(): Worker {
    if (this.#worker) return this.#worker;
    const worker = new Worker(new URL('./hash-worker.mjs', import.meta.url));
    // An idle worker must not keep a stopping process alive; a job in flight holds a promise.
    worker.unref();
    worker.on('message', (reply: Reply) => {
      const pending = this.#pending.get(reply.id);
      this.#pending.delete(reply.id);
      pending?.resolve(reply);
    });
    const fail = (error: Error) => {
      if (this.#worker === worker) this.#worker = undefined;
      for (const pending of this.#pending.values()) pending.reject(error);
      this.#pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`hash worker exited with code ${code}`)));
    this.#worker = worker;
    return worker;
  }
}

export class PartHashers {
  readonly #threads: HashThread[];
  #nextId = 0;

  constructor(threads = Math.max(1, Math.min(MAX_WORKERS, availableParallelism() - 1))) {
    this.#threads = Array.from({ length: threads }, () => new HashThread());
  }

  /** Hashes the range on from `state` and returns the state after it, to save or chain. */
  async advance(job: HashJob): Promise<Uint8Array> {
    const reply = await this.#run(job, false);
    if (!reply.state) throw new Error('hash worker returned no state');
    return reply.state;
  }

  /** Hashes the range on from `state` and returns the final digest, lower-case hex. */
  async finish(job: HashJob): Promise<string> {
    const reply = await this.#run(job, true);
    if (reply.digest === undefined) throw new Error('hash worker returned no digest');
    return reply.digest;
  }

  async close(): Promise<void> {
    await Promise.all(this.#threads.map((thread) => thread.stop()));
  }

  async #run(job: HashJob, final: boolean): Promise<Reply> {
    const thread = this.#threads.reduce((a, b) => (b.load < a.load ? b : a));
    const reply = await thread.run(this.#nextId++, { ...job, final });
    if (reply.error !== undefined) throw new Error(reply.error);
    return reply;
  }
}
