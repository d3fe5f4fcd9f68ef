// A throw-away single-node Ceph cluster with a RADOS Gateway in front, for tests that need a real
// S3 server without Docker.
//
// Layout of the temp dir: ceph.conf, monmap, mon/a (monitor store), osd/0 (memstore OSD; objects
// live in the OSD's RAM), run/ (pid files, admin sockets), log/ (one log per daemon).
//
// Invariants:
// - one monitor, one OSD, auth off, msgr v1 only, pools of size 1; everything on 127.0.0.1;
// - the S3 endpoint, keys and bucket stay the same across gateway and cluster restarts;
// - a crash of the test process takes every daemon with it (see daemon.ts).
//
// What each way of stopping leaves behind:
// - stopGateway()/killGateway(): the cluster keeps every object and multipart upload; only the
//   HTTP server is gone, and startGateway() brings it back on the same port;
// - stop(): everything, the temp dir included; a later start() makes a new, empty cluster with
//   the same endpoint, keys and bucket.
import { randomUUID } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import {
  CreateBucketCommand,
  HeadBucketCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import {
  type Daemon,
  findFreePort,
  killByPidFile,
  logTail,
  makeTempDir,
  pollUntil,
  removeTempDir,
  runCommand,
  spawnDaemon,
  stopDaemon,
} from './daemon.ts';

export const DEFAULT_TEST_BUCKET = 'tessera-test';
export const TEST_ACCESS_KEY_ID = 'TESSERATESTACCESSKEY';
export const TEST_SECRET_ACCESS_KEY = 'tessera-test-secret-key-for-local-rgw-only';
const TEST_REGION = 'us-east-1';
const TEST_USER = 'tessera-test';

const MON_ID = 'a';
const OSD_ID = '0';
const RGW_NAME = 'client.rgw';
/**
 * Capacity the memstore OSD reports. Objects really live in RAM, so this only moves the point at
 * which Ceph calls the OSD full (95%); tests that write more than about 5.7 GiB without deleting
 * get "full" errors. The bench writes about 3.3 GiB to one RGW; the tests far less.
 */
const MEMSTORE_DEVICE_BYTES = 6 * 1024 ** 3;

const CLUSTER_READY_TIMEOUT_MS = 60_000;
/** Starts tried when the gateway's port turns out to be taken. */
const START_ATTEMPTS = 4;
const GATEWAY_READY_TIMEOUT_MS = 30_000;
const COMMAND_TIMEOUT_MS = 60_000;
const POLL_INTERVAL_MS = 50;
const HTTP_PROBE_TIMEOUT_MS = 1_000;

/** Connection settings for an S3 server, as tests and the server under test consume them. */
export interface S3Settings {
  readonly endpoint: string;
  readonly bucket: string;
  readonly region: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly forcePathStyle: boolean;
}

export interface RgwServer extends S3Settings {
  /** Starts whatever is down: the gateway alone, or after `stop()` a new, empty cluster. */
  start(): Promise<void>;
  /** Kills every daemon and removes the temp dir. Safe to call twice. */
  stop(): Promise<void>;
  /** SIGKILLs the gateway, as in a crash of the S3 server; the cluster and its data stay. */
  kill(): Promise<void>;
  /** Starts the gateway again on the same port and waits until it answers HTTP. */
  startGateway(): Promise<void>;
  /** SIGTERMs the gateway and waits for it to exit; the cluster and its data stay. */
  stopGateway(): Promise<void>;
  /** SIGKILLs the gateway; same as `kill()`. */
  killGateway(): Promise<void>;
}

export interface RgwOptions {
  /** Bucket created at start; default `tessera-test`. */
  readonly bucket?: string;
}

/** Brings up mon, OSD and radosgw, creates the test user and bucket, and resolves when S3 works. */
export async function startRgw(options: RgwOptions = {}): Promise<RgwServer> {
  for (let attempt = 1; ; attempt++) {
    const server = new LocalRgw(await findFreePort(), options.bucket ?? DEFAULT_TEST_BUCKET);
    try {
      await server.start();
      return server;
    } catch (error) {
      await server.stop();
      // The gateway's port was free when picked, but the cluster's own daemons bind ports of
      // their choosing while it starts and may take it; pick another and start again.
      const taken = String((error as Error).message).includes('Address already in use');
      if (!taken || attempt >= START_ATTEMPTS) throw error;
    }
  }
}

/** An S3 client that works against RGW, MinIO and AWS alike. */
export function createTestS3Client(
  settings: S3Settings,
  overrides: Partial<S3ClientConfig> = {},
): S3Client {
  return new S3Client({
    endpoint: settings.endpoint,
    region: settings.region,
    forcePathStyle: settings.forcePathStyle,
    credentials: {
      accessKeyId: settings.accessKeyId,
      secretAccessKey: settings.secretAccessKey,
    },
    // RGW answers 411 to a streamed PutObject with the SDK's default checksum trailers.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    ...overrides,
  });
}

/** Creates the settings' bucket unless it exists already. */
export async function ensureBucket(settings: S3Settings): Promise<void> {
  const client = createTestS3Client(settings);
  try {
    try {
      await client.send(new HeadBucketCommand({ Bucket: settings.bucket }));
      return;
    } catch (error) {
      if (httpStatusOf(error) !== 404) throw error;
    }
    try {
      await client.send(new CreateBucketCommand({ Bucket: settings.bucket }));
    } catch (error) {
      // Another process may have created it between the two calls.
      if (!(error instanceof Error && error.name === 'BucketAlreadyOwnedByYou')) throw error;
    }
  } finally {
    client.destroy();
  }
}

function httpStatusOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null || !('$metadata' in error)) return undefined;
  const metadata = error.$metadata as { httpStatusCode?: number } | undefined;
  return metadata?.httpStatusCode;
}

interface Cluster {
  readonly dir: string;
  readonly conf: string;
  readonly mon: Daemon;
  readonly osd: Daemon;
}

class LocalRgw implements RgwServer {
  readonly endpoint: string;
  readonly region = TEST_REGION;
  readonly accessKeyId = TEST_ACCESS_KEY_ID;
  readonly secretAccessKey = TEST_SECRET_ACCESS_KEY;
  readonly forcePathStyle = true;
  private cluster: Cluster | undefined;
  private gateway: Daemon | undefined;

  constructor(
    private readonly gatewayPort: number,
    readonly bucket: string,
  ) {
    this.endpoint = `http://127.0.0.1:${gatewayPort}`;
  }

  async start(): Promise<void> {
    if (this.cluster === undefined) {
      this.cluster = await this.startCluster();
      await this.startGateway();
      await ensureBucket(this);
      return;
    }
    await this.startGateway();
  }

  async stop(): Promise<void> {
    const cluster = this.cluster;
    this.cluster = undefined;
    const daemons = [this.gateway, cluster?.osd, cluster?.mon];
    this.gateway = undefined;
    // Each daemon wrote its own pid file, so killing by it does not rely on these handles being
    // complete; the handles are then awaited, so the dir goes only after every daemon has exited.
    if (cluster !== undefined) {
      for (const name of [RGW_NAME, `osd.${OSD_ID}`, `mon.${MON_ID}`]) {
        killByPidFile(join(cluster.dir, 'run', `${name}.pid`), cluster.conf);
      }
    }
    await Promise.all(daemons.map((d) => (d === undefined ? undefined : stopDaemon(d, 'SIGKILL'))));

    if (cluster !== undefined) await removeTempDir(cluster.dir);
  }

  kill(): Promise<void> {
    return this.killGateway();
  }

  async startGateway(): Promise<void> {
    const cluster = this.cluster;
    if (cluster === undefined) throw new Error('the ceph cluster is stopped; call start() first');
    if (this.gateway?.isRunning()) return;

    const logFile = join(cluster.dir, 'log', 'rgw.out');
    const gateway = spawnDaemon('radosgw', ['-c', cluster.conf, '-n', RGW_NAME, '-f'], logFile);
    this.gateway = gateway;
    const logs = () =>
      `${logTail(logFile)}\n${logTail(join(cluster.dir, 'log', `${RGW_NAME}.log`))}`;
    try {
      await pollUntil(() => probeHttp(this.gatewayPort), {
        what: `radosgw on port ${this.gatewayPort}`,
        timeoutMs: GATEWAY_READY_TIMEOUT_MS,
        intervalMs: POLL_INTERVAL_MS,
        abortReason: () => (gateway.isRunning() ? undefined : `radosgw exited early:\n${logs()}`),
      });
    } catch (error) {
      // A gateway that never answered must not linger and make the next startGateway() a no-op.
      await stopDaemon(gateway, 'SIGKILL');
      throw error;
    }
  }

  async stopGateway(): Promise<void> {
    if (this.gateway !== undefined) await stopDaemon(this.gateway, 'SIGTERM');
  }

  async killGateway(): Promise<void> {
    if (this.gateway !== undefined) await stopDaemon(this.gateway, 'SIGKILL');
  }

  private async startCluster(): Promise<Cluster> {
    const dir = await makeTempDir('ceph');
    const conf = join(dir, 'ceph.conf');
    const fsid = randomUUID();
    const osdUuid = randomUUID();
    const monPort = await findFreePort();
    for (const sub of ['run', 'log', `mon/${MON_ID}`, `osd/${OSD_ID}`]) {
      await mkdir(join(dir, sub), { recursive: true });
    }
    await writeFile(conf, cephConf({ dir, fsid, monPort, gatewayPort: this.gatewayPort }));

    const daemons: Daemon[] = [];
    const anyDied = () => {
      const dead = daemons.find((d) => !d.isRunning());
      return dead === undefined ? undefined : `${dead.logFile}:\n${logTail(dead.logFile)}`;
    };
    // Every Ceph tool reads the cluster's ceph.conf instead of the one under /etc/ceph.
    const run = (tool: string, ...args: string[]) =>
      runCommand(tool, ['-c', conf, ...args], COMMAND_TIMEOUT_MS);
    const daemon = (tool: string, id: string) =>
      spawnDaemon(tool, ['-c', conf, '-i', id, '-f'], join(dir, 'log', `${tool}.out`));
    try {
      const monmap = join(dir, 'monmap');
      const monAddress = `[v1:127.0.0.1:${monPort}]`;
      await run('monmaptool', '--create', '--fsid', fsid, '--addv', MON_ID, monAddress, monmap);
      await run('ceph-mon', '--mkfs', '-i', MON_ID, '--monmap', monmap);
      const mon = daemon('ceph-mon', MON_ID);
      daemons.push(mon);

      // A monitor that has just started sometimes answers EPERM; `osd new` with the same uuid and
      // id is idempotent, so retrying it is safe.
      const newOsd = () => run('ceph', '--connect-timeout', '5', 'osd', 'new', osdUuid, OSD_ID);
      await pollUntil(newOsd, {
        what: 'the ceph monitor',
        timeoutMs: CLUSTER_READY_TIMEOUT_MS,
        intervalMs: POLL_INTERVAL_MS,
        abortReason: anyDied,
      });
      const crushLocation = ['host=localhost', 'root=default'];
      await run('ceph', 'osd', 'crush', 'add', `osd.${OSD_ID}`, '1', ...crushLocation);
      await run('ceph-osd', '-i', OSD_ID, '--mkfs', '--osd-uuid', osdUuid);
      const osd = daemon('ceph-osd', OSD_ID);
      daemons.push(osd);

      // Creating the user creates the gateway's pools and waits until the OSD serves them.
      const user = ['--uid', TEST_USER, '--display-name', TEST_USER];
      const keys = ['--access-key', TEST_ACCESS_KEY_ID, '--secret', TEST_SECRET_ACCESS_KEY];
      await run('radosgw-admin', 'user', 'create', ...user, ...keys);
      const died = anyDied();
      if (died !== undefined) throw new Error(`a ceph daemon exited during start-up: ${died}`);
      return { dir, conf, mon, osd };
    } catch (error) {
      await Promise.all(daemons.map((d) => stopDaemon(d, 'SIGKILL')));
      await removeTempDir(dir);
      throw error;
    }
  }
}

interface ConfParams {
  readonly dir: string;
  readonly fsid: string;
  readonly monPort: number;
  readonly gatewayPort: number;
}

function cephConf({ dir, fsid, monPort, gatewayPort }: ConfParams): string {
  const global: Record<string, string | number | boolean> = {
    fsid,
    mon_host: `v1:127.0.0.1:${monPort}`,
    public_addr: '127.0.0.1',
    cluster_addr: '127.0.0.1',
    ms_bind_msgr1: true,
    ms_bind_msgr2: false,
    auth_cluster_required: 'none',
    auth_service_required: 'none',
    auth_client_required: 'none',
    run_dir: join(dir, 'run'),
    admin_socket: join(dir, 'run', '$name.asok'),
    pid_file: join(dir, 'run', '$name.pid'),
    log_file: join(dir, 'log', '$name.log'),
    // Nothing to read with auth off, but without a path the tools look under /etc/ceph.
    keyring: join(dir, 'keyring'),
    mon_data: join(dir, 'mon', '$id'),
    osd_data: join(dir, 'osd', '$id'),
    osd_objectstore: 'memstore',
    memstore_device_bytes: MEMSTORE_DEVICE_BYTES,
    osd_pool_default_size: 1,
    osd_pool_default_min_size: 1,
    osd_pool_default_pg_num: 8,
    osd_pool_default_pgp_num: 8,
    osd_pool_default_pg_autoscale_mode: 'off',
    mon_allow_pool_size_one: true,
    mon_warn_on_pool_no_redundancy: false,
    mon_max_pg_per_osd: 1000,
    osd_crush_update_on_start: false,
    osd_class_update_on_start: false,
    // The default of 1 s makes every map change, and so the first start, take about 12 s.
    paxos_propose_interval: 0.05,
  };
  const gateway: Record<string, string> = {
    // Without tcp_nodelay every small GET waits about 44 ms on Nagle and delayed ACKs.
    rgw_frontends: `beast endpoint=127.0.0.1:${gatewayPort} tcp_nodelay=1`,
  };
  return `${section('global', global)}\n${section(RGW_NAME, gateway)}`;
}

function section(name: string, settings: Record<string, string | number | boolean>): string {
  const lines = Object.entries(settings).map(([key, value]) => `${key} = ${String(value)}`);
  return `[${name}]\n${lines.join('\n')}\n`;
}

/** Resolves on any HTTP response from the port; a refused or silent port rejects. */
function probeHttp(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', method: 'GET', agent: false });
    req.setTimeout(HTTP_PROBE_TIMEOUT_MS, () => req.destroy(new Error('no HTTP answer in time')));
    req.once('error', reject);
    req.once('response', (res) => {
      res.resume();
      resolve();
    });
    req.end();
  });
}
