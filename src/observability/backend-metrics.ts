// Metrics about the backends, recorded where every caller passes: an S3 client middleware (so each
// SDK command is timed, whoever sends it: reads, writes, multipart parts, the janitor, GC) and a
// wrapper around one ioredis client's sendCommand (every command, pipelined ones included). Also
// the gauges read on scrape: staging space, upload sessions, the commit-entry count and committed
// bytes.
import type { Dirent } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import type { Redis } from 'ioredis';
import type { UploadRegistry } from '../cas/uploads.ts';
import type { StagingBudget } from '../staging/budget.ts';
import type { Metrics } from './metrics.ts';

/** Times every command `client` sends; `operation` is the command name without "Command". */
export function instrumentS3Client(client: S3Client, metrics: Metrics): void {
  const { requests, duration } = metrics.s3;
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const operation = (context.commandName ?? 'Unknown').replace(/Command$/, '');
      const started = performance.now();
      try {
        const result = await next(args);
        requests.inc({ operation, outcome: 'ok' });
        return result;
      } catch (error) {
        requests.inc({ operation, outcome: isNotFound(error) ? 'not_found' : 'error' });
        throw error;
      } finally {
        duration.observe({ operation }, (performance.now() - started) / 1000);
      }
    },
    { step: 'initialize', name: 'tesseraMetrics', override: true },
  );
}

function isNotFound(error: unknown): boolean {
  const meta = (error as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata;
  return meta?.httpStatusCode === 404;
}

interface SentCommand {
  readonly name: string;
  readonly promise: Promise<unknown>;
}

const observed = new WeakSet<object>();
/**
 * Connection bookkeeping ioredis sends itself (CLIENT SETINFO, which older servers refuse and
 * ioredis ignores); counting it would show errors nobody can act on.
 */
const UNCOUNTED_COMMANDS = new Set(['client']);

/**
 * Times every command sent through `redis`. ioredis funnels single commands, pipelines and scripts
 * through `sendCommand`; a command resent after a reconnect passes again and is counted once.
 */
export function instrumentRedis(redis: Redis, metrics: Metrics): void {
  const { commands, duration } = metrics.redis;
  const send = redis.sendCommand.bind(redis) as (
    command: SentCommand,
    ...rest: unknown[]
  ) => unknown;
  const wrapped = (command: SentCommand, ...rest: unknown[]): unknown => {
    const result = send(command, ...rest);
    const name = command.name.toLowerCase();
    if (observed.has(command) || UNCOUNTED_COMMANDS.has(name)) return result;
    observed.add(command);
    const started = performance.now();
    const done = (outcome: 'ok' | 'error') => {
      commands.inc({ command: name, outcome });
      duration.observe({ command: name }, (performance.now() - started) / 1000);
    };
    command.promise.then(
      () => done('ok'),
      () => done('error'),
    );
    return result;
  };
  (redis as unknown as { sendCommand: typeof wrapped }).sendCommand = wrapped;
}

/** tessera_staging_reserved_bytes and tessera_staging_limit_bytes, read on scrape. */
export function registerStagingGauges(metrics: Metrics, budget: StagingBudget): void {
  metrics.gauge({
    name: 'tessera_staging_reserved_bytes',
    help: 'Staging disk space held by uploads in progress (their worst case, reserved up front)',
    collect() {
      this.set(budget.reservedBytes);
    },
  });
  metrics.gauge({
    name: 'tessera_staging_limit_bytes',
    help: 'staging_max_bytes: the most uploads may reserve (0: no limit but the disk)',
    collect() {
      this.set(budget.maxBytes);
    },
  });
}

/**
 * tessera_upload_sessions{state} and tessera_upload_sessions_limit, read on scrape: how close the
 * replica is to refusing new uploads with RESOURCE_EXHAUSTED (writing sessions at the limit).
 */
export function registerUploadSessionGauges(
  metrics: Metrics,
  uploads: Pick<UploadRegistry, 'maxSessions' | 'sessionCounts'>,
): void {
  metrics.gauge({
    name: 'tessera_upload_sessions',
    help:
      'ByteStream upload sessions by state: writing (a Write attached; never evicted) or ' +
      'parked (waiting for a resume; evicted first when the limit is reached)',
    labelNames: ['state'],
    collect() {
      const { writing, parked } = uploads.sessionCounts();
      this.set({ state: 'writing' }, writing);
      this.set({ state: 'parked' }, parked);
    },
  });
  metrics.gauge({
    name: 'tessera_upload_sessions_limit',
    help: 'max_concurrent_uploads: the most upload sessions, parked ones included',
    collect() {
      this.set(uploads.maxSessions);
    },
  });
}

/** How stale a commit-entry count that walks the whole index may get (embedded mode). */
export const COMMIT_COUNT_MAX_AGE_MS = 60_000;
/** How long a scrape waits for a count in progress before reporting the previous one. */
const COMMIT_COUNT_WAIT_MS = 2_000;

/**
 * tessera_commit_entries: committed blobs in the index, from `count`, run on a scrape when the
 * last value is `maxAgeMs` old (0: every scrape) and cached; tessera_commit_entries_age_seconds
 * says how old the value is. A failed count keeps the previous value, and its age shows it.
 */
export function registerCommitEntryGauge(
  metrics: Metrics,
  count: () => Promise<number>,
  maxAgeMs = COMMIT_COUNT_MAX_AGE_MS,
): void {
  let value: number | undefined;
  let countedAt = 0;
  let running: Promise<void> | undefined;
  const refresh = () => {
    running ??= count()
      .then((n) => {
        value = n;
        countedAt = Date.now();
      })
      .catch(() => undefined)
      .finally(() => {
        running = undefined;
      });
    return running;
  };

  metrics.gauge({
    name: 'tessera_commit_entries',
    help: 'Committed blobs in the commit index',
    async collect() {
      if (Date.now() - countedAt >= maxAgeMs) await withinMs(refresh(), COMMIT_COUNT_WAIT_MS);
      if (value === undefined) this.reset();
      else this.set(value);
    },
  });
  metrics.gauge({
    name: 'tessera_commit_entries_age_seconds',
    help: 'Age of the tessera_commit_entries value',
    collect() {
      if (value === undefined) this.reset();
      else this.set((Date.now() - countedAt) / 1000);
    },
  });
}

/** The keys of the Redis lease index (src/commit-index/redis-commit-index.ts). */
export interface LeaseIndexKeys {
  readonly redis: Redis;
  /** Sorted set with one member per committed blob. */
  readonly leaseKey: string;
  /** Sum of the sizes of the blobs in the lease index. */
  readonly bytesKey: string;
}

/**
 * S3 mode: the commit-entry count is ZCARD of the lease index and tessera_committed_bytes its byte
 * total, both O(1), so they are read on every scrape. Entries written before leases were tracked
 * are counted once a lookup adopts them into the index.
 */
export function registerCommittedGauges(metrics: Metrics, index: LeaseIndexKeys): void {
  registerCommitEntryGauge(metrics, () => index.redis.zcard(index.leaseKey), 0);
  let bytes: number | undefined;
  metrics.gauge({
    name: 'tessera_committed_bytes',
    help: 'Total size of the committed blobs in the commit index',
    async collect() {
      const read = index.redis.get(index.bytesKey).then(
        (text) => {
          bytes = Number(text ?? 0);
        },
        // Redis unreachable: keep the last value; tessera_redis_commands_total shows the error.
        () => undefined,
      );
      await withinMs(read, COMMIT_COUNT_WAIT_MS);
      if (bytes === undefined) this.reset();
      else this.set(bytes);
    },
  });
}

/** Waits for `work`, but no longer than `ms`. */
async function withinMs(work: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const wait = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  await Promise.race([work, wait]).finally(() => clearTimeout(timer));
}

/** Counts the files under `dir`, recursively; a missing directory counts 0. */
export async function countFiles(dir: string): Promise<number> {
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw error;
  }
  let total = 0;
  for (const entry of entries) {
    if (entry.isDirectory()) total += await countFiles(join(dir, entry.name));
    else if (entry.isFile()) total += 1;
  }
  return total;
}
