// The replication log of a region: a Redis stream that gets one entry per blob committed here and
// per action result stored here, for the replicators to push to peer regions.
//
// Key: `{r}replication:log`, a stream capped at about MAX_LOG_ENTRIES (XADD MAXLEN ~). Fields:
//   kind=blob fn hash size          a blob committed in this region
//   kind=ac fn hash size instance   an action result stored for this action digest and instance
// Each peer has a consumer group named after it (see replicator.ts).
//
// Entries are appended by the commit index in the same step as the write they record: a blob's by
// the script that writes its commit entry (commit-put-7.lua), an action result's in one MULTI with
// the result. So an entry always names something stored, and nothing stored goes unlogged,
// whatever crashes. The cap drops the oldest entries of a log no replicator drains (a peer down
// for days): those are left to the peers' read-through.
import type { Digest, DigestFunction } from '../cas/digest.ts';

/** About a day of a busy cache's commits; beyond it the oldest entries are dropped. */
export const MAX_LOG_ENTRIES = 1_000_000;

export type LogEntry =
  | { readonly kind: 'blob'; readonly digest: Digest }
  | { readonly kind: 'ac'; readonly digest: Digest; readonly instance: string };

/** The key of the log in Redis; the commit index appends to it (`journalCommits`). */
export function replicationLogKey(prefix: string): string {
  return `${prefix}replication:log`;
}

/** Parses the field list of a stream entry; undefined for an entry this version does not know. */
export function parseLogEntry(fields: readonly string[]): LogEntry | undefined {
  const map = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2)
    map.set(fields[i] as string, fields[i + 1] as string);
  const fn = map.get('fn') as DigestFunction | undefined;
  const hash = map.get('hash');
  const size = Number(map.get('size'));
  if (fn === undefined || hash === undefined || !Number.isSafeInteger(size)) return undefined;
  const digest: Digest = { fn, hash, size };
  const kind = map.get('kind');
  if (kind === 'blob') return { kind, digest };
  if (kind === 'ac') return { kind, digest, instance: map.get('instance') ?? '' };
  return undefined;
}
