// What the bench reads about processes, and how it summarises trials. Linux only: peak RSS and
// CPU time of the server come from /proc/<pid>, which is why the server runs as its own process.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** Throughput unit: decimal megabytes, the unit the RGW figures in REFERENCE.md use. */
export const MB = 1_000_000;
export const MIB = 1024 * 1024;

let clockTicksPerSecond: number | undefined;

function ticksPerSecond(): number {
  clockTicksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
  return clockTicksPerSecond;
}

/** The process's peak resident set (VmHWM), in bytes. */
export function peakRssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmHWM:\s+(\d+) kB$/m.exec(status);
  if (!match?.[1]) throw new Error(`/proc/${pid}/status has no VmHWM line`);
  return Number(match[1]) * 1024;
}

/** User plus system CPU time the process has used so far, all threads, in seconds. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name in field 2 may hold spaces; fields are counted after its closing paren.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) {
    throw new Error(`cannot read utime/stime from /proc/${pid}/stat`);
  }
  return (utime + stime) / ticksPerSecond();
}

/** The Ceph daemons behind the S3 endpoint, when this process started them. */
const S3_DAEMON_NAMES: ReadonlySet<string> = new Set(['radosgw', 'ceph-osd', 'ceph-mon']);

/**
 * CPU seconds used so far by the S3 server's daemons that are children of this process (the test
 * harness starts them directly, without a shell in between). Undefined when there are none, as
 * with an S3 server named by the environment.
 */
export function s3DaemonCpuSeconds(): number | undefined {
  let total: number | undefined;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // Exited while the directory was being read.
    }
    const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (parent !== process.pid || !S3_DAEMON_NAMES.has(name)) continue;
    total = (total ?? 0) + cpuSeconds(Number(entry));
  }
  return total;
}

/** CPU seconds this (the bench) process has used so far. */
export function ownCpuSeconds(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}

export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

export function spread(values: readonly number[]): Spread {
  if (values.length === 0) throw new Error('cannot summarise zero trials');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median =
    sorted.length % 2 === 1
      ? (sorted[mid] as number)
      : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
  return { median, min: sorted[0] as number, max: sorted[sorted.length - 1] as number };
}

export function mbPerSecond(bytes: number, seconds: number): number {
  return bytes / MB / seconds;
}

/** Seconds since `started`, a `performance.now()` reading. */
export function since(started: number): number {
  return (performance.now() - started) / 1000;
}
