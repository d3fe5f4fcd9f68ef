// The replication log of a region: a Redis stream that gets one entry per blob committed here and
// per action result stored here, for the replicators to push to peer regions.
//
// Key: `{r}replication:log`, a stream capped at about MAX_LOG_ENTRIES (XADD MAXLEN ~). Fields:
//   kind=blob fn hash size          a blob committed in this region
//   kind=ac fn hash size instance   an action result stored for this action digest and instance
// Each peer has a consumer group named after it (see replicator.ts).
//
// A blob's entry is appended by the script that writes its commit entry (commit-put-7.lua), so an
// entry always names something committed and no commit goes unlogged, whatever crashes. An action
// result's entry is appended after the result is stored: a crash or a Redis failure between the
// two loses that entry, and the result then reaches other regions only through their
// read-through. The cap drops the oldest entries of a log no replicator drains (a peer down for
// days): those too are left to read-through.
import type { Redis } from 'ioredis';
import type { Digest, DigestFunction } from '../cas/digest.ts';
import type { Logger } from '../observability/logger.ts';

/** About a day of a busy cache's commits; beyond it the oldest entries are dropped. */
export const MAX_LOG_ENTRIES = 1_000_000;

export type LogEntry =
  | { readonly kind: 'blob'; readonly digest: Digest }
  | { readonly kind: 'ac'; readonly digest: Digest; readonly instance: string };

export class ReplicationLog {
  readonly key: string;
  readonly #redis: Redis;
  readonly #log: Logger;

  constructor(redis: Redis, prefix: string, log: Logger) {
    this.#redis = redis;
    this.key = `${prefix}replication:log`;
    this.#log = log;
  }

  /** Appends an entry; a failure is logged, never thrown: the commit it follows stands. */
  async append(entry: LogEntry): Promise<void> {
    const { fn, hash, size } = entry.digest;
    const fields = ['kind', entry.kind, 'fn', fn, 'hash', hash, 'size', String(size)];
    if (entry.kind === 'ac') fields.push('instance', entry.instance);
    try {
      await this.#redis.xadd(this.key, 'MAXLEN', '~', MAX_LOG_ENTRIES, '*', ...fields);
    } catch (error) {
      this.#log.warn(
        { err: error, hash },
        'could not append to the replication log; peers will read this through instead',
      );
    }
  }
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
