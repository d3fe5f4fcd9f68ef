// Readiness: can this replica serve right now? Each backend contributes a probe (a cheap
// operation with a short timeout: Redis PING, S3 HeadBucket, a write test of the data directory).
// Results are cached for READINESS_CACHE_MS so that load balancers, Kubernetes and gRPC health
// watchers probing often cost the backends at most one probe each per interval; concurrent askers
// share the probe in flight. A replica that loses a backend turns not ready within one interval
// after the probe fails (or times out) and ready again after it succeeds: nothing is latched.
//
// GET /readyz, grpc.health.v1.Health and the tessera_ready / tessera_backend_up gauges all read
// this. Liveness (/healthz) does not: a replica whose Redis is down is alive, and restarting it
// would not bring Redis back.

import type { Metrics } from './metrics.ts';

/** One backend check. Resolves when the backend answered; throws (or times out) otherwise. */
export interface Probe {
  readonly name: string;
  check(signal: AbortSignal): Promise<void>;
}

export interface ProbeResult {
  readonly name: string;
  readonly ok: boolean;
  /** Why the probe failed; never a credential (errors from clients name hosts at most). */
  readonly error?: string;
}

export interface ReadinessReport {
  readonly ready: boolean;
  readonly checks: readonly ProbeResult[];
}

export interface Readiness {
  /** The cached report, probing again when it is older than the cache interval. */
  check(): Promise<ReadinessReport>;
  /** From now on not ready, for good (shutdown: load balancers should stop sending calls). */
  drain(): void;
}

/** The check a draining replica reports instead of its probes. */
const SHUTDOWN_CHECK = 'shutdown';

export const READINESS_CACHE_MS = 1_000;
export const PROBE_TIMEOUT_MS = 1_500;

export function createReadiness(
  probes: readonly Probe[],
  options: { cacheMs?: number; timeoutMs?: number } = {},
): Readiness {
  const cacheMs = options.cacheMs ?? READINESS_CACHE_MS;
  const timeoutMs = options.timeoutMs ?? PROBE_TIMEOUT_MS;
  let cached: { report: ReadinessReport; at: number } | undefined;
  let running: Promise<ReadinessReport> | undefined;
  let draining = false;

  const probeAll = async (): Promise<ReadinessReport> => {
    const checks = await Promise.all(probes.map((probe) => runProbe(probe, timeoutMs)));
    const report = { ready: checks.every((c) => c.ok), checks };
    cached = { report, at: Date.now() };
    return report;
  };

  return {
    async check() {
      if (draining) {
        return {
          ready: false,
          checks: [{ name: SHUTDOWN_CHECK, ok: false, error: 'shutting down' }],
        };
      }
      if (cached && Date.now() - cached.at < cacheMs) return cached.report;
      running ??= probeAll().finally(() => {
        running = undefined;
      });
      return running;
    },
    drain() {
      draining = true;
    },
  };
}

async function runProbe(probe: Probe, timeoutMs: number): Promise<ProbeResult> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      controller.abort();
      reject(new Error(`no answer within ${timeoutMs} ms`));
    }, timeoutMs);
  });
  const attempt = probe.check(controller.signal);
  try {
    await Promise.race([attempt, timeout]);
    return { name: probe.name, ok: true };
  } catch (error) {
    // The probe may still settle after the timeout; its outcome no longer matters.
    attempt.catch(() => undefined);
    return { name: probe.name, ok: false, error: (error as Error).message ?? String(error) };
  } finally {
    clearTimeout(timer);
  }
}

/** tessera_ready (1 or 0) and tessera_backend_up{backend} from the cached readiness report. */
export function registerReadinessGauges(metrics: Metrics, readiness: Readiness): void {
  // Both ask readiness: it caches, and shares a probe in flight, so a scrape probes at most once.
  metrics.gauge({
    name: 'tessera_ready',
    help: '1 while every backend probe passes and the server is not shutting down, else 0',
    async collect() {
      this.set((await readiness.check()).ready ? 1 : 0);
    },
  });
  metrics.gauge({
    name: 'tessera_backend_up',
    help: 'Readiness probe result per backend (redis, s3, data-dir): 1 answered, 0 did not',
    labelNames: ['backend'],
    async collect() {
      const report = await readiness.check();
      // While draining, the report holds only the 'shutdown' check, which is no backend: the
      // series disappear rather than claim a backend is down (tessera_ready says why).
      this.reset();
      for (const check of report.checks) {
        if (check.name !== SHUTDOWN_CHECK) this.set({ backend: check.name }, check.ok ? 1 : 0);
      }
    },
  });
}
