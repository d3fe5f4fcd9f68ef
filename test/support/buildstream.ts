// Runs Debian's BuildStream 1.6.8 (`bst`) against a private copy of the fixture project in
// test/e2e/buildstream/project, offline. Each client gets its own user configuration, cache,
// build, log and XDG directories under the test's temp directory, so two clients on one machine
// share nothing but the project sources and the remote cache, and no file in $HOME is read.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import {
  chmod,
  cp,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readlink,
  rm,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const FIXTURE_DIR = fileURLToPath(new URL('../e2e/buildstream/project/', import.meta.url));
export const BST = '/usr/bin/bst';
/** One bst command on a 2-core machine takes a second or two; this only stops a hang. */
const COMMAND_TIMEOUT_MS = 120_000;
/** The element every scenario builds. */
export const ELEMENT = 'payload.bst';
/** Over BuildStream's 1 MiB batch limit, so it travels through ByteStream Write and Read. */
export const LARGE_FILE_BYTES = 3 * 1024 * 1024 + 123;
/** Enough small files that BuildStream fills several BatchUpdateBlobs requests. */
export const SMALL_FILES = 120;

export interface BstProject {
  /** The temp directory holding the project copy and every client's directories. */
  readonly root: string;
  /** The project directory, with the generated files/ in it. */
  readonly dir: string;
  cleanup(): Promise<void>;
}

export interface BstResult {
  readonly code: number | null;
  /** stdout and stderr interleaved as they arrived; BuildStream logs to stderr. */
  readonly output: string;
}

export interface BstClient {
  /** Where this client keeps its local artifact cache. */
  readonly artifactDir: string;
  run(args: string[]): Promise<BstResult>;
}

/** Copies the fixture project and generates its files/ with fresh random content. */
export async function prepareProject(): Promise<BstProject> {
  const root = await mkdtemp(join(tmpdir(), 'tessera-bst-'));
  const dir = join(root, 'project');
  try {
    await cp(FIXTURE_DIR, dir, { recursive: true });
    await writePayload(join(dir, 'files'));
  } catch (error) {
    await rm(root, { recursive: true, force: true });
    throw error;
  }
  return { root, dir, cleanup: () => rm(root, { recursive: true, force: true }) };
}

async function writePayload(files: string): Promise<void> {
  const seed = `${process.pid}-${Date.now()}`;
  await mkdir(join(files, 'small'), { recursive: true });
  await mkdir(join(files, 'bin'));
  await mkdir(join(files, 'deep', 'a', 'b', 'c'), { recursive: true });
  await mkdir(join(files, 'empty-dir'));
  await writeFile(join(files, 'large.bin'), randomBytes(LARGE_FILE_BYTES));
  await writeFile(join(files, 'medium.bin'), randomBytes(300 * 1024));
  for (let i = 0; i < SMALL_FILES; i++) {
    const name = `${String(i).padStart(3, '0')}.dat`;
    await writeFile(join(files, 'small', name), randomBytes(1 + i * 97));
  }
  await writeFile(join(files, 'deep', 'a', 'b', 'c', 'leaf.txt'), `leaf ${seed}\n`);
  await writeFile(join(files, 'empty'), '');
  await writeFile(join(files, 'bin', 'tool'), `#!/bin/sh\necho tool ${seed}\n`);
  await chmod(join(files, 'bin', 'tool'), 0o755);
  await symlink('small/001.dat', join(files, 'link'));
  await symlink('../deep/a/b/c', join(files, 'bin', 'dir-link'));
}

/**
 * A BuildStream client with its own empty caches, using `cacheUrl` (http://host:port) as its
 * artifact cache, pushing to it when `push` is set.
 */
export async function createClient(
  project: BstProject,
  name: string,
  cacheUrl: string,
  push: boolean,
): Promise<BstClient> {
  const home = join(project.root, name);
  const dirs = {
    sourcedir: join(home, 'sources'),
    builddir: join(home, 'build'),
    artifactdir: join(home, 'artifacts'),
    logdir: join(home, 'logs'),
  };
  await mkdir(home, { recursive: true });
  const config = join(home, 'buildstream.conf');
  await writeFile(
    config,
    [
      ...Object.entries(dirs).map(([key, path]) => `${key}: ${path}`),
      'scheduler:',
      '  network-retries: 0',
      'artifacts:',
      `  url: ${cacheUrl}`,
      `  push: ${push}`,
      '',
    ].join('\n'),
  );
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    LANG: 'C.UTF-8',
    HOME: home,
    XDG_CACHE_HOME: join(home, 'xdg-cache'),
    XDG_CONFIG_HOME: join(home, 'xdg-config'),
    XDG_DATA_HOME: join(home, 'xdg-data'),
    // gRPC honours proxy variables; the cache is on loopback and must be reached directly.
    no_proxy: '127.0.0.1,localhost',
    no_grpc_proxy: '127.0.0.1,localhost',
  };
  return {
    artifactDir: dirs.artifactdir,
    run: (args) =>
      runBst(['--no-interactive', '--no-colors', '--config', config, ...args], project.dir, env),
  };
}

async function runBst(args: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<BstResult> {
  const child = spawn(BST, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const chunks: string[] = [];
  child.stdout.setEncoding('utf8').on('data', (text: string) => chunks.push(text));
  child.stderr.setEncoding('utf8').on('data', (text: string) => chunks.push(text));
  const timer = setTimeout(() => child.kill('SIGKILL'), COMMAND_TIMEOUT_MS);
  try {
    const [code] = (await once(child, 'close')) as [number | null];
    return { code, output: chunks.join('') };
  } finally {
    clearTimeout(timer);
  }
}

export interface TreeEntry {
  readonly type: 'file' | 'directory' | 'symlink';
  /** Permission bits of files and directories. */
  readonly mode?: number;
  readonly size?: number;
  readonly sha256?: string;
  readonly target?: string;
}

/** Every entry under `dir`, by relative path: type, permissions, content hash, link target. */
export async function snapshotTree(dir: string): Promise<Record<string, TreeEntry>> {
  const entries: Record<string, TreeEntry> = {};
  const walk = async (path: string): Promise<void> => {
    for (const name of (await readdir(path)).sort()) {
      const full = join(path, name);
      const key = relative(dir, full);
      const info = await lstat(full);
      if (info.isSymbolicLink()) {
        entries[key] = { type: 'symlink', target: await readlink(full) };
      } else if (info.isDirectory()) {
        entries[key] = { type: 'directory', mode: info.mode & 0o7777 };
        await walk(full);
      } else {
        const sha256 = await hashFile(full);
        entries[key] = { type: 'file', mode: info.mode & 0o7777, size: info.size, sha256 };
      }
    }
  };
  await walk(dir);
  return entries;
}

async function hashFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
