// The `tessera` command. `tessera serve [--flags]` runs the cache server; `tessera upload`,
// `download` and `cat` are the client (src/cli/client-commands.ts); `tessera help` prints usage.
// The CLI and the logger are the only places that write to the console.

import { startApp } from '../app.ts';
import { ConfigError, loadConfig, redactedSummary } from '../config/load.ts';
import { envNameOf, flagNameOf, SETTING_NAMES } from '../config/schema.ts';
import { createLogger } from '../observability/logger.ts';
import { ADMIN_COMMANDS, ADMIN_USAGE, runAdminCommand } from './admin-commands.ts';
import { CLIENT_COMMANDS, CLIENT_USAGE, runClientCommand } from './client-commands.ts';

function settingLine(name: (typeof SETTING_NAMES)[number]): string {
  return `  ${(flagNameOf(name) ?? '').padEnd(32)} ${envNameOf(name)}`;
}

const USAGE = `usage: tessera serve [--listen HOST:PORT] [--config FILE] [--setting value …]

Runs the Tessera remote cache. With no S3 bucket and no Redis configured it keeps blobs in a
local directory (--data-dir); with both it serves from S3 and commits in Redis.

Settings (flag, environment variable):
${SETTING_NAMES.map(settingLine).join('\n')}

${CLIENT_USAGE}
${ADMIN_USAGE}`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(USAGE);
    return command === undefined ? 2 : 0;
  }
  if (CLIENT_COMMANDS.has(command)) return runClientCommand(command, rest, process.env);
  if (ADMIN_COMMANDS.has(command)) return runAdminCommand(command, rest, process.env);
  if (command !== 'serve') {
    process.stderr.write(`tessera: unknown command "${command}"\n\n${USAGE}`);
    return 2;
  }

  let settings: ReturnType<typeof loadConfig>;
  try {
    settings = loadConfig({ argv: rest, env: process.env });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`tessera: ${error.message}\n`);
    return 2;
  }
  const log = createLogger(settings.logLevel);
  let app: Awaited<ReturnType<typeof startApp>>;
  try {
    app = await startApp(settings, log);
  } catch (error) {
    // Files named by settings (TLS, tokens) are checked here; they are config errors too.
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`tessera: ${error.message}\n`);
    return 2;
  }
  log.info(
    {
      address: app.address,
      httpAddress: app.httpAddress,
      backend: app.backend.description,
      tls: app.tls,
      auth: app.access.summary,
      settings: redactedSummary(settings),
    },
    'listening',
  );

  const reload = () => {
    log.info({ signal: 'SIGHUP' }, 'reloading the auth tokens file and the TLS files');
    void app.access.reload();
    void app.reloadTls();
  };
  process.on('SIGHUP', reload);
  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      log.info({ signal }, 'shutting down');
      resolve();
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  process.off('SIGHUP', reload);
  await app.close();
  log.info('stopped');
  return 0;
}

// `serve` exits explicitly: a start that failed half-way may leave a client (Redis reconnecting,
// an HTTP agent) holding the event loop open, and a supervisor must see the process end. The
// client commands end on their own, so that nothing they still write to stdout is cut off.
const serving = process.argv[2] === 'serve';
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    if (serving) process.exit(code);
  },
  (error: unknown) => {
    process.stderr.write(
      `tessera: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exitCode = 1;
    if (serving) process.exit(1);
  },
);
