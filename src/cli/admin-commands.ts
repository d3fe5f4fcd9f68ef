// `tessera gc | reindex | scrub | stat`: maintenance of the S3 + Redis store, run beside the
// servers with the same settings (flags, TESSERA_* environment, --config). This file splits each
// command's own flags from the settings, prints results on stdout (human or --json) and maps
// failures to exit codes; logs go to stderr.
import { type Digest, resolveDigestFunction, toDigest } from '../cas/digest.ts';
import { TOMBSTONE_MAX_LIFE_MS } from '../commit-index/redis-commit-index.ts';
import { ConfigError, loadConfig } from '../config/load.ts';
import { Collector, CollectorBusyError, collectorSettingsFrom } from '../gc/collector.ts';
import { createLogger, type Logger } from '../observability/logger.ts';
import { reindex } from '../repair/reindex.ts';
import { Scrubber } from '../repair/scrub.ts';
import { statDigest, statInstance, statStore } from '../repair/stat.ts';
import { type AdminContext, openAdminContext, UnreachableError } from './admin-context.ts';

export const ADMIN_COMMANDS: ReadonlySet<string> = new Set(['gc', 'reindex', 'scrub', 'stat']);

export const ADMIN_USAGE = `usage: tessera gc      [--dry-run] [--json] [--setting value …]
       tessera reindex [--json] [--setting value …]
       tessera scrub   [--json] [--setting value …]
       tessera stat    [DIGEST | --instance NAME] [--json] [--setting value …]

Maintenance of the S3 + Redis store; each takes the settings tessera serve takes.
gc deletes the objects of blobs whose lease (--cas-lease-seconds) expired, evicts the least
recently used while the store holds more than --gc-budget-bytes, and removes objects with no
commit entry older than --gc-orphan-grace-seconds. One collector runs at a time; --dry-run
prints what would be deleted and deletes nothing.
reindex rebuilds the commit index from the bucket after Redis lost its data: it verifies every
object (--repair-concurrency at once) and commits those whose bytes match their key.
scrub re-hashes every committed blob once (at most --scrub-bytes-per-second, if set) and
quarantines corrupt ones under {s3 prefix}quarantine/, removing their commits.
stat prints counts, sizes and leases: of the store, of one blob (DIGEST is HASH/SIZE), or of
one instance's action results.

Exit codes: 0 done; 1 failed; 2 usage or configuration error; 3 Redis unreachable;
4 another collector is running; 5 done, but corrupt objects were found.
`;

interface AdminFlags {
  readonly dryRun: boolean;
  readonly json: boolean;
  readonly instance: string | undefined;
  readonly digest: string | undefined;
  /** Everything else: settings for loadConfig. */
  readonly rest: string[];
}

class UsageError extends Error {
  override readonly name = 'UsageError';
}

function splitFlags(command: string, argv: readonly string[]): AdminFlags {
  const rest: string[] = [];
  let dryRun = false;
  let json = false;
  let instance: string | undefined;
  let digest: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--dry-run' && command === 'gc') dryRun = true;
    else if (arg === '--json') json = true;
    else if (arg === '--instance' && command === 'stat') {
      instance = argv[++i];
      if (instance === undefined) throw new UsageError('--instance needs a NAME');
    } else if (arg.startsWith('--instance=') && command === 'stat') {
      instance = arg.slice('--instance='.length);
    } else if (i === 0 && command === 'stat' && !arg.startsWith('--')) digest = arg;
    else rest.push(arg);
  }
  if (digest !== undefined && instance !== undefined) {
    throw new UsageError('stat takes a DIGEST or --instance NAME, not both');
  }
  return { dryRun, json, instance, digest, rest };
}

/** Runs one admin command; resolves with its exit code. */
export async function runAdminCommand(
  command: string,
  argv: string[],
  env: NodeJS.ProcessEnv,
): Promise<number> {
  let context: AdminContext | undefined;
  try {
    const flags = splitFlags(command, argv);
    const settings = loadConfig({ argv: flags.rest, env });
    const digest = flags.digest === undefined ? undefined : parseDigest(flags.digest);
    const log = createLogger(settings.logLevel, 2);
    context = await openAdminContext(settings);
    if (command === 'gc') return await gc(context, flags, log);
    if (command === 'reindex') return await runReindex(context, flags, log);
    if (command === 'scrub') return await scrub(context, flags, log);
    return await stat(context, flags, digest);
  } catch (error) {
    process.stderr.write(`tessera ${command}: ${(error as Error).message}\n`);
    if (error instanceof ConfigError || error instanceof UsageError) return 2;
    if (error instanceof UnreachableError) return 3;
    if (error instanceof CollectorBusyError) return 4;
    return 1;
  } finally {
    await context?.close();
  }
}

async function gc(context: AdminContext, flags: AdminFlags, log: Logger): Promise<number> {
  const collector = new Collector(
    context.index,
    context.objects,
    collectorSettingsFrom(context.settings, flags.dryRun),
    log,
  );
  const report = await collector.collect();
  if (flags.json) {
    print(JSON.stringify(report));
    return 0;
  }
  const verb = report.dryRun ? 'would delete' : 'deleted';
  for (const blob of report.deleted) print(`${verb} ${blob.member} ${blob.bytes} (${blob.reason})`);
  print(
    `${verb} ${report.deleted.length} blobs, ${report.bytesDeleted} bytes; kept ` +
      `${report.keptBecause.touched} touched and ${report.keptBecause.writing} being written ` +
      `meanwhile; ${report.leftForLater} left for a later run`,
  );
  return 0;
}

async function runReindex(context: AdminContext, flags: AdminFlags, log: Logger): Promise<number> {
  const report = await reindex(
    context.index,
    context.objects,
    { concurrency: context.settings.repairConcurrency },
    log,
  );
  if (flags.json) print(JSON.stringify(report));
  else {
    for (const bad of report.corrupt) print(`corrupt ${bad.key}: ${bad.reason}`);
    for (const key of report.unrecognised) print(`not a blob ${key}`);
    print(
      `listed ${report.listed} objects: committed ${report.committed}, already committed ` +
        `${report.present}, corrupt ${report.corrupt.length}, gone meanwhile ${report.lost}, ` +
        `not blobs ${report.unrecognised.length}`,
    );
  }
  return report.corrupt.length > 0 ? 5 : 0;
}

async function scrub(context: AdminContext, flags: AdminFlags, log: Logger): Promise<number> {
  const scrubber = new Scrubber(
    context.index,
    context.objects,
    { bytesPerSecond: context.settings.scrubBytesPerSecond, tombstoneMs: TOMBSTONE_MAX_LIFE_MS },
    log,
  );
  const report = await scrubber.pass();
  if (flags.json) print(JSON.stringify(report));
  else {
    for (const bad of report.quarantined) {
      print(`quarantined ${bad.member} (${bad.reason}: ${bad.detail})`);
    }
    print(
      `checked ${report.checked} blobs, ${report.bytes} bytes; quarantined ` +
        `${report.quarantined.length}; ${report.skipped} being written again, left alone`,
    );
  }
  return report.quarantined.length > 0 ? 5 : 0;
}

async function stat(
  context: AdminContext,
  flags: AdminFlags,
  digest: Digest | undefined,
): Promise<number> {
  const leaseMs = context.settings.casLeaseSeconds * 1000;
  const result =
    digest !== undefined
      ? await statDigest(context.index, context.objects, digest, leaseMs)
      : flags.instance !== undefined
        ? await statInstance(context.index, flags.instance)
        : await statStore(context.index);
  if (flags.json) print(JSON.stringify(result));
  else {
    for (const [name, value] of Object.entries(result)) {
      const shown = value !== null && typeof value === 'object' ? JSON.stringify(value) : value;
      print(`${name.padEnd(20)} ${shown ?? '-'}`);
    }
  }
  return 0;
}

function parseDigest(text: string): Digest {
  const match = /^([0-9a-f]+)\/(\d{1,16})$/.exec(text);
  if (match === null) {
    throw new UsageError(`digest "${text}" is not HASH/SIZE (lower-case hex hash, size in bytes)`);
  }
  const [, hash = '', size = ''] = match;
  try {
    return toDigest(resolveDigestFunction(undefined, hash), hash, Number(size));
  } catch (error) {
    throw new UsageError(`digest "${text}" is not valid: ${(error as Error).message}`);
  }
}

function print(line: string): void {
  process.stdout.write(`${line}\n`);
}
