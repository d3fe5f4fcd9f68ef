// `tessera gc | reindex | scrub | stat`: maintenance of the S3 + Redis store, run beside the
// servers with the same settings (flags, TESSERA_* environment, --config). This file splits each
// command's own flags from the settings, prints results on stdout (human or --json) and maps
// failures to exit codes; logs go to stderr.
import { ConfigError, loadConfig } from '../config/load.ts';
import { Collector, CollectorBusyError, collectorSettingsFrom } from '../gc/collector.ts';
import { createLogger, type Logger } from '../observability/logger.ts';
import { type AdminContext, openAdminContext, UnreachableError } from './admin-context.ts';

export const ADMIN_COMMANDS: ReadonlySet<string> = new Set(['gc']);

export const ADMIN_USAGE = `usage: tessera gc      [--dry-run] [--json] [--setting value …]

Maintenance of the S3 + Redis store; each takes the settings tessera serve takes.
gc deletes the objects of blobs whose lease (--cas-lease-seconds) expired, evicts the least
recently used while the store holds more than --gc-budget-bytes, and removes objects with no
commit entry older than --gc-orphan-grace-seconds. One collector runs at a time; --dry-run
prints what would be deleted and deletes nothing.

Exit codes: 0 done; 1 failed; 2 usage or configuration error; 3 Redis unreachable;
4 another collector is running.
`;

interface AdminFlags {
  readonly dryRun: boolean;
  readonly json: boolean;
  /** Everything else: settings for loadConfig. */
  readonly rest: string[];
}

const OWN_FLAGS = new Set(['--dry-run', '--json']);

function splitFlags(argv: readonly string[]): AdminFlags {
  const rest = argv.filter((arg) => !OWN_FLAGS.has(arg));
  return { dryRun: argv.includes('--dry-run'), json: argv.includes('--json'), rest };
}

/** Runs one admin command; resolves with its exit code. */
export async function runAdminCommand(
  command: string,
  argv: string[],
  env: NodeJS.ProcessEnv,
): Promise<number> {
  const flags = splitFlags(argv);
  let context: AdminContext | undefined;
  try {
    const settings = loadConfig({ argv: flags.rest, env });
    const log = createLogger(settings.logLevel, 2);
    context = await openAdminContext(settings);
    await gc(context, flags, log);
    return 0;
  } catch (error) {
    process.stderr.write(`tessera ${command}: ${(error as Error).message}\n`);
    if (error instanceof ConfigError) return 2;
    if (error instanceof UnreachableError) return 3;
    if (error instanceof CollectorBusyError) return 4;
    return 1;
  } finally {
    await context?.close();
  }
}

async function gc(context: AdminContext, flags: AdminFlags, log: Logger): Promise<void> {
  const collector = new Collector(
    context.index,
    context.objects,
    collectorSettingsFrom(context.settings, flags.dryRun),
    log,
  );
  const report = await collector.collect();
  if (flags.json) {
    print(JSON.stringify(report));
    return;
  }
  const verb = report.dryRun ? 'would delete' : 'deleted';
  for (const blob of report.deleted) print(`${verb} ${blob.member} ${blob.bytes} (${blob.reason})`);
  print(
    `${verb} ${report.deleted.length} blobs, ${report.bytesDeleted} bytes; kept ${report.kept} ` +
      `touched or being written; ${report.leftForLater} left for a later run`,
  );
}

function print(line: string): void {
  process.stdout.write(`${line}\n`);
}
