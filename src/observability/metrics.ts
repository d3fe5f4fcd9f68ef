// Prometheus metrics. Each server instance owns one `Metrics` (its own prom-client Registry, never
// the global default one), so several servers in one process, as in tests, count separately. The
// composition root (src/app.ts) creates it and hands it to every module that records; GET /metrics
// (src/observability/http-server.ts) serves `scrape()`.
//
// Adding a metric from another module: take the `Metrics` in your constructor and call
//   const deleted = metrics.counter({
//     name: 'tessera_gc_deleted_objects_total',
//     help: 'Objects the collector deleted',
//     labelNames: ['reason'],
//   });
//   deleted.inc({ reason: 'expired' });
// `gauge` takes an optional `collect` that runs on each scrape, for values that are cheaper to read
// than to track. Registering the same name twice returns the first instrument (so a module built
// twice in one server does not throw); names must start with `tessera_` and should end in their
// unit (`_seconds`, `_bytes`, `_total` for counters).
//
// The instruments below (`metrics.rpc`, `metrics.s3`, …) are the core set; docs/ARCHITECTURE.md,
// "Observability", lists what each one means.
import {
  type CollectFunction,
  Counter,
  collectDefaultMetrics,
  Gauge,
  Histogram,
  type Metric,
  Registry,
} from 'prom-client';

export interface CounterConfig<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly labelNames?: readonly L[];
}

export interface GaugeConfig<L extends string> extends CounterConfig<L> {
  /** Runs before each scrape; set the gauge's value(s) here. May be async. */
  readonly collect?: CollectFunction<Gauge<L>>;
}

export interface HistogramConfig<L extends string> extends CounterConfig<L> {
  /** Upper bounds, in the metric's unit; defaults to LATENCY_BUCKETS_SECONDS. */
  readonly buckets?: readonly number[];
}

/** Request latencies from a fast Redis GET up to a multi-gigabyte upload. */
export const LATENCY_BUCKETS_SECONDS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300,
] as const;

/** The core instruments Tessera's own modules record into. */
export interface CoreMetrics {
  readonly rpc: {
    readonly handled: Counter<'method' | 'code'>;
    readonly duration: Histogram<'method' | 'code'>;
    readonly inFlight: Gauge<'method' | 'direction'>;
    readonly receivedBytes: Counter<'method'>;
    readonly sentBytes: Counter<'method'>;
  };
  readonly s3: {
    readonly requests: Counter<'operation' | 'outcome'>;
    readonly duration: Histogram<'operation'>;
  };
  readonly redis: {
    readonly commands: Counter<'command' | 'outcome'>;
    readonly duration: Histogram<'command'>;
  };
  readonly actionCacheLookups: Counter<'result'>;
  readonly findMissingDigests: Counter<'result'>;
}

export interface Metrics extends CoreMetrics {
  readonly registry: Registry;
  counter<L extends string = string>(config: CounterConfig<L>): Counter<L>;
  gauge<L extends string = string>(config: GaugeConfig<L>): Gauge<L>;
  histogram<L extends string = string>(config: HistogramConfig<L>): Histogram<L>;
  /** The text exposition format, and its content type for the HTTP response. */
  scrape(): Promise<string>;
  readonly contentType: string;
}

export interface MetricsOptions {
  /** Process and Node.js runtime metrics (CPU, memory, event loop lag, GC); on by default. */
  readonly processMetrics?: boolean;
}

const NAME_RE = /^tessera_[a-z0-9_]+$/;

export function createMetrics(options: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry });

  function existing<M>(name: string, kind: new (...args: never[]) => M): M | undefined {
    if (!NAME_RE.test(name)) {
      throw new Error(`metric name "${name}" must match ${NAME_RE} (tessera_ and snake case)`);
    }
    const found: Metric | undefined = registry.getSingleMetric(name);
    if (found === undefined) return undefined;
    if (!(found instanceof kind)) {
      throw new Error(`metric "${name}" is already registered as another kind of metric`);
    }
    return found;
  }

  const counter = <L extends string>(config: CounterConfig<L>): Counter<L> =>
    existing<Counter<L>>(config.name, Counter) ??
    new Counter<L>({
      name: config.name,
      help: config.help,
      labelNames: config.labelNames ?? [],
      registers: [registry],
    });

  const gauge = <L extends string>(config: GaugeConfig<L>): Gauge<L> =>
    existing<Gauge<L>>(config.name, Gauge) ??
    new Gauge<L>({
      name: config.name,
      help: config.help,
      labelNames: config.labelNames ?? [],
      registers: [registry],
      ...(config.collect ? { collect: config.collect } : {}),
    });

  const histogram = <L extends string>(config: HistogramConfig<L>): Histogram<L> =>
    existing<Histogram<L>>(config.name, Histogram) ??
    new Histogram<L>({
      name: config.name,
      help: config.help,
      labelNames: config.labelNames ?? [],
      buckets: [...(config.buckets ?? LATENCY_BUCKETS_SECONDS)],
      registers: [registry],
    });

  return {
    registry,
    counter,
    gauge,
    histogram,
    scrape: () => registry.metrics(),
    contentType: registry.contentType,
    rpc: {
      handled: counter({
        name: 'tessera_rpcs_total',
        help: 'Finished gRPC calls by method and gRPC status code name (OK, NOT_FOUND, …)',
        labelNames: ['method', 'code'],
      }),
      duration: histogram({
        name: 'tessera_rpc_duration_seconds',
        help: 'Time from a call arriving to its status being sent, by method and status code',
        labelNames: ['method', 'code'],
      }),
      inFlight: gauge({
        name: 'tessera_transfers_in_flight',
        help:
          'Blob transfer calls running now: direction="upload" (ByteStream Write, ' +
          'BatchUpdateBlobs), direction="download" (ByteStream Read, BatchReadBlobs)',
        labelNames: ['method', 'direction'],
      }),
      receivedBytes: counter({
        name: 'tessera_received_bytes_total',
        help: 'Blob bytes received from clients (ByteStream Write data, BatchUpdateBlobs data)',
        labelNames: ['method'],
      }),
      sentBytes: counter({
        name: 'tessera_sent_bytes_total',
        help: 'Blob bytes sent to clients (ByteStream Read data, BatchReadBlobs data)',
        labelNames: ['method'],
      }),
    },
    s3: {
      requests: counter({
        name: 'tessera_s3_requests_total',
        help:
          'S3 requests by operation (PutObject, GetObject, …) and outcome: ok, not_found ' +
          '(a 404, often expected) or error',
        labelNames: ['operation', 'outcome'],
      }),
      duration: histogram({
        name: 'tessera_s3_request_duration_seconds',
        help: 'S3 request latency until the response headers, SDK retries included',
        labelNames: ['operation'],
      }),
    },
    redis: {
      commands: counter({
        name: 'tessera_redis_commands_total',
        help: 'Redis commands by name (get, set, evalsha, …) and outcome: ok or error',
        labelNames: ['command', 'outcome'],
      }),
      duration: histogram({
        name: 'tessera_redis_command_duration_seconds',
        help: 'Redis command latency, from being sent to its reply (pipelined commands each)',
        labelNames: ['command'],
      }),
    },
    actionCacheLookups: counter({
      name: 'tessera_action_cache_lookups_total',
      help:
        'GetActionResult outcomes: hit, miss (no result stored) or incomplete (stored but ' +
        'withheld because an output blob is not committed)',
      labelNames: ['result'],
    }),
    findMissingDigests: counter({
      name: 'tessera_find_missing_digests_total',
      help: 'Digests FindMissingBlobs was asked about, by result: present or missing',
      labelNames: ['result'],
    }),
  };
}
