// Runs Debian's Bazel 4.2.3 against a private copy of the e2e fixture workspace, fully offline.
//
// Offline operation rests on three things arranged here: the packaged install base
// (/usr/share/bazel) is used in place and trusted; rules_java comes from the bazel-rules-java
// package; rules_cc and remote_coverage_tools are replaced by small stand-ins kept in the fixture.
// No rc file outside the temp directory is read, so neither a developer's ~/.bazelrc nor Debian's
// /etc/bazel/bazelrc can add flags. Each workspace has its own output user root: its Bazel server,
// output base and repository cache belong to one test and are deleted with it.
import { type SpawnOptions, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, type Dirent } from 'node:fs';
import { chmod, cp, lstat, mkdtemp, readdir, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const FIXTURE_DIR = fileURLToPath(new URL('../e2e/bazel/workspace/', import.meta.url));
const BAZEL = '/usr/bin/bazel';
const INSTALL_BASE = '/usr/share/bazel';
const RULES_JAVA_DIR = '/usr/share/bazel/rules/java';
// Debian's JDK 17 is what bazel-bootstrap was built for. Pinning it keeps a JAVA_HOME pointing at
// a newer JDK (this machine also has Temurin 25) from being picked up for the Bazel server.
const SERVER_JAVABASE = '/usr/lib/jvm/java-17-openjdk-amd64';
// A generous bound for one Bazel command on a 2-core machine; a hang fails the test instead of
// blocking the suite.
const COMMAND_TIMEOUT_MS = 300_000;
// If a test dies before its cleanup runs, the orphaned Bazel server still exits on its own.
const SERVER_MAX_IDLE_SECS = 300;
// Variables the Bazel client reads to relocate its output or pick another Bazel binary; a test
// runner that sets them (Bazel itself does, for TEST_TMPDIR) must not leak them into our runs.
const SCRUBBED_ENV = ['TEST_TMPDIR', 'USE_BAZEL_VERSION', 'BAZELISK_HOME', 'JAVA_HOME', 'BAZEL_SH'];

export interface BazelWorkspace {
  /** The workspace root, a private copy of test/e2e/bazel/workspace. */
  readonly dir: string;
  /** The --output_user_root of every Bazel command run in this workspace. */
  readonly outputUserRoot: string;
  /** Shuts the Bazel server down and deletes everything prepareWorkspace created. */
  cleanup(): Promise<void>;
}

export interface BazelRunOptions {
  /** host:port of a REAPI server; becomes --remote_cache=grpc://host:port. */
  remoteCache?: string;
  /** Becomes --remote_instance_name. */
  instanceName?: string;
  /** Startup options added after the standard ones. */
  extraStartup?: string[];
  /** Command options added after the standard ones, for example ['--disk_cache=/tmp/x']. */
  extraFlags?: string[];
}

export interface BazelResult {
  /** Exit code of the Bazel client, or null if it died by a signal. */
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface ProcessSummary {
  /** N in `INFO: N processes: ...`. */
  readonly total: number;
  readonly remoteCacheHits: number;
  /** Bazel 4.2 counts --disk_cache hits as `remote cache hit`; later versions print them apart. */
  readonly diskCacheHits: number;
  /** Bookkeeping actions Bazel runs in its own JVM (symlinks, file writes); never cached. */
  readonly internal: number;
  /** Spawns that really ran a command: local, linux-sandbox, worker, remote and so on. */
  readonly executed: number;
  /** Every `<count> <kind>` pair as Bazel printed it, for messages and unexpected kinds. */
  readonly byKind: Readonly<Record<string, number>>;
}

export async function prepareWorkspace(): Promise<BazelWorkspace> {
  const root = await mkdtemp(join(tmpdir(), 'tessera-bazel-'));
  const dir = join(root, 'workspace');
  const outputUserRoot = join(root, 'output-user-root');
  await cp(FIXTURE_DIR, dir, { recursive: true });
  await writeFile(join(root, 'bazelrc'), renderRc(dir));

  const workspace: BazelWorkspace = {
    dir,
    outputUserRoot,
    async cleanup() {
      try {
        await shutdown(workspace);
      } finally {
        // Bazel leaves tree artifacts and parts of the output base read-only; a user other than
        // root cannot delete their contents until the directories are writable again.
        await makeDirectoriesWritable(root);
        await rm(root, { recursive: true, force: true });
      }
    },
  };
  return workspace;
}

export async function runBazel(
  ws: BazelWorkspace,
  args: string[],
  opts: BazelRunOptions = {},
): Promise<BazelResult> {
  if (args.length === 0) throw new Error('runBazel needs a command, e.g. ["build", "//..."]');
  const [command, ...rest] = args as [string, ...string[]];

  const flags: string[] = [];
  if (opts.remoteCache !== undefined) flags.push(`--remote_cache=grpc://${opts.remoteCache}`);
  if (opts.instanceName !== undefined) flags.push(`--remote_instance_name=${opts.instanceName}`);
  flags.push(...(opts.extraFlags ?? []));

  const argv = [...startupOptions(ws), ...(opts.extraStartup ?? []), command, ...flags, ...rest];
  return run(BAZEL, argv, { cwd: ws.dir, env: bazelEnv() });
}

/** Stops the workspace's Bazel server, if one runs. Safe to call more than once. */
export async function shutdown(ws: BazelWorkspace): Promise<void> {
  const result = await run(BAZEL, [...startupOptions(ws), 'shutdown'], {
    cwd: ws.dir,
    env: bazelEnv(),
  });
  if (result.code !== 0) {
    throw new Error(`bazel shutdown exited with ${result.code}: ${result.stderr.trim()}`);
  }
}

/**
 * Reads the last `INFO: N processes: ...` line Bazel printed. Bazel 4.2 writes, for example,
 * `INFO: 38 processes: 23 remote cache hit, 15 internal.` or `INFO: 1 process: 1 internal.`, and
 * plain `INFO: 0 processes.` when nothing ran.
 */
export function parseProcessSummary(output: string): ProcessSummary {
  const lines = [...output.matchAll(/^INFO: (\d+) process(?:es)?(?:: ([^\n]*?))?\.?$/gm)];
  const last = lines.at(-1);
  if (last === undefined) throw new Error('no "INFO: N processes" line in the bazel output');

  const total = Number(last[1]);
  const byKind: Record<string, number> = {};
  for (const part of (last[2] ?? '').split(',')) {
    const trimmed = part.trim();
    if (trimmed === '') continue;
    const match = /^(\d+) (.+)$/.exec(trimmed);
    if (match === null) throw new Error(`cannot read process count "${trimmed}" in "${last[0]}"`);
    const kind = match[2] as string;
    byKind[kind] = (byKind[kind] ?? 0) + Number(match[1]);
  }

  const counted = Object.values(byKind).reduce((sum, n) => sum + n, 0);
  if (counted !== total) {
    throw new Error(`process kinds add up to ${counted}, not ${total}, in "${last[0]}"`);
  }
  const remoteCacheHits = byKind['remote cache hit'] ?? 0;
  const diskCacheHits = byKind['disk cache hit'] ?? 0;
  const internal = byKind.internal ?? 0;
  return {
    total,
    remoteCacheHits,
    diskCacheHits,
    internal,
    executed: total - remoteCacheHits - diskCacheHits - internal,
    byKind,
  };
}

/**
 * A sha256 over an output file, or over a directory output: every entry's relative path, type,
 * executable bit and content, in sorted order. Two outputs with equal digests are byte-identical
 * down to empty files and empty directories.
 */
export async function digestOutput(path: string): Promise<string> {
  const hash = createHash('sha256');
  const stat = await lstat(path);
  if (!stat.isDirectory()) return hashFile(path);

  for (const entry of await listTree(path)) {
    const entryStat = await lstat(entry);
    const name = relative(path, entry);
    if (entryStat.isDirectory()) hash.update(`dir ${name}\n`);
    else if (entryStat.isSymbolicLink()) hash.update(`link ${name} ${await readlink(entry)}\n`);
    else {
      const executable = (entryStat.mode & 0o111) !== 0 ? 'x' : '-';
      hash.update(`file ${name} ${executable} ${await hashFile(entry)}\n`);
    }
  }
  return hash.digest('hex');
}

function startupOptions(ws: BazelWorkspace): string[] {
  return [
    '--nosystem_rc',
    '--nohome_rc',
    '--noworkspace_rc',
    `--bazelrc=${join(ws.dir, '..', 'bazelrc')}`,
    `--output_user_root=${ws.outputUserRoot}`,
    `--install_base=${INSTALL_BASE}`,
    '--trust_install_base',
    `--server_javabase=${SERVER_JAVABASE}`,
    '--host_jvm_args=-Xmx1g',
    `--max_idle_secs=${SERVER_MAX_IDLE_SECS}`,
  ];
}

// `build` lines also apply to test, clean, info and the other commands that inherit from build;
// shutdown inherits nothing, which is why these flags live here and not on every command line.
function renderRc(workspaceDir: string): string {
  const standIns = join(workspaceDir, 'third_party');
  return [
    `build --override_repository=rules_java=${RULES_JAVA_DIR}`,
    `build --override_repository=rules_cc=${join(standIns, 'rules_cc')}`,
    `build --override_repository=remote_coverage_tools=${join(standIns, 'remote_coverage_tools')}`,
    // Sized for a 2-core CI box that also runs the cache server and other tests.
    'build --jobs=4',
    'build --local_cpu_resources=2',
    'build --local_ram_resources=2048',
    'build --remote_timeout=60',
    // The action environment must not carry the caller's PATH, or two runs from different shells
    // would compute different action keys and never hit each other's cache entries.
    'build --incompatible_strict_action_env',
    'build --noshow_progress',
    'build --color=no',
    'build --curses=no',
    'build --verbose_failures',
    'build --test_output=errors',
    '',
  ].join('\n');
}

function bazelEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of SCRUBBED_ENV) delete env[name];
  return env;
}

async function run(file: string, argv: string[], options: SpawnOptions): Promise<BazelResult> {
  const child = spawn(file, argv, {
    ...options,
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: COMMAND_TIMEOUT_MS,
    killSignal: 'SIGKILL',
  });
  const stdout: string[] = [];
  const stderr: string[] = [];
  child.stdout?.setEncoding('utf8').on('data', (text: string) => stdout.push(text));
  child.stderr?.setEncoding('utf8').on('data', (text: string) => stderr.push(text));

  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout: stdout.join(''), stderr: stderr.join('') };
}

async function hashFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Every path below dir (not dir itself), depth first, sorted by name at each level. */
async function listTree(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const paths: string[] = [];
  for (const entry of entries) {
    const path = join(dir, entry.name);
    paths.push(path);
    if (entry.isDirectory()) paths.push(...(await listTree(path)));
  }
  return paths;
}

async function makeDirectoriesWritable(dir: string): Promise<void> {
  let entries: Dirent[];
  try {
    await chmod(dir, 0o755);
    entries = await readdir(dir, { withFileTypes: true });
  } catch (error) {
    // The tree may be half gone already, for example after a `bazel clean --expunge`.
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  for (const entry of entries) {
    if (entry.isDirectory()) await makeDirectoriesWritable(join(dir, entry.name));
  }
}
