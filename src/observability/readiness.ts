// Readiness: can this replica serve right now? Each backend contributes a probe (a cheap
// operation with a short timeout: Redis PING, S3 HeadBucket, a write test of the data directory).
// Results are cached for READINESS_CACHE_MS so that load balancers, Kubernetes and gRPC health
// watchers probing often cost the backends at most one probe each per interval; concurrent askers
// share the probe in flight. A replica that loses a backend turns not ready within one interval
// after the probe fails (or times out) and ready again after it succeeds: nothing is latched.
//
// GET /readyz and grpc.health.v1.Health both read this. Liveness (/healthz) does not: a replica
// whose Redis is down is alive, and restarting it would not bring Redis back.

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
        return { ready: false, checks: [{ name: 'shutdown', ok: false, error: 'shutting down' }] };
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
