// Runs the collector every interval inside `serve`. Every replica schedules one; the collector lock
// lets one of them work at a time and the others skip that round.
import type { Logger } from '../observability/logger.ts';
import { type Collector, CollectorBusyError } from './collector.ts';

export class CollectorSchedule {
  readonly #collector: Collector;
  readonly #intervalMs: number;
  readonly #log: Logger;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<unknown> = Promise.resolve();

  constructor(collector: Collector, intervalMs: number, log: Logger) {
    this.#collector = collector;
    this.#intervalMs = intervalMs;
    this.#log = log.child({ component: 'gc' });
  }

  /** The first collection runs one interval after start: a restart loop never triggers one. */
  start(): void {
    if (this.#intervalMs <= 0) return;
    this.#timer = setInterval(() => {
      this.#running = this.#collector.collect().catch((error: unknown) => {
        if (error instanceof CollectorBusyError) {
          this.#log.debug('another replica is collecting; skipping this round');
        } else {
          this.#log.warn({ err: error }, 'garbage collection failed; will try again');
        }
      });
    }, this.#intervalMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#running;
  }
}
