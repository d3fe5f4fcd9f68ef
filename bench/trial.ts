// Helpers for one timed trial: the measurement around a transfer, the hash check of what came
// back, and the rotating order of the sides within a trial.
import type { BenchFile } from './files.ts';
import { MB, ownCpuSeconds, s3DaemonCpuSeconds } from './measure.ts';
import type { Measurement } from './report.ts';
import type { BenchServer } from './servers.ts';
import type { DownloadTiming, UploadTiming } from './transfer.ts';

/**
 * Times `run` and the CPU the bench process, the server and the S3 daemons used meanwhile. The
 * rate is `amount` over the seconds `run` reports, in units of `unit` (bytes per decimal MB by
 * default; 1 when `amount` counts blobs, digests or actions).
 */
export async function measure(
  server: BenchServer | undefined,
  amount: number,
  run: () => Promise<{ readonly seconds: number } | UploadTiming | DownloadTiming>,
  unit = MB,
): Promise<Measurement> {
  const clientBefore = ownCpuSeconds();
  const serverBefore = server?.cpuSeconds();
  const s3Before = s3DaemonCpuSeconds();
  const timing = await run();
  const s3After = s3DaemonCpuSeconds();
  const cores = (before: number | undefined, after: number | undefined) =>
    before === undefined || after === undefined ? undefined : (after - before) / timing.seconds;
  const after = 'afterLastByteSeconds' in timing ? timing.afterLastByteSeconds : undefined;
  return {
    rate: amount / unit / timing.seconds,
    seconds: timing.seconds,
    clientCpuCores: (ownCpuSeconds() - clientBefore) / timing.seconds,
    serverCpuCores: cores(serverBefore, server?.cpuSeconds()),
    s3CpuCores: cores(s3Before, s3After),
    afterLastByteSeconds: after,
  };
}

export function hashCheck(timing: DownloadTiming | undefined, file: BenchFile): string {
  if (!timing) return 'nothing';
  const ok = timing.bytes === file.size && timing.sha256 === file.sha256;
  return ok
    ? `${timing.bytes} bytes, sha256 ${timing.sha256} matched the file`
    : `${timing.bytes} bytes with sha256 ${timing.sha256}, MISMATCH: the file has ` +
        `${file.size} bytes with sha256 ${file.sha256}`;
}

/** `items` starting at position `by`, wrapping round. */
export function rotate<T>(items: readonly T[], by: number): T[] {
  const at = by % items.length;
  return [...items.slice(at), ...items.slice(0, at)];
}
