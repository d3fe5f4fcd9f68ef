// Structured JSON logs on stdout (pino). One root logger per process; each RPC gets a child that
// carries its method, instance and digest. Nothing else in src/ writes to the console.
import { type Logger, pino } from 'pino';

export type { Logger };

export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: 'tessera' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    redact: {
      paths: ['*.awsSecretAccessKey', '*.awsSessionToken', 'authorization'],
      censor: '***',
    },
  });
}

/** A logger that drops everything, for unit tests of modules that take one. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
