// The local read tier (S3 mode): copies of committed blobs that are read often, on this replica's
// disk, so repeated reads skip S3. It never decides what exists: the S3 + Redis backend looks the
// commit entry up first on every read and only then asks here, and drops the copy when the entry
// is gone (deleted, expired, collected). See docs/ARCHITECTURE.md, "Local read tier".
//
// Files: `{dir}/{fn}-{hash}-{size}` for a verified copy, `{dir}/*.tmp` while one is filled.
// Invariants:
// - a copy is only ever renamed into place after its bytes hashed to the digest and their count
//   matched; a partly written file is never under a copy's name;
// - every read of a copy hashes the whole file before any byte is served, so a copy damaged on
//   disk (or left short by a crash after the rename, since copies are not fsynced) is found,
//   removed, and the read falls back to S3;
// - the bytes of all copies plus those reserved by running fills stay under `maxBytes`: a fill
//   reserves its blob's size, evicting the least recently used copies, before it writes a byte,
//   so the directory never holds more than `maxBytes` of copies and temp files together.
// A crash leaves at worst `.tmp` files (removed by the scan at start) or a copy whose data never
// reached the disk (found by the hash check at its first read). The index is rebuilt at start by
// scanning the directory, oldest modification first.
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { type FileHandle, mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import { createHasher, type Digest, formatDigest } from '../cas/digest.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';

export interface ReadCacheSettings {
  readonly dir: string;
  /** Bytes the copies may take in all. */
  readonly maxBytes: number;
  /** A blob is copied at its Nth read served from S3 by this process. */
  readonly admitAfterReads: number;
  /** Larger blobs are never copied. */
  readonly maxBlobBytes: number;
}

/** Copies filled at the same time. */
const MAX_CONCURRENT_FILLS = 2;
/** Admitted blobs waiting for a fill; beyond it a blob is admitted again at its next read. */
const MAX_QUEUED_FILLS = 1000;
/** Read counts kept for blobs not yet copied; the table is cleared when it grows past this. */
const MAX_TRACKED_BLOBS = 100_000;
const HASH_READ_BYTES = 1024 * 1024;
const COPY_NAME_RE = /^([a-z0-9]+)-([0-9a-f]+)-(0|[1-9][0-9]*)$/;

interface Counters {
  readonly reads: { inc(labels: { result: 'hit' | 'miss' | 'corrupt' }): void };
  readonly fills: { inc(labels: { outcome: 'ok' | 'failed' }): void };
}

const UNCOUNTED: Counters = { reads: { inc: () => {} }, fills: { inc: () => {} } };

interface Copy {
  readonly name: string;
  readonly size: number;
}

/** Where a copy's whole bytes come from when it is filled: a stream of exactly digest.size. */
export type FillSource = () => Promise<AsyncIterable<Uint8Array>>;

export class ReadCache {
  readonly #settings: ReadCacheSettings;
  readonly #log: Logger;
  /** Copies in least-recently-used order: the first is evicted first. */
  readonly #copies = new Map<string, Copy>();
  readonly #reads = new Map<string, number>();
  /** Fills running or queued, by copy name. */
  readonly #filling = new Map<string, Promise<void>>();
  readonly #queue: (() => void)[] = [];
  #running = 0;
  #closed = false;
  #bytes = 0;
  /** Bytes of the fills running now, counted against maxBytes until they land or fail. */
  #reserved = 0;
  #counters: Counters = UNCOUNTED;

  private constructor(settings: ReadCacheSettings, log: Logger) {
    this.#settings = settings;
    this.#log = log;
  }

  /** Registers the tier's counters and gauges (docs/ARCHITECTURE.md, "Local read tier"). */
  #instrument(metrics: Metrics): void {
    const reads = metrics.counter({
      name: 'tessera_read_cache_reads_total',
      help: 'Reads of committed blobs by whether the read tier served them',
      labelNames: ['result'],
    });
    // At 0 from the start, so an alert's increase() sees the first corrupt copy too.
    for (const result of ['hit', 'miss', 'corrupt']) reads.inc({ result }, 0);
    this.#counters = {
      reads,
      fills: metrics.counter({
        name: 'tessera_read_cache_fills_total',
        help: 'Copies the read tier tried to fill, by outcome',
        labelNames: ['outcome'],
      }),
    };
    const cache = this;
    metrics.gauge({
      name: 'tessera_read_cache_bytes',
      help: 'Bytes of the copies in the read tier',
      collect() {
        this.set(cache.bytes);
      },
    });
    metrics.gauge({
      name: 'tessera_read_cache_copies',
      help: 'Copies in the read tier',
      collect() {
        this.set(cache.size);
      },
    });
  }

  /** Opens the directory, removing `.tmp` files and rebuilding the index from the copies. */
  static async open(
    settings: ReadCacheSettings,
    log: Logger,
    metrics?: Metrics,
  ): Promise<ReadCache> {
    const cache = new ReadCache(settings, log);
    if (metrics) cache.#instrument(metrics);
    await mkdir(settings.dir, { recursive: true });
    const found: { name: string; size: number; mtimeMs: number }[] = [];
    for (const name of await readdir(settings.dir)) {
      const path = join(settings.dir, name);
      const match = COPY_NAME_RE.exec(name);
      const info = match ? await stat(path).catch(() => undefined) : undefined;
      if (!match || !info?.isFile() || info.size !== Number(match[3])) {
        // Temp files of fills a crash interrupted, and anything else that is not a whole copy.
        await rm(path, { force: true, recursive: true });
        continue;
      }
      found.push({ name, size: info.size, mtimeMs: info.mtimeMs });
    }
    found.sort((a, b) => a.mtimeMs - b.mtimeMs);
    for (const { name, size } of found) cache.#add(name, size);
    await cache.#evict();
    log.info({ dir: settings.dir, copies: cache.#copies.size, bytes: cache.#bytes }, 'read cache');
    return cache;
  }

  get bytes(): number {
    return this.#bytes;
  }

  get size(): number {
    return this.#copies.size;
  }

  /**
   * A verified local copy of the committed blob `digest`, opened and hashed, or undefined when
   * there is none (or it failed its check and was removed). The caller has just seen the commit
   * entry. The returned stream holds the file open, so an eviction meanwhile cannot cut it short.
   */
  async read(
    digest: Digest,
    offset: number,
    length: number,
  ): Promise<AsyncIterable<Uint8Array> | undefined> {
    const name = nameOf(digest);
    const copy = this.#copies.get(name);
    if (!copy) {
      this.#counters.reads.inc({ result: 'miss' });
      return undefined;
    }
    this.#copies.delete(name);
    this.#copies.set(name, copy);

    let handle: FileHandle;
    try {
      handle = await open(join(this.#settings.dir, name), 'r');
    } catch (error) {
      this.#log.warn({ err: error, digest: formatDigest(digest) }, 'read cache copy unreadable');
      this.#counters.reads.inc({ result: 'corrupt' });
      await this.remove(digest);
      return undefined;
    }
    if (!(await this.#intact(handle, digest))) {
      await handle.close();
      this.#log.error(
        { digest: formatDigest(digest) },
        'read cache copy does not match its digest; removed it, serving from S3',
      );
      this.#counters.reads.inc({ result: 'corrupt' });
      await this.remove(digest);
      return undefined;
    }
    this.#counters.reads.inc({ result: 'hit' });
    // 1 MiB pieces, not the 64 KiB default: the CAS cuts them into read chunks without copying,
    // where 64 KiB pieces had to be concatenated (a 64 MiB read went from 0.85x to 1.4x of S3's
    // speed here).
    return handle.createReadStream({
      start: offset,
      end: offset + length - 1,
      autoClose: true,
      highWaterMark: HASH_READ_BYTES,
    });
  }

  /**
   * Counts a read served from S3 and, when the blob has now been read often enough and fits,
   * starts copying it in the background from `source`. Never throws; a failed fill is logged.
   */
  noteRemoteRead(digest: Digest, source: FillSource): void {
    const { admitAfterReads, maxBlobBytes, maxBytes } = this.#settings;
    if (digest.size === 0 || digest.size > maxBlobBytes || digest.size > maxBytes) return;
    const name = nameOf(digest);
    if (this.#copies.has(name) || this.#filling.has(name)) return;
    const reads = (this.#reads.get(name) ?? 0) + 1;
    if (reads < admitAfterReads || this.#filling.size >= MAX_CONCURRENT_FILLS + MAX_QUEUED_FILLS) {
      if (this.#reads.size >= MAX_TRACKED_BLOBS) this.#reads.clear();
      this.#reads.set(name, reads);
      return;
    }
    this.#reads.delete(name);
    const fill = this.#slot()
      .then(() => this.#fill(digest, name, source))
      .catch((error: unknown) => {
        this.#counters.fills.inc({ outcome: 'failed' });
        this.#log.warn({ err: error, digest: formatDigest(digest) }, 'read cache fill failed');
      })
      .finally(() => {
        this.#filling.delete(name);
        this.#release();
      });
    this.#filling.set(name, fill);
  }

  /** Resolves when one of the MAX_CONCURRENT_FILLS slots is this caller's. */
  async #slot(): Promise<void> {
    if (this.#running < MAX_CONCURRENT_FILLS) {
      this.#running += 1;
      return;
    }
    // The slot is handed over by #release, so `#running` stays as it is.
    await new Promise<void>((resolve) => this.#queue.push(resolve));
  }

  #release(): void {
    const next = this.#queue.shift();
    if (next) next();
    else this.#running -= 1;
  }

  /** Removes the copy of a blob whose commit is gone. */
  async remove(digest: Digest): Promise<void> {
    const name = nameOf(digest);
    const copy = this.#copies.get(name);
    if (!copy) return;
    this.#copies.delete(name);
    this.#bytes -= copy.size;
    await rm(join(this.#settings.dir, name), { force: true });
  }

  /** Drops queued fills and waits for those in flight (none is left half done). */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([...this.#filling.values()]);
  }

  async #fill(digest: Digest, name: string, source: FillSource): Promise<void> {
    if (this.#closed) return;
    const temp = join(this.#settings.dir, `${name}.${randomBytes(6).toString('hex')}.tmp`);
    this.#reserved += digest.size;
    try {
      await this.#evict();
      // Only when two fills at once need more than the whole tier: this one gives way.
      if (this.#bytes + this.#reserved > this.#settings.maxBytes) return;
      const hasher = await createHasher(digest.fn);
      const out = createWriteStream(temp, { flags: 'wx' });
      let bytes = 0;
      try {
        for await (const chunk of await source()) {
          bytes += chunk.length;
          if (bytes > digest.size) break;
          hasher.update(chunk);
          if (!out.write(chunk)) await once(out, 'drain');
        }
      } finally {
        out.end();
        await finished(out);
      }
      const hash = hasher.digest();
      if (bytes !== digest.size || hash !== digest.hash) {
        throw new Error(`fill of ${formatDigest(digest)} got ${bytes} bytes hashing to ${hash}`);
      }
      await rename(temp, join(this.#settings.dir, name));
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    } finally {
      this.#reserved -= digest.size;
    }
    this.#add(name, digest.size);
    this.#counters.fills.inc({ outcome: 'ok' });
    this.#log.debug({ digest: formatDigest(digest), bytes: this.#bytes }, 'read cache filled');
  }

  async #intact(handle: FileHandle, digest: Digest): Promise<boolean> {
    const hasher = await createHasher(digest.fn);
    const buffer = Buffer.allocUnsafe(Math.min(HASH_READ_BYTES, Math.max(digest.size, 1)));
    let total = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, total);
      if (bytesRead === 0) break;
      hasher.update(buffer.subarray(0, bytesRead));
      total += bytesRead;
      if (total > digest.size) return false;
    }
    return total === digest.size && hasher.digest() === digest.hash;
  }

  #add(name: string, size: number): void {
    const before = this.#copies.get(name);
    if (before) this.#bytes -= before.size;
    this.#copies.delete(name);
    this.#copies.set(name, { name, size });
    this.#bytes += size;
  }

  async #evict(): Promise<void> {
    for (const [name, copy] of this.#copies) {
      if (this.#bytes + this.#reserved <= this.#settings.maxBytes) return;
      this.#copies.delete(name);
      this.#bytes -= copy.size;
      // A reader that opened the file keeps its bytes until it closes it.
      await rm(join(this.#settings.dir, name), { force: true });
    }
  }
}

function nameOf(digest: Digest): string {
  return `${digest.fn.toLowerCase()}-${digest.hash}-${digest.size}`;
}
