// Process plumbing shared by the throw-away Redis and Ceph services the tests start.
//
// Invariants:
// - every daemon runs under `setpriv --pdeathsig KILL` where setpriv exists, so the kernel kills it
//   the moment the process that spawned it dies, even by SIGKILL or a crash;
// - every daemon pid and every temp dir is recorded here, and a process 'exit' handler SIGKILLs the
//   pids and removes the dirs, which covers a normal exit when the caller forgot to stop them;
// - daemons are unref'd, so a test file whose tests are done exits without waiting for them.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { accessSync, closeSync, constants, openSync, readFileSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
const LOG_TAIL_BYTES = 4_000;
const EXIT_WAIT_MS = 10_000;

const livePids = new Set<number>();
const liveDirs = new Set<string>();
let exitHandlerInstalled = false;

function installExitHandler(): void {
  if (exitHandlerInstalled) return;
  exitHandlerInstalled = true;
  process.on('exit', () => {
    for (const pid of livePids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone: nothing left to clean up.
      }
    }
    for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true });
  });
}

/** Whether an executable of this name is on PATH. */
export function isOnPath(command: string): boolean {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    try {
      accessSync(join(dir, command), constants.X_OK);
      return true;
    } catch {
      // Not in this PATH entry; keep looking.
    }
  }
  return false;
}

const hasSetpriv = isOnPath('setpriv');

/** A loopback port nobody listened on a moment ago. Another process may still take it first. */
export async function findFreePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  await once(server, 'close');
  if (address === null || typeof address === 'string') {
    throw new Error(`expected a TCP address from a loopback listener, got ${String(address)}`);
  }
  return address.port;
}

/** A fresh temp dir, removed at process exit unless `removeTempDir` got to it first. */
export async function makeTempDir(label: string): Promise<string> {
  installExitHandler();
  const dir = await mkdtemp(join(tmpdir(), `tessera-${label}-`));
  liveDirs.add(dir);
  return dir;
}

export async function removeTempDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  liveDirs.delete(dir);
}

export interface Daemon {
  readonly child: ChildProcess;
  readonly pid: number;
  /** The file that receives the daemon's stdout and stderr. */
  readonly logFile: string;
  /** Resolves once the process has exited, whatever the cause. */
  readonly exited: Promise<void>;
  isRunning(): boolean;
}

/** Starts a long-running process with its output appended to `logFile`. */
export function spawnDaemon(command: string, args: readonly string[], logFile: string): Daemon {
  installExitHandler();
  const fd = openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    const [file, argv] = hasSetpriv
      ? ['setpriv', ['--pdeathsig', 'KILL', '--', command, ...args]]
      : [command, [...args]];
    child = spawn(file, argv, { stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
  const pid = child.pid;
  let running = pid !== undefined;
  // Listen before anything can throw: an unhandled 'error' (ENOENT) would crash the process.
  const exited = new Promise<void>((resolve) => {
    const onGone = () => {
      running = false;
      if (pid !== undefined) livePids.delete(pid);
      resolve();
    };
    child.once('exit', onGone);
    child.once('error', onGone);
  });
  if (pid === undefined) throw new Error(`could not spawn ${command}: is it installed?`);

  livePids.add(pid);
  child.unref();
  return { child, pid, logFile, exited, isRunning: () => running };
}

/**
 * Sends `signal` and waits for the exit. A daemon that ignores SIGTERM for EXIT_WAIT_MS gets
 * SIGKILL, so a stop never hangs a test run.
 */
export async function stopDaemon(daemon: Daemon, signal: NodeJS.Signals): Promise<void> {
  if (!daemon.isRunning()) return;
  // Keep the event loop alive while waiting, otherwise a caller with nothing else pending would
  // exit before the exit event arrives.
  daemon.child.ref();
  try {
    daemon.child.kill(signal);
    const escalate = setTimeout(() => daemon.child.kill('SIGKILL'), EXIT_WAIT_MS);
    await daemon.exited;
    clearTimeout(escalate);
  } finally {
    daemon.child.unref();
  }
}

/**
 * SIGKILLs the process a daemon recorded in `pidFile`, but only while its command line mentions
 * `marker` (say, its config file): a pid left in a stale file may belong to someone else by now.
 */
export function killByPidFile(pidFile: string, marker: string): void {
  let pid: number;
  let commandLine: string;
  try {
    pid = Number.parseInt(readFileSync(pidFile, 'utf8').trim(), 10);
    if (!Number.isSafeInteger(pid) || pid <= 1) return;
    commandLine = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    // No pid file, or no such process any more.
    return;
  }
  if (!commandLine.includes(marker)) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // Exited in the meantime.
  }
}

/** The last few KiB of a log file, for error messages that should say why a daemon failed. */
export function logTail(logFile: string): string {
  try {
    const text = readFileSync(logFile, 'utf8');
    return text.slice(-LOG_TAIL_BYTES).trimEnd();
  } catch {
    return '(no log)';
  }
}

export interface CommandResult {
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a short command to completion; rejects with its stderr when it fails or times out. */
export async function runCommand(
  command: string,
  args: readonly string[],
  timeoutMs: number,
): Promise<CommandResult> {
  try {
    return await execFileAsync(command, args, { timeout: timeoutMs, killSignal: 'SIGKILL' });
  } catch (error) {
    const { stdout = '', stderr = '' } = error as { stdout?: string; stderr?: string };
    const detail = stderr.trim() || stdout.trim() || String(error);
    throw new Error(`${command} ${args.join(' ')} failed: ${detail}`, { cause: error });
  }
}

export interface PollOptions {
  /** What is being waited for, for the timeout message. */
  readonly what: string;
  readonly timeoutMs: number;
  readonly intervalMs: number;
  /** Checked before each attempt; a non-undefined return aborts the wait with that message. */
  readonly abortReason?: () => string | undefined;
}

/**
 * Calls `attempt` until it resolves, then returns its value. Readiness of an external process can
 * only be observed by asking it, so polling is the honest way to wait here.
 */
export async function pollUntil<T>(attempt: () => Promise<T>, options: PollOptions): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  let lastError: unknown;
  for (;;) {
    const reason = options.abortReason?.();
    if (reason !== undefined) {
      throw new Error(`gave up waiting for ${options.what}: ${reason}`, { cause: lastError });
    }
    try {
      return await attempt();
    } catch (error) {
      lastError = error;
    }
    if (Date.now() >= deadline) {
      const detail = lastError instanceof Error ? lastError.message : String(lastError);
      throw new Error(`${options.what} not ready after ${options.timeoutMs} ms: ${detail}`, {
        cause: lastError,
      });
    }
    await sleep(options.intervalMs);
  }
}
