// Starts `tessera serve` as a child process, the way an operator would, and waits for the one
// log line that says where it listens. Used by every test that talks to a real server process.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const ENTRY = fileURLToPath(new URL('../../bin/tessera.js', import.meta.url));
const READY_TIMEOUT_MS = 30_000;

export interface TesseraProcess {
  /** host:port the server listens on. */
  readonly address: string;
  readonly child: ChildProcess;
  /** Every log line the server printed so far, parsed; complete once stop() or kill() resolves. */
  readonly logs: Record<string, unknown>[];
  /** SIGTERM, then wait for exit and the end of its output. Returns the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL, then wait for exit and the end of its output. */
  kill(): Promise<void>;
}

export interface StartOptions {
  /** Extra environment on top of process.env (TESSERA_* settings). */
  env?: Record<string, string | undefined>;
  /** Extra arguments after `serve`. */
  args?: string[];
  /** Node flags, for example ['--max-old-space-size=256']. */
  nodeArgs?: string[];
}

export async function startTessera(options: StartOptions = {}): Promise<TesseraProcess> {
  const child = spawn(
    process.execPath,
    [
      ...(options.nodeArgs ?? []),
      ENTRY,
      'serve',
      '--listen',
      '127.0.0.1:0',
      ...(options.args ?? []),
    ],
    { env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const logs: Record<string, unknown>[] = [];
  const stderr: string[] = [];
  child.stderr?.setEncoding('utf8').on('data', (text: string) => stderr.push(text));
  // 'close' comes after 'exit' and after stdout has ended, so by then every log line is in `logs`.
  const closed = once(child, 'close');

  const address = await new Promise<string>((resolve, reject) => {
    // A server that hangs on the way up is killed, or it would keep the test process alive.
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      const output = stderr.join('');
      reject(new Error(`tessera did not report listening in ${READY_TIMEOUT_MS} ms: ${output}`));
    }, READY_TIMEOUT_MS);
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      logs.push(entry);
      if (entry.msg === 'listening' && typeof entry.address === 'string') {
        clearTimeout(timer);
        resolve(entry.address);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`tessera exited with ${code} before listening: ${stderr.join('')}`));
    });
  });

  return {
    address,
    child,
    logs,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const [code] = (await closed) as [number | null];
      return code;
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await closed;
    },
  };
}

export interface EmbeddedTessera {
  readonly server: TesseraProcess;
  readonly dataDir: string;
  /** Stops the server and removes its data directory. */
  stop(): Promise<void>;
}

/**
 * `tessera serve` on the embedded store in a fresh data directory, even if the caller's shell
 * names S3 or Redis.
 */
export async function startEmbeddedTessera(
  options: { logLevel?: string; env?: Record<string, string> } = {},
): Promise<EmbeddedTessera> {
  const dataDir = await mkdtemp(join(tmpdir(), 'tessera-embedded-'));
  const removeData = () => rm(dataDir, { recursive: true, force: true });
  try {
    const server = await startTessera({
      env: {
        TESSERA_DATA_DIR: dataDir,
        TESSERA_LOG_LEVEL: options.logLevel,
        TESSERA_STAGING_DIR: undefined,
        TESSERA_S3_ENDPOINT: undefined,
        TESSERA_S3_BUCKET: undefined,
        TESSERA_S3_PREFIX: undefined,
        TESSERA_REDIS_URL: undefined,
        TESSERA_REDIS_PREFIX: undefined,
        ...options.env,
      },
    });
    return {
      server,
      dataDir,
      async stop() {
        try {
          await server.stop();
        } finally {
          await removeData();
        }
      },
    };
  } catch (error) {
    await removeData();
    throw error;
  }
}
