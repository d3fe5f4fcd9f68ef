// `tessera reindex`: rebuilds the commit index from the bucket after Redis lost its data. Every
// object under {s3 prefix}cas/ is read whole and hashed; one whose bytes match its key is
// committed through the ordinary write protocol (a write intent first, so no collector deletes it
// while it is verified, then commit-put), one that does not is reported and left alone. An entry
// that exists already is never rewritten. Safe beside live servers and a collector.
//
// A crash at any point leaves some blobs committed and others not; running it again continues (it
// skips what is committed). It commits nothing it has not verified.
import { type _Object, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { DIGEST_FUNCTION_SEGMENTS, type Digest, toDigest } from '../cas/digest.ts';
import type { RedisCommitIndex } from '../commit-index/redis-commit-index.ts';
import type { MaintenanceMetrics } from '../gc/gc-metrics.ts';
import type { Logger } from '../observability/logger.ts';
import type { S3ObjectStore } from '../storage/s3-object-store.ts';
import { verifyObject } from './verify-object.ts';

export interface ReindexSettings {
  /** Objects verified at once. */
  readonly concurrency: number;
  readonly progressIntervalMs?: number;
}

export interface ReindexReport {
  listed: number;
  committed: number;
  /** Already committed with the same size: left as they were. */
  present: number;
  /** Bytes that do not match their key: not committed. */
  readonly corrupt: { key: string; reason: string }[];
  /** Keys that name no digest (another tool's objects under the prefix). */
  readonly unrecognised: string[];
  /** Deleted meanwhile (by a collector), or a commit refused: nothing to do. */
  lost: number;
}

const PROGRESS_INTERVAL_MS = 5_000;

export async function reindex(
  index: RedisCommitIndex,
  objects: S3ObjectStore,
  settings: ReindexSettings,
  log: Logger,
  metrics?: MaintenanceMetrics,
): Promise<ReindexReport> {
  const report: ReindexReport = {
    listed: 0,
    committed: 0,
    present: 0,
    corrupt: [],
    unrecognised: [],
    lost: 0,
  };
  const casPrefix = `${objects.settings.prefix}cas/`;
  const progressMs = settings.progressIntervalMs ?? PROGRESS_INTERVAL_MS;
  let lastProgress = Date.now();
  const count = (outcome: 'committed' | 'present' | 'corrupt' | 'lost') =>
    metrics?.reindexed.inc({ outcome });

  const one = async (object: _Object) => {
    const key = object.Key as string;
    const digest = digestOfKey(key, casPrefix, object.Size ?? 0);
    if (!digest) {
      report.unrecognised.push(key);
      return;
    }
    const token = await index.beginPutUnlessCommitted(digest);
    if (token === undefined) {
      report.present += 1;
      count('present');
      return;
    }
    const verdict = await verifyObject(objects, digest).catch(async (error: unknown) => {
      await index.abandonPut(digest, token).catch(() => undefined);
      throw error;
    });
    if (!verdict.ok) {
      await index.abandonPut(digest, token);
      if (verdict.reason === 'missing') {
        report.lost += 1;
        count('lost');
        return;
      }
      report.corrupt.push({ key, reason: verdict.detail });
      count('corrupt');
      log.error({ key, reason: verdict.detail }, 'object does not match its key; not committed');
      return;
    }
    if (await index.commitPut(digest, token)) {
      report.committed += 1;
      count('committed');
    } else {
      report.lost += 1;
      count('lost');
    }
  };

  let token: string | undefined;
  do {
    const page = await objects.client.send(
      new ListObjectsV2Command({
        Bucket: objects.settings.bucket,
        Prefix: casPrefix,
        ContinuationToken: token,
      }),
    );
    const queue = [...(page.Contents ?? [])].filter((object) => object.Key !== undefined);
    report.listed += queue.length;
    const worker = async () => {
      for (let object = queue.shift(); object; object = queue.shift()) await one(object);
    };
    await Promise.all(Array.from({ length: settings.concurrency }, worker));
    if (Date.now() - lastProgress >= progressMs) {
      lastProgress = Date.now();
      log.info(progressOf(report), 'reindexing');
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  log.info(progressOf(report), 'reindex finished');
  return report;
}

function progressOf(report: ReindexReport) {
  return {
    listed: report.listed,
    committed: report.committed,
    present: report.present,
    corrupt: report.corrupt.length,
    unrecognised: report.unrecognised.length,
    lost: report.lost,
  };
}

/** `{prefix}cas/{fn}/{hash}` of an object of `size` bytes, or undefined if it names no digest. */
export function digestOfKey(key: string, casPrefix: string, size: number): Digest | undefined {
  const [segment, hash, ...rest] = key.slice(casPrefix.length).split('/');
  const fn = DIGEST_FUNCTION_SEGMENTS.get(segment ?? '');
  if (!fn || rest.length > 0) return undefined;
  try {
    return toDigest(fn, hash, size);
  } catch {
    return undefined;
  }
}
