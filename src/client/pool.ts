// Bounded parallelism for the client. A pool runs at most `jobs` tasks at a time. Once a task
// fails, tasks still waiting for a slot are not started (they reject with the first failure), and
// `settle` waits for every task in flight before it rethrows, so no transfer is left running
// behind an error the caller already reported.

export interface Pool {
  /** Runs `task` when a slot is free; rejects without running it once any task has failed. */
  run<T>(task: () => Promise<T>): Promise<T>;
}

export function createPool(jobs: number): Pool {
  if (!Number.isSafeInteger(jobs) || jobs < 1) {
    throw new RangeError(`jobs ${jobs} is not a whole number of at least 1`);
  }
  let running = 0;
  let failed: { error: unknown } | undefined;
  const waiting: Array<() => void> = [];

  // A finishing task hands its slot straight to the next waiter, so a task submitted in between
  // cannot take it and push the count past `jobs`.
  const acquire = async (): Promise<void> => {
    if (running < jobs) {
      running += 1;
      return;
    }
    await new Promise<void>((resolve) => waiting.push(resolve));
  };
  const release = (): void => {
    const next = waiting.shift();
    if (next) next();
    else running -= 1;
  };

  return {
    async run<T>(task: () => Promise<T>): Promise<T> {
      await acquire();
      try {
        if (failed) throw failed.error;
        return await task();
      } catch (error) {
        failed ??= { error };
        throw error;
      } finally {
        release();
      }
    },
  };
}

/**
 * Waits until every promise has settled, then returns their values or throws the first rejection
 * (in the order given, which for a pool is the order tasks were submitted).
 */
export async function settle<T>(promises: Iterable<Promise<T>>): Promise<T[]> {
  const results = await Promise.allSettled(promises);
  const values: T[] = [];
  for (const result of results) {
    if (result.status === 'rejected') throw result.reason;
    values.push(result.value);
  }
  return values;
}
