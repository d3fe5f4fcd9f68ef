// What zstd buys and costs on bytes like build outputs: for each sample set, the compression
// ratio and single-core compress and decompress throughput at levels 1–3, using the same encoder
// and decoder as the server (src/cas/zstd.ts). Run alone with `node --import tsx
// bench/compression.ts`; `npm run bench` includes its table. The samples are files already on a
// machine set up for the tests (the toolchain, the JDK and Bazel), read up to a byte budget each.

import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { compressWhole, decompressWhole } from '../src/cas/zstd.ts';

const SAMPLE_BYTES = 48 * 1024 * 1024;
const LEVELS = [1, 2, 3] as const;

interface SampleSet {
  readonly label: string;
  readonly roots: readonly string[];
  readonly match: RegExp;
}

const SETS: readonly SampleSet[] = [
  { label: 'ELF executables', roots: ['/usr/bin', '/usr/lib/gcc'], match: /./ },
  {
    label: 'Java class archives (.jar)',
    roots: ['/usr/share/java', '/usr/share/bazel'],
    match: /\.jar$/,
  },
  { label: 'C and C++ headers', roots: ['/usr/include'], match: /\.(h|hpp)$|^[a-z_]+$/ },
  {
    label: 'static libraries and objects (.a, .o)',
    roots: ['/usr/lib/x86_64-linux-gnu', '/usr/lib/gcc'],
    match: /\.(a|o)$/,
  },
];

export interface CompressionRow {
  readonly label: string;
  readonly files: number;
  readonly bytes: number;
  readonly level: number;
  readonly ratio: number;
  readonly compressMBps: number;
  readonly decompressMBps: number;
  /** SHA-256 of the same bytes in the same run: the work every upload already does. */
  readonly sha256MBps: number;
}

/** The best of `runs` timings of `work`, in seconds: the least disturbed by other load. */
function best(runs: number, work: () => void): number {
  let fastest = Number.POSITIVE_INFINITY;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    work();
    fastest = Math.min(fastest, (performance.now() - t0) / 1000);
  }
  return fastest;
}

async function collect(set: SampleSet): Promise<Buffer[]> {
  const out: Buffer[] = [];
  let total = 0;
  const walk = async (dir: string): Promise<void> => {
    let names: string[];
    try {
      names = (await readdir(dir)).sort();
    } catch {
      return;
    }
    for (const name of names) {
      if (total >= SAMPLE_BYTES) return;
      const path = join(dir, name);
      const info = await stat(path).catch(() => undefined);
      if (!info) continue;
      if (info.isDirectory()) await walk(path);
      else if (info.isFile() && info.size > 0 && set.match.test(name)) {
        const data = await readFile(path).catch(() => undefined);
        if (!data) continue;
        out.push(data);
        total += data.length;
      }
    }
  };
  for (const root of set.roots) await walk(root);
  return out;
}

export async function measureCompression(): Promise<CompressionRow[]> {
  const rows: CompressionRow[] = [];
  for (const set of SETS) {
    const files = await collect(set);
    const bytes = files.reduce((sum, f) => sum + f.length, 0);
    if (bytes === 0) continue;
    const mb = bytes / 1e6;
    const hashSeconds = best(3, () => {
      for (const file of files) createHash('sha256').update(file).digest();
    });
    for (const level of LEVELS) {
      let packed: Buffer[] = [];
      const compressSeconds = best(3, () => {
        packed = files.map((file) => compressWhole(file, level));
      });
      const decompressSeconds = best(3, () => {
        for (const [i, p] of packed.entries()) decompressWhole(p, files[i]?.length ?? 0, 'bench');
      });
      rows.push({
        label: set.label,
        files: files.length,
        bytes,
        level,
        ratio: bytes / packed.reduce((sum, p) => sum + p.length, 0),
        compressMBps: mb / compressSeconds,
        decompressMBps: mb / decompressSeconds,
        sha256MBps: mb / hashSeconds,
      });
    }
  }
  return rows;
}

export function renderCompression(rows: readonly CompressionRow[]): string {
  const lines = [
    '| sample | files | MiB | level | ratio | compress MB/s | decompress MB/s | SHA-256 MB/s |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.label} | ${r.files} | ${(r.bytes / 1048576).toFixed(1)} | ${r.level} | ` +
        `${r.ratio.toFixed(2)} | ${r.compressMBps.toFixed(0)} | ${r.decompressMBps.toFixed(0)} | ` +
        `${r.sha256MBps.toFixed(0)} |`,
    ),
  ];
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(renderCompression(await measureCompression()));
}
