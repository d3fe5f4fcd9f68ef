// A one-line progress display for the client commands, redrawn a few times a second on stderr —
// and only when stderr is a terminal, so scripts and logs that capture stderr see messages, not
// carriage returns.
import type { ProgressSnapshot } from '../client/progress.ts';

const REDRAW_INTERVAL_MS = 200;

export interface ProgressDisplay {
  /** Draws the final state on its own line (if anything was drawn) and stops redrawing. */
  stop(): void;
}

export interface TerminalStream {
  readonly isTTY?: boolean;
  write(text: string): boolean;
}

export function startProgressDisplay(
  label: string,
  snapshot: () => ProgressSnapshot,
  stream: TerminalStream,
): ProgressDisplay {
  if (stream.isTTY !== true) return { stop: () => {} };

  const draw = () => stream.write(`\r\x1b[K${label} ${describe(snapshot())}`);
  const timer = setInterval(draw, REDRAW_INTERVAL_MS);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      draw();
      stream.write('\n');
    },
  };
}

export function describe(progress: ProgressSnapshot): string {
  const { blobsDone, blobsTotal, bytesDone, bytesTotal } = progress;
  return `${blobsDone}/${blobsTotal} blobs, ${formatBytes(bytesDone)}/${formatBytes(bytesTotal)}`;
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}
