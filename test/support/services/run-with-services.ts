// Starts the test services once, runs one command with the environment that names them, and tears
// them down whatever happens to the command. Used by scripts/test.sh:
//
//   node --import tsx test/support/services/run-with-services.ts -- <command> [args...]
//
// Services already named by the environment (see SERVICE_ENV) are passed through, not started.
// Exits with the command's exit code, or 128 + signal number when it died of a signal.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { constants } from 'node:os';
import { type RunningServices, servicesEnv, startServices } from './index.ts';

const FORWARDED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

function exitCodeFor(signal: NodeJS.Signals): number {
  return 128 + (constants.signals[signal] ?? 0);
}

async function main(argv: readonly string[]): Promise<number> {
  const commandLine = argv[0] === '--' ? argv.slice(1) : argv;
  const [command, ...args] = commandLine;
  if (command === undefined) {
    console.error('usage: run-with-services.ts -- <command> [args...]');
    return 2;
  }

  let child: ChildProcess | undefined;
  let stopping: NodeJS.Signals | undefined;
  for (const signal of FORWARDED_SIGNALS) {
    process.on(signal, () => {
      stopping ??= signal;
      // With a child running, its exit ends main(), which stops the services; before that the
      // start-up below notices `stopping` and gives up.
      child?.kill(signal);
    });
  }

  const startedAt = performance.now();
  let running: RunningServices;
  try {
    running = await startServices(process.env);
  } catch (error) {
    console.error('could not start the test services:', error);
    return 1;
  }
  const elapsedMs = Math.round(performance.now() - startedAt);
  const { services } = running;
  const what = running.started.length > 0 ? running.started.join(' and ') : 'nothing';
  console.error(
    `test services: started ${what} in ${elapsedMs} ms; redis ${services.redisUrl}, ` +
      `s3 ${services.s3.endpoint} bucket ${services.s3.bucket}`,
  );

  try {
    if (stopping !== undefined) return exitCodeFor(stopping);
    const env = { ...process.env, ...servicesEnv(services) };
    child = spawn(command, args, { stdio: 'inherit', env });
    const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
    if (code !== null) return code;
    return exitCodeFor(signal ?? stopping ?? 'SIGTERM');
  } catch (error) {
    console.error(`could not run ${commandLine.join(' ')}:`, error);
    return 1;
  } finally {
    await running.stop();
  }
}

process.exitCode = await main(process.argv.slice(2));
