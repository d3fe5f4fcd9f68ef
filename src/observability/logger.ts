// Structured JSON logs on stdout (pino). One root logger per process; each RPC gets a child that
// carries its method, instance and digest. Nothing else in src/ writes to the console.
import { type Logger, pino } from 'pino';

export type { Logger };

/** `fd` 1 (stdout) for the server; the admin commands log to 2 and print results on 1. */
export function createLogger(level: string, fd = 1): Logger {
  return pino(
    {
      level,
      base: { service: 'tessera' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: {
        paths: ['*.awsSecretAccessKey', '*.awsSessionToken', 'authorization'],
        censor: '***',
      },
    },
    pino.destination({ fd, sync: true }),
  );
}

/** A logger that drops everything, for unit tests of modules that take one. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
