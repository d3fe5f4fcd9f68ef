// A logger whose lines tests can read, for asserting that a warning or error was logged.
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Logger } from '../../src/observability/logger.ts';

export interface CapturedLogs {
  readonly log: Logger;
  readonly lines: Record<string, unknown>[];
}

export function captureLogs(level = 'info'): CapturedLogs {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      done();
    },
  });
  return {
    log: pino({ level, formatters: { level: (label) => ({ level: label }) } }, sink),
    lines,
  };
}
