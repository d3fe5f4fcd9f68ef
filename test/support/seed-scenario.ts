// The scenario Tessera exists for: many clients each upload a fresh directory tree through one
// replica and download it through another straight away, and every byte must match. A cache that
// acknowledged uploads before they were committed fails this sooner or later. The CI suite runs it
// small; `npm run bench` runs it large and reports trials and failures.
import { randomBytes } from 'node:crypto';
import {
  chmod,
  lstat,
  mkdir,
  readdir,
  readFile,
  readlink,
  rm,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import { downloadTree, openConnection, uploadPath } from '../../src/client/index.ts';

export interface SeedOptions {
  /** Replica the uploads go through. */
  readonly uploadVia: string;
  /** Replica the downloads go through. */
  readonly downloadVia: string;
  /** Clients working at the same time. */
  readonly clients: number;
  /** Trees each client uploads and downloads, one after another. */
  readonly rounds: number;
  /** Small files per tree (0 bytes to 256 KiB), spread over nested directories. */
  readonly smallFiles: number;
  /** Large files per tree, each `largeBytes` give or take a few KiB. */
  readonly largeFiles: number;
  readonly largeBytes: number;
  /** Scratch space; each trial works in its own folder below it and removes it. */
  readonly workDir: string;
}

export interface SeedReport {
  readonly trials: number;
  readonly failures: readonly string[];
  readonly files: number;
  readonly bytes: number;
  readonly seconds: number;
}

const SMALL_SIZES = [0, 1, 17, 512, 4096, 65_536, 100_000, 262_144];

export async function runSeedScenario(options: SeedOptions): Promise<SeedReport> {
  const started = performance.now();
  const failures: string[] = [];
  let files = 0;
  let bytes = 0;

  const client = async (id: number) => {
    const up = await openConnection({ server: options.uploadVia });
    const down = await openConnection({ server: options.downloadVia });
    try {
      for (let round = 0; round < options.rounds; round++) {
        const trial = join(options.workDir, `client-${id}-round-${round}`);
        try {
          const made = await makeTree(join(trial, 'src'), options);
          files += made.files;
          bytes += made.bytes;
          const uploaded = await uploadPath(up, join(trial, 'src'), { jobs: 8 });
          await downloadTree(down, uploaded.digest, join(trial, 'dst'), { jobs: 8 });
          const difference = await compareTrees(join(trial, 'src'), join(trial, 'dst'));
          if (difference) failures.push(`client ${id} round ${round}: ${difference}`);
        } catch (error) {
          failures.push(`client ${id} round ${round}: ${(error as Error).message}`);
        } finally {
          await rm(trial, { recursive: true, force: true });
        }
      }
    } finally {
      up.close();
      down.close();
    }
  };
  await Promise.all(Array.from({ length: options.clients }, (_, id) => client(id)));

  return {
    trials: options.clients * options.rounds,
    failures,
    files,
    bytes,
    seconds: (performance.now() - started) / 1000,
  };
}

/** A fresh tree: every file's content is random, so nothing in it is in the cache already. */
async function makeTree(root: string, options: SeedOptions) {
  let files = 0;
  let bytes = 0;
  const dirs = [root, join(root, 'a'), join(root, 'a', 'b'), join(root, 'c'), join(root, 'empty')];
  for (const dir of dirs) await mkdir(dir, { recursive: true });
  const write = async (path: string, size: number, executable: boolean) => {
    await writeFile(path, randomBytes(size));
    if (executable) await chmod(path, 0o755);
    files += 1;
    bytes += size;
  };
  for (let i = 0; i < options.smallFiles; i++) {
    const dir = dirs[i % 4] as string;
    const size = SMALL_SIZES[i % SMALL_SIZES.length] as number;
    await write(join(dir, `f${i}`), size, i % 7 === 0);
  }
  for (let i = 0; i < options.largeFiles; i++) {
    await write(join(root, 'c', `large${i}`), options.largeBytes + i * 4099, false);
  }
  await symlink('a/b/f2', join(root, 'link'));
  return { files, bytes };
}

/** The first difference between two trees (content, executable bit, link target), or undefined. */
export async function compareTrees(a: string, b: string): Promise<string | undefined> {
  const left = (await readdir(a)).sort();
  const right = (await readdir(b)).sort();
  if (left.join('/') !== right.join('/')) return `${a} lists ${left.length}, ${b} ${right.length}`;
  for (const name of left) {
    const pa = join(a, name);
    const pb = join(b, name);
    const [sa, sb] = await Promise.all([lstatOf(pa), lstatOf(pb)]);
    if (sa.kind !== sb.kind)
      return `${name} is a ${sa.kind} in one tree and a ${sb.kind} in the other`;
    if (sa.kind === 'dir') {
      const inner = await compareTrees(pa, pb);
      if (inner) return inner;
    } else if (sa.kind === 'link') {
      if ((await readlink(pa)) !== (await readlink(pb))) return `${pb} points elsewhere`;
    } else {
      if (sa.executable !== sb.executable) return `${pb} lost its executable bit`;
      const [da, db] = await Promise.all([readFile(pa), readFile(pb)]);
      if (!da.equals(db)) return `${pb} differs (${db.length} bytes, expected ${da.length})`;
    }
  }
  return undefined;
}

async function lstatOf(path: string) {
  const info = await lstat(path);
  const kind = info.isSymbolicLink() ? 'link' : info.isDirectory() ? 'dir' : 'file';
  return { kind, executable: (info.mode & 0o100) !== 0 };
}
