// The scrubber in the background of `serve`: every interval, the replica that takes
// {prefix}scrub:lock runs one rate-limited pass, renewing the lock after each blob; the others
// skip that round. A pass that loses its lock (a stall) stops, and the next holder starts over.
import { randomUUID } from 'node:crypto';
import type { RedisCommitIndex } from '../commit-index/redis-commit-index.ts';
import type { Logger } from '../observability/logger.ts';
import type { Scrubber } from './scrub.ts';

const LOCK_MS = 60_000;

export class ScrubSchedule {
  readonly #scrubber: Scrubber;
  readonly #index: RedisCommitIndex;
  readonly #intervalMs: number;
  readonly #log: Logger;
  readonly #stop = new AbortController();
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<unknown> = Promise.resolve();

  constructor(scrubber: Scrubber, index: RedisCommitIndex, intervalMs: number, log: Logger) {
    this.#scrubber = scrubber;
    this.#index = index;
    this.#intervalMs = intervalMs;
    this.#log = log.child({ component: 'scrub' });
  }

  /** A first pass at once, then one every interval (a pass still running skips a round). */
  start(): void {
    let busy = false;
    const run = () => {
      if (busy) return;
      busy = true;
      this.#running = this.#pass()
        .catch((error: unknown) => {
          if (!this.#stop.signal.aborted) {
            this.#log.warn({ err: error }, 'scrub pass failed; will try again');
          }
        })
        .finally(() => {
          busy = false;
        });
    };
    run();
    this.#timer = setInterval(run, this.#intervalMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#stop.abort();
    await this.#running;
  }

  async #pass(): Promise<void> {
    const lockKey = `${this.#index.prefix}scrub:lock`;
    const token = randomUUID();
    if ((await this.#index.redis.set(lockKey, token, 'PX', LOCK_MS, 'NX')) !== 'OK') return;
    try {
      await this.#scrubber.pass(
        async () =>
          !this.#stop.signal.aborted &&
          (await this.#index.script('extendIfOwner', lockKey, token, LOCK_MS)) === 1,
        this.#stop.signal,
      );
    } finally {
      await this.#index.script('releaseIfOwner', lockKey, token).catch(() => undefined);
    }
  }
}
