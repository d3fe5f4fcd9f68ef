// Named points on the write path where a test can make this process die on the spot (SIGKILL), to
// prove what a crash exactly there leaves behind (test/crash). Nothing happens unless the
// `crashPoints` setting arms a point; production deployments never set it.
//
// The setting is a comma-separated list of `point:n`: die the n-th time the point is reached.

/** The points uploads pass, which test/crash kills replicas at. */
export const WRITE_PATH_CRASH_POINTS = [
  /** Bytes of an upload were just written to a staging file. */
  'spool-write',
  /** S3 confirmed a part of a streaming upload. */
  'part-confirmed',
  /** S3 holds the whole object; the commit entry is not written yet. */
  's3-complete',
  /** The commit entry is written; the client has not been answered yet. */
  'committed',
] as const;

export const CRASH_POINTS = [
  ...WRITE_PATH_CRASH_POINTS,
  /** An action result is stored in Redis (S3 mode); the client has not been answered yet. */
  'action-result-stored',
] as const;
export type CrashPoint = (typeof CRASH_POINTS)[number];

const armed = new Map<CrashPoint, { remaining: number }>();

/** Parses and arms `point:n,…`; throws on an unknown point or a bad count. */
export function armCrashPoints(spec: string | undefined): void {
  armed.clear();
  if (!spec) return;
  for (const item of spec.split(',')) {
    const [name, count] = item.trim().split(':');
    if (!(CRASH_POINTS as readonly string[]).includes(name ?? '')) {
      throw new Error(`crash point "${name}" is unknown; known: ${CRASH_POINTS.join(', ')}`);
    }
    const n = Number(count ?? '1');
    if (!Number.isSafeInteger(n) || n < 1)
      throw new Error(`crash point count "${count}" is not ≥ 1`);
    armed.set(name as CrashPoint, { remaining: n });
  }
}

/** Dies here if this point is armed and its count is reached. */
export function crashPoint(point: CrashPoint): void {
  const entry = armed.get(point);
  if (!entry) return;
  entry.remaining -= 1;
  if (entry.remaining === 0) process.kill(process.pid, 'SIGKILL');
}
