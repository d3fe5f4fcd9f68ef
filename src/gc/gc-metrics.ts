// What the collector and the repair tools count, in the server's Prometheus registry. The one-shot
// commands (`tessera gc`, `reindex`, `scrub`) have no registry: their report is their output.
import type { Counter } from 'prom-client';
import type { Metrics } from '../observability/metrics.ts';

export interface MaintenanceMetrics {
  /** Collections by outcome: done, busy (another collector held the lock), failed. */
  readonly collections: Counter<'outcome'>;
  /** Objects deleted, by reason: expired, evicted, orphan, corrupt. */
  readonly deletedObjects: Counter<'reason'>;
  readonly deletedBytes: Counter<'reason'>;
  /** Condemns refused, by reason: touched, writing (a live write intent), condemned. */
  readonly kept: Counter<'reason'>;
  /** Objects condemned but left for a later sweep (DELETE too late or failed). */
  readonly leftForLater: Counter;
  /** Committed blobs the scrubber re-hashed, and their bytes. */
  readonly scrubbedBlobs: Counter;
  readonly scrubbedBytes: Counter;
  /** Corrupt or missing objects the scrubber found, by reason: mismatch, size, missing. */
  readonly quarantined: Counter<'reason'>;
  /** Objects `reindex` examined, by outcome: committed, present, corrupt, lost. */
  readonly reindexed: Counter<'outcome'>;
}

export function createMaintenanceMetrics(metrics: Metrics): MaintenanceMetrics {
  const collections = metrics.counter({
    name: 'tessera_gc_collections_total',
    help: 'Garbage collections by outcome (done, busy: another replica held the lock, failed)',
    labelNames: ['outcome'],
  });
  const quarantined = metrics.counter({
    name: 'tessera_scrub_quarantined_total',
    help: 'Committed blobs found corrupt or missing and quarantined, by reason',
    labelNames: ['reason'],
  });
  // Exported at 0 from the start: the alerts take increase() of these, which needs a sample from
  // before the first event, so a series born at 1 would hide the first failure or corruption.
  for (const outcome of ['done', 'busy', 'failed']) collections.inc({ outcome }, 0);
  for (const reason of ['mismatch', 'size', 'missing']) quarantined.inc({ reason }, 0);

  return {
    collections,
    deletedObjects: metrics.counter({
      name: 'tessera_gc_deleted_objects_total',
      help: 'Objects deleted from the bucket, by reason (expired, evicted, orphan, corrupt)',
      labelNames: ['reason'],
    }),
    deletedBytes: metrics.counter({
      name: 'tessera_gc_deleted_bytes_total',
      help: 'Bytes of the objects deleted from the bucket, by reason',
      labelNames: ['reason'],
    }),
    kept: metrics.counter({
      name: 'tessera_gc_kept_on_race_total',
      help: 'Blobs chosen for deletion but kept, by reason (touched, writing, condemned)',
      labelNames: ['reason'],
    }),
    leftForLater: metrics.counter({
      name: 'tessera_gc_left_for_later_total',
      help: 'Condemned objects whose DELETE could not be sent in time; a later sweep takes them',
    }),
    scrubbedBlobs: metrics.counter({
      name: 'tessera_scrub_blobs_total',
      help: 'Committed blobs the scrubber re-hashed',
    }),
    scrubbedBytes: metrics.counter({
      name: 'tessera_scrub_bytes_total',
      help: 'Bytes the scrubber re-hashed',
    }),
    quarantined,
    reindexed: metrics.counter({
      name: 'tessera_reindex_objects_total',
      help: 'Objects reindex examined, by outcome (committed, present, corrupt, lost)',
      labelNames: ['outcome'],
    }),
  };
}

/**
 * tessera_gc_budget_bytes: gc_budget_bytes, so alert rules compare tessera_committed_bytes with
 * the configured budget instead of a number copied into them. S3 mode only, where it applies.
 */
export function registerGcBudgetGauge(metrics: Metrics, budgetBytes: number): void {
  metrics
    .gauge({
      name: 'tessera_gc_budget_bytes',
      help:
        'gc_budget_bytes: the collector evicts least recently used blobs while ' +
        'tessera_committed_bytes is above it (0: no budget)',
    })
    .set(budgetBytes);
}
