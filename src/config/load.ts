// Turns flags, environment and an optional JSON file into validated Settings, or into a
// ConfigError whose message names each bad setting, where it came from, its value and what is
// allowed.
import { readFileSync } from 'node:fs';
import {
  envNameOf,
  flagNameOf,
  isCloudMode,
  SECRET_SETTINGS,
  SETTING_NAMES,
  type SettingName,
  type Settings,
  settingsSchema,
} from './schema.ts';

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

interface Raw {
  values: Record<string, unknown>;
  origin: Map<string, string>;
}

export interface LoadInput {
  argv: readonly string[];
  env: Readonly<Record<string, string | undefined>>;
}

export function loadConfig({ argv, env }: LoadInput): Settings {
  const raw: Raw = { values: {}, origin: new Map() };
  const flags = parseFlags(argv);
  const configPath = flags.get('--config') ?? env.TESSERA_CONFIG;
  if (configPath) readConfigFile(configPath, raw);
  for (const name of SETTING_NAMES) {
    const value = env[envNameOf(name)];
    if (value !== undefined) set(raw, name, value, envNameOf(name));
  }
  for (const name of SETTING_NAMES) {
    const flag = flagNameOf(name);
    const value = flag ? flags.get(flag) : undefined;
    if (flag && value !== undefined) set(raw, name, value, flag);
  }

  const parsed = settingsSchema.safeParse(raw.values);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => {
      const name = String(issue.path[0] ?? '');
      if (issue.code === 'unrecognized_keys') {
        return (
          `unknown setting(s) ${issue.keys.join(', ')} in ${configPath}; ` +
          `known: ${SETTING_NAMES.join(', ')}`
        );
      }
      const value = raw.values[name];
      // Peers may carry bearer tokens: their text is never echoed back.
      const shown =
        SECRET_SETTINGS.has(name as SettingName) || name === 'peers'
          ? '(redacted)'
          : JSON.stringify(typeof value === 'string' ? maskUrlCredentials(value) : value);
      return `${name} (${raw.origin.get(name) ?? 'default'}) = ${shown}: ${issue.message}`;
    });
    throw new ConfigError(`invalid configuration:\n  ${lines.join('\n  ')}`);
  }
  assertConsistent(parsed.data, raw);
  return parsed.data;
}

function assertConsistent(settings: Settings, raw: Raw): void {
  assertTlsComplete(settings, raw);
  if (!isCloudMode(settings)) return;
  const missing: string[] = [];
  if (!settings.s3Bucket) missing.push(`s3Bucket (${envNameOf('s3Bucket')})`);
  if (!settings.redisUrl) missing.push(`redisUrl (${envNameOf('redisUrl')})`);
  if (missing.length > 0) {
    const given = settings.s3Bucket ? 's3Bucket' : 'redisUrl';
    throw new ConfigError(
      `invalid configuration:\n  ${given} (${raw.origin.get(given)}) is set, so S3 mode needs ` +
        `${missing.join(' and ')} too; unset both to use the embedded store`,
    );
  }
}

/** TLS needs a certificate and its key together; a client CA only makes sense with both. */
function assertTlsComplete(settings: Settings, raw: Raw): void {
  const named = (['tlsCertFile', 'tlsKeyFile', 'tlsClientCaFile'] as const).filter(
    (name) => settings[name] !== undefined,
  );
  if (named.length === 0 || (settings.tlsCertFile && settings.tlsKeyFile)) return;
  const given = named.map((name) => `${name} (${raw.origin.get(name)})`).join(' and ');
  throw new ConfigError(
    `invalid configuration:\n  ${given} is set, so TLS needs tlsCertFile ` +
      `(${envNameOf('tlsCertFile')}) and tlsKeyFile (${envNameOf('tlsKeyFile')}) together; ` +
      'unset all three for plaintext',
  );
}

/** An empty value (or null in the file) means "not set here", as an unset variable does. */
function set(raw: Raw, name: string, value: unknown, where: string): void {
  if (value === '' || value === null) return;
  raw.values[name] = value;
  raw.origin.set(name, where);
}

/** `--name value` and `--name=value`; a flag with no value is `true`. */
function parseFlags(argv: readonly string[]): Map<string, string> {
  const known = new Set(['--config', ...SETTING_NAMES.map(flagNameOf).filter(Boolean)]);
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (!arg.startsWith('--')) {
      throw new ConfigError(`unexpected argument "${arg}"; settings are given as --name value`);
    }
    const eq = arg.indexOf('=');
    const flag = eq >= 0 ? arg.slice(0, eq) : arg;
    if (!known.has(flag)) {
      throw new ConfigError(`unknown flag ${flag}; known: ${[...known].join(', ')}`);
    }
    if (eq >= 0) {
      flags.set(flag, arg.slice(eq + 1));
    } else {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) flags.set(flag, 'true');
      else {
        flags.set(flag, next);
        i++;
      }
    }
  }
  return flags;
}

function readConfigFile(path: string, raw: Raw): void {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read config file ${path}: ${(error as Error).message}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    // Node's message quotes the text around the fault, which may be a secret: give a position only.
    const position = /position (\d+)/.exec((error as Error).message)?.[1];
    const where = position === undefined ? '' : ` (near character ${position})`;
    throw new ConfigError(`config file ${path} is not valid JSON${where}`);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new ConfigError(`config file ${path} must hold a JSON object of settings`);
  }
  for (const [name, value] of Object.entries(data)) set(raw, name, value, path);
}

/** The settings for the startup log line, with secrets replaced. */
export function redactedSummary(settings: Settings): Record<string, unknown> {
  const summary: Record<string, unknown> = {};
  for (const name of SETTING_NAMES) {
    const value = settings[name];
    if (value === undefined) continue;
    summary[name] = SECRET_SETTINGS.has(name) ? '(redacted)' : value;
  }
  if (typeof summary.redisUrl === 'string') summary.redisUrl = maskUrlCredentials(summary.redisUrl);
  summary.peers = settings.peers.map((peer) =>
    peer.token === undefined ? peer : { ...peer, token: '(redacted)' },
  );
  return summary;
}

/** `scheme://user:password@host…` with the user and password (which may hold '@') replaced. */
export function maskUrlCredentials(text: string): string {
  const start = text.indexOf('://');
  if (start < 0) return text;
  const rest = text.slice(start + 3);
  const end = rest.search(/[/?#]/);
  const authority = end < 0 ? rest : rest.slice(0, end);
  const at = authority.lastIndexOf('@');
  if (at < 0) return text;
  return `${text.slice(0, start + 3)}***@${rest.slice(at + 1)}`;
}
