// A circuit breaker per peer region: after a run of failures (timeouts, unreachable, bad bytes)
// the peer is not asked for a while, so a dead or partitioned region costs one deadline per
// cool-down instead of one per miss. When the cool-down ends one call is let through as a probe;
// its success closes the breaker, its failure opens it again. A peer answering NOT_FOUND is
// healthy: that is not a failure.

export interface BreakerOptions {
  /** Consecutive failures that open the breaker. */
  readonly failureThreshold: number;
  /** How long an open breaker refuses calls before it lets a probe through. */
  readonly coolDownMs: number;
  readonly now?: () => number;
}

export type BreakerState = 'closed' | 'open' | 'half-open';

export class CircuitBreaker {
  readonly #options: BreakerOptions;
  readonly #now: () => number;
  #failures = 0;
  #openedAt: number | undefined;
  #probing = false;

  constructor(options: BreakerOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  get state(): BreakerState {
    if (this.#openedAt === undefined) return 'closed';
    return this.#now() - this.#openedAt >= this.#options.coolDownMs ? 'half-open' : 'open';
  }

  /** Whether a call may go out now. In half-open state only one call at a time is a probe. */
  tryAcquire(): boolean {
    const state = this.state;
    if (state === 'closed') return true;
    if (state === 'open' || this.#probing) return false;
    this.#probing = true;
    return true;
  }

  succeeded(): void {
    this.#failures = 0;
    this.#openedAt = undefined;
    this.#probing = false;
  }

  /** Returns true when this failure opened (or re-opened) the breaker. */
  failed(): boolean {
    this.#failures += 1;
    const wasProbe = this.#probing;
    this.#probing = false;
    if (wasProbe || this.#failures >= this.#options.failureThreshold) {
      const opening = this.#openedAt === undefined || wasProbe;
      this.#openedAt = this.#now();
      return opening;
    }
    return false;
  }
}
