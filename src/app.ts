// The composition root: checks the TLS files and loads the access tokens, builds the backend for
// the configured mode, the CAS, the upload registry, the asset store and the gRPC server, and tears
// them down in order.

import { join } from 'node:path';
import type { AssetStore } from './asset/asset-store.ts';
import { DirectoryAssetStore } from './asset/directory-asset-store.ts';
import { RedisAssetStore } from './asset/redis-asset-store.ts';
import { type AccessControl, createAccessControl } from './auth/access-control.ts';
import { loadServerSecurity, type TlsMode, type TlsReloadOutcome } from './auth/tls.ts';
import { Cas } from './cas/cas.ts';
import type { Backend } from './cas/store.ts';
import { UploadRegistry } from './cas/uploads.ts';
import { RedisCommitIndex, TOMBSTONE_MAX_LIFE_MS } from './commit-index/redis-commit-index.ts';
import { defaultStagingDir, isCloudMode, type Settings } from './config/schema.ts';
import { DirectoryStore } from './embedded/directory-store.ts';
import { Collector, collectorSettingsFrom } from './gc/collector.ts';
import { createMaintenanceMetrics, registerGcBudgetGauge } from './gc/gc-metrics.ts';
import { CollectorSchedule } from './gc/scheduler.ts';
import { bindServer, createGrpcServer, shutdownServer } from './grpc/server.ts';
import {
  countFiles,
  instrumentRedis,
  instrumentS3Client,
  registerCommitEntryGauge,
  registerCommittedGauges,
  registerStagingGauges,
  registerUploadSessionGauges,
} from './observability/backend-metrics.ts';
import { armCrashPoints } from './observability/crash-points.ts';
import { type HttpServer, startHttpServer } from './observability/http-server.ts';
import type { Logger } from './observability/logger.ts';
import { createMetrics, type Metrics } from './observability/metrics.ts';
import { dataDirProbe, redisProbe, s3Probe } from './observability/probes.ts';
import {
  createReadiness,
  type Probe,
  type Readiness,
  registerReadinessGauges,
} from './observability/readiness.ts';
import { ReadCache } from './read-cache/read-cache.ts';
import { ReadThroughActionCache } from './regions/action-results.ts';
import { createPeerClient } from './regions/peer-client.ts';
import { ReadThrough } from './regions/read-through.ts';
import { Replication } from './regions/replication.ts';
import { Scrubber } from './repair/scrub.ts';
import { ScrubSchedule } from './repair/scrub-schedule.ts';
import { StagingBudget } from './staging/budget.ts';
import { prepareStagingDir } from './staging/spool.ts';
import { MultipartJanitor } from './storage/janitor.ts';
import { S3ObjectStore, s3SettingsFrom } from './storage/s3-object-store.ts';
import { S3RedisBackend } from './storage/s3-redis-backend.ts';

const REDIS_STARTUP_WAIT_MS = 5_000;

export interface App {
  readonly address: string;
  readonly backend: Backend;
  readonly assets: AssetStore;
  readonly access: AccessControl;
  readonly tls: TlsMode;
  /** host:port of the operations HTTP server; undefined when httpListen is unset. */
  readonly httpAddress: string | undefined;
  readonly metrics: Metrics;
  readonly readiness: Readiness;
  /** Reads the TLS files again (SIGHUP and every tlsReloadIntervalSeconds); logs the outcome. */
  reloadTls(): Promise<TlsReloadOutcome>;
  close(): Promise<void>;
}

export async function startApp(settings: Settings, log: Logger): Promise<App> {
  const security = await loadServerSecurity(settings);
  if (security.certificateNotAfter && Date.parse(security.certificateNotAfter) < Date.now()) {
    log.warn({ notAfter: security.certificateNotAfter }, 'the TLS certificate has expired');
  }
  const access = await createAccessControl(settings, log);
  armCrashPoints(settings.crashPoints);
  if (settings.crashPoints) log.warn({ crashPoints: settings.crashPoints }, 'crash points armed');
  const stagingDir = defaultStagingDir(settings);
  const swept = await prepareStagingDir(stagingDir);
  if (swept > 0)
    log.info({ stagingDir, files: swept }, 'removed staging files left by a previous run');

  const metrics = createMetrics();
  const { backend, assets, janitor, collection, scrubbing, probes, index } = await createBackend(
    settings,
    log,
    metrics,
  );
  janitor?.start();
  collection?.start();
  scrubbing?.start();
  const readiness = createReadiness(probes);
  registerReadinessGauges(metrics, readiness);
  const shuttingDown = new AbortController();
  const stagingBudget = new StagingBudget(settings.stagingMaxBytes);
  registerStagingGauges(metrics, stagingBudget);
  const peers = settings.peers.map((peer) =>
    createPeerClient(peer, settings.region, settings.peerTimeoutMs),
  );
  const regionLog = log.child({ region: settings.region });
  const readThrough = new ReadThrough(peers, { timeoutMs: settings.peerTimeoutMs, log: regionLog });
  const replication =
    settings.replication === 'on' && index !== undefined && peers.length > 0
      ? new Replication(index.redis, settings.redisPrefix, regionLog)
      : undefined;
  // Commits and action results are logged in the same Redis step that writes them.
  if (replication) index?.journalCommits(replication.commitJournal);
  const cas = new Cas(backend.blobs, {
    stagingDir,
    readChunkBytes: settings.readChunkBytes,
    stagingBudget,
    verifyReads: settings.verifyReads,
    log,
    readThrough,
  });
  readThrough.bind(cas);
  const actions = readThrough.enabled
    ? new ReadThroughActionCache(backend.actions, readThrough, cas, log)
    : backend.actions;
  replication?.start(peers, cas, backend.actions, metrics);
  const uploads = new UploadRegistry(
    cas,
    settings.uploadIdleTimeoutSeconds * 1000,
    settings.maxConcurrentUploads,
  );
  registerUploadSessionGauges(metrics, uploads);
  const server = createGrpcServer({
    cas,
    uploads,
    actions,
    assets,
    maxBatchTotalSizeBytes: settings.maxBatchTotalSizeBytes,
    log,
    access,
    metrics,
    readiness,
    shutdown: shuttingDown.signal,
  });
  let address: string;
  let http: HttpServer | undefined;
  try {
    address = await bindServer(server, settings.listen, security.credentials);
    if (settings.httpListen) {
      http = await startHttpServer(settings.httpListen, { metrics, readiness, log });
    }
  } catch (error) {
    server.forceShutdown();
    access.close();
    readThrough.close();
    await backend.close();
    throw error;
  }

  const reloadTls = async (): Promise<TlsReloadOutcome> => {
    const outcome = await security.reload();
    if (outcome.kind === 'replaced') {
      log.info({ notAfter: outcome.certificateNotAfter }, 'TLS certificate replaced');
    } else if (outcome.kind === 'refused') {
      log.error({ reason: outcome.error }, 'TLS files refused; the previous certificate stays');
    }
    return outcome;
  };
  const tlsTimer =
    security.mode !== 'off' && settings.tlsReloadIntervalSeconds > 0
      ? setInterval(() => void reloadTls(), settings.tlsReloadIntervalSeconds * 1000).unref()
      : undefined;

  return {
    address,
    backend,
    assets,
    access,
    tls: security.mode,
    httpAddress: http?.address,
    metrics,
    readiness,
    reloadTls,
    async close() {
      clearInterval(tlsTimer);
      readiness.drain();
      shuttingDown.abort();
      await shutdownServer(server, settings.shutdownGraceSeconds * 1000);
      await http?.close();
      access.close();
      await uploads.closeAll();
      await replication?.stop();
      readThrough.close();
      await janitor?.stop();
      await collection?.stop();
      await scrubbing?.stop();
      await backend.close();
    },
  };
}

interface Backends {
  backend: Backend;
  assets: AssetStore;
  janitor?: MultipartJanitor;
  collection?: CollectorSchedule;
  scrubbing?: ScrubSchedule;
  /** What readiness checks: each backend this replica cannot serve without. */
  probes: Probe[];
  /** The commit index, in S3 mode (the replication log lives on its connection too). */
  index?: RedisCommitIndex;
}

async function createBackend(settings: Settings, log: Logger, metrics: Metrics): Promise<Backends> {
  if (!isCloudMode(settings)) {
    registerCommitEntryGauge(metrics, () => countFiles(join(settings.dataDir, 'cas')));
    return {
      backend: new DirectoryStore(settings.dataDir),
      assets: new DirectoryAssetStore(settings.dataDir),
      probes: [dataDirProbe(settings.dataDir)],
    };
  }

  const bucket = settings.s3Bucket as string;
  const objects = new S3ObjectStore(s3SettingsFrom(settings), (key, uploadId, error) =>
    log.error({ key, uploadId, err: error }, 'gave up aborting a failed multipart upload'),
  );
  instrumentS3Client(objects.client, metrics);
  const index = new RedisCommitIndex({
    url: settings.redisUrl as string,
    prefix: settings.redisPrefix,
    leaseSeconds: settings.casLeaseSeconds,
  });
  instrumentRedis(index.redis, metrics);
  registerCommittedGauges(metrics, index);
  if (!(await index.connect(REDIS_STARTUP_WAIT_MS))) {
    log.warn('redis is not reachable yet; serving UNAVAILABLE until it is');
  }
  const where = `s3://${bucket}/${settings.s3Prefix} via ${settings.s3Endpoint ?? 'AWS'}`;
  const janitor = new MultipartJanitor(
    objects.client,
    objects.multipart,
    index.redis,
    {
      bucket,
      keyPrefix: `${settings.s3Prefix}cas/`,
      markerPrefix: `${settings.redisPrefix}mpu:`,
      graceMs: settings.abandonedUploadGraceSeconds * 1000,
      intervalMs: settings.janitorIntervalSeconds * 1000,
    },
    log,
  );
  const maintenance = createMaintenanceMetrics(metrics);
  registerGcBudgetGauge(metrics, settings.gcBudgetBytes);
  const collector = new Collector(index, objects, collectorSettingsFrom(settings, false), log, {
    metrics: maintenance,
  });
  return {
    janitor,
    index,
    probes: [redisProbe(index.redis), s3Probe(objects.client, bucket)],
    collection: new CollectorSchedule(collector, settings.gcIntervalSeconds * 1000, log),
    scrubbing:
      settings.scrubBytesPerSecond > 0
        ? new ScrubSchedule(
            new Scrubber(
              index,
              objects,
              { bytesPerSecond: settings.scrubBytesPerSecond, tombstoneMs: TOMBSTONE_MAX_LIFE_MS },
              log,
              maintenance,
            ),
            index,
            settings.scrubIntervalSeconds * 1000,
            log,
          )
        : undefined,
    backend: new S3RedisBackend(
      objects,
      index,
      log,
      `${where}, commits in redis`,
      {
        stagingDir: defaultStagingDir(settings),
        idleTimeoutMs: settings.uploadIdleTimeoutSeconds * 1000,
        acrossReplicas: settings.resumeAcrossReplicas,
      },
      await openReadCache(settings, log, metrics),
    ),
    assets: new RedisAssetStore(index.redis, {
      prefix: settings.redisPrefix,
      leaseSeconds: settings.casLeaseSeconds,
    }),
  };
}

/** The local read tier of S3 mode, or undefined when readCacheBytes is 0. */
async function openReadCache(
  settings: Settings,
  log: Logger,
  metrics: Metrics,
): Promise<ReadCache | undefined> {
  if (settings.readCacheBytes === 0) return undefined;
  return ReadCache.open(
    {
      dir: settings.readCacheDir ?? `${defaultStagingDir(settings)}-read-cache`,
      maxBytes: settings.readCacheBytes,
      admitAfterReads: settings.readCacheAdmitAfterReads,
      maxBlobBytes: settings.readCacheMaxBlobBytes,
    },
    log,
    metrics,
  );
}
