// A throw-away redis-server for tests, on a free loopback port, in its own temp dir.
//
// Nothing is persisted (`--save ''`, `--appendonly no`), so `kill()` followed by `start()` brings
// back an empty Redis on the same port: exactly what a crash of an unpersisted Redis looks like to
// a client. `stop()` also removes the temp dir; `start()` after it makes a new one.
import { connect } from 'node:net';
import { join } from 'node:path';
import {
  type Daemon,
  findFreePort,
  logTail,
  makeTempDir,
  pollUntil,
  removeTempDir,
  spawnDaemon,
  stopDaemon,
} from './daemon.ts';

const READY_TIMEOUT_MS = 10_000;
const POLL_INTERVAL_MS = 20;
/** Starts tried when the picked port turns out to be taken. */
const START_ATTEMPTS = 3;
const PING_TIMEOUT_MS = 1_000;

export interface RedisServer {
  /** `redis://127.0.0.1:<port>`, the same across restarts. */
  readonly url: string;
  readonly port: number;
  /** Starts redis-server again on the same port; a no-op while it runs. */
  start(): Promise<void>;
  /** SIGTERM, wait for the exit, remove the temp dir. Safe to call twice. */
  stop(): Promise<void>;
  /** SIGKILL, as in a crash; the temp dir stays until `stop()`. */
  kill(): Promise<void>;
}

/** Starts redis-server and resolves once it answers PING. */
export async function startRedis(): Promise<RedisServer> {
  for (let attempt = 1; ; attempt++) {
    const server = new LocalRedis(await findFreePort());
    try {
      await server.start();
      return server;
    } catch (error) {
      await server.stop();
      // The port was free when picked; another process (a Ceph daemon starting alongside) may
      // have bound it since. Pick another.
      if (attempt >= START_ATTEMPTS) throw error;
    }
  }
}

class LocalRedis implements RedisServer {
  readonly url: string;
  private dir: string | undefined;
  private daemon: Daemon | undefined;

  constructor(readonly port: number) {
    this.url = `redis://127.0.0.1:${port}`;
  }

  async start(): Promise<void> {
    if (this.daemon?.isRunning()) return;

    this.dir ??= await makeTempDir('redis');
    const logFile = join(this.dir, 'redis.log');
    const settings: Record<string, string> = {
      bind: '127.0.0.1',
      port: String(this.port),
      dir: this.dir,
      save: '',
      appendonly: 'no',
      daemonize: 'no',
      // Empty means stdout, which spawnDaemon sends to the log file.
      logfile: '',
    };
    const args = Object.entries(settings).flatMap(([name, value]) => [`--${name}`, value]);
    const daemon = spawnDaemon('redis-server', args, logFile);
    this.daemon = daemon;

    try {
      await pollUntil(() => ping(this.port), {
        what: `redis-server on port ${this.port}`,
        timeoutMs: READY_TIMEOUT_MS,
        intervalMs: POLL_INTERVAL_MS,
        abortReason: () =>
          daemon.isRunning() ? undefined : `redis-server exited early:\n${logTail(logFile)}`,
      });
    } catch (error) {
      await stopDaemon(daemon, 'SIGKILL');
      throw error;
    }
  }

  async stop(): Promise<void> {
    if (this.daemon !== undefined) await stopDaemon(this.daemon, 'SIGTERM');
    this.daemon = undefined;
    if (this.dir !== undefined) await removeTempDir(this.dir);
    this.dir = undefined;
  }

  async kill(): Promise<void> {
    if (this.daemon !== undefined) await stopDaemon(this.daemon, 'SIGKILL');
  }
}

/** Resolves when Redis on `port` answers PONG; a loading or refusing server rejects. */
function ping(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let reply = '';
    const finish = (error?: Error) => {
      socket.destroy();
      if (error === undefined) resolve();
      else reject(error);
    };
    socket.setTimeout(PING_TIMEOUT_MS, () => finish(new Error('PING timed out')));
    socket.once('error', finish);
    socket.once('close', () => finish(new Error('connection closed before a PING reply')));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      reply += chunk;
      if (!reply.includes('\r\n')) return;
      if (reply.startsWith('+PONG')) finish();
      else finish(new Error(`unexpected PING reply ${JSON.stringify(reply.trim())}`));
    });
  });
}
