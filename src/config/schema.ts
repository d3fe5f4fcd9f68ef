// The one configuration schema. Settings come from (highest first) command-line flags, TESSERA_*
// environment variables, an optional JSON config file, then these defaults. Modules never read
// process.env: `loadConfig` parses once and each module receives its slice.
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { parseStaticTokens, type TokenEntry } from '../auth/tokens.ts';

const MIB = 1024 * 1024;
/** S3 refuses parts under 5 MiB (except the last) and over 5 GiB. */
export const S3_MIN_PART_SIZE_BYTES = 5 * MIB;
export const S3_MAX_PART_SIZE_BYTES = 5 * 1024 * MIB;
/** The protocol caps ByteStream read chunks here; Bazel 4 fails on chunks near 4 MiB. */
export const MAX_READ_CHUNK_BYTES = MIB;

/** Decimal digits from env or flags, or a JSON number. */
const integer = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.preprocess(
    (value) => (typeof value === 'string' && /^\s*-?\d+\s*$/.test(value) ? Number(value) : value),
    z
      .number({
        error: (issue) => (issue.code === 'invalid_type' ? 'expected a whole number' : undefined),
      })
      .int()
      .min(min)
      .max(max),
  );

const boolean = z.preprocess((value) => {
  if (typeof value !== 'string') return value;
  const lowered = value.trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(lowered)) return true;
  if (['false', '0', 'no', 'off', ''].includes(lowered)) return false;
  return value;
}, z.boolean());

const HOST_PORT_RE = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;
const hostPort = z.string().refine((value) => {
  const port = HOST_PORT_RE.exec(value)?.[2];
  return port !== undefined && Number(port) <= 65535;
}, 'expected HOST:PORT with a port from 0 to 65535, e.g. 127.0.0.1:8980');

const optionalText = z
  .string()
  .optional()
  .transform((value) => (value === '' ? undefined : value));

export const settingsSchema = z
  .object({
    listen: hostPort.default('127.0.0.1:8980'),
    dataDir: z
      .string()
      .min(1)
      .default(join(homedir(), '.local', 'share', 'tessera')),
    stagingDir: optionalText,
    s3Endpoint: optionalText.pipe(z.url().optional()),
    s3Bucket: optionalText,
    s3Region: z.string().min(1).default('us-east-1'),
    s3ForcePathStyle: boolean.default(false),
    s3Prefix: z
      .string()
      .regex(/^[A-Za-z0-9!_.*'()/-]*$/, "expected letters, digits and !_.*'()/- only")
      .default(''),
    s3MultipartThresholdBytes: integer(0).default(16 * MIB),
    s3PartSizeBytes: integer(S3_MIN_PART_SIZE_BYTES, S3_MAX_PART_SIZE_BYTES).default(8 * MIB),
    s3UploadConcurrency: integer(1, 64).default(4),
    redisUrl: optionalText.pipe(
      z
        .string()
        .regex(/^rediss?:\/\//, 'expected redis://… or rediss://…')
        .optional(),
    ),
    redisPrefix: z.string().default('tessera:'),
    casLeaseSeconds: integer(0).default(30 * 24 * 3600),
    maxBatchTotalSizeBytes: integer(1024, 64 * MIB).default(4 * MIB - 64 * 1024),
    readChunkBytes: integer(1024, MAX_READ_CHUNK_BYTES).default(256 * 1024),
    /** `always`: hash every whole read and refuse a blob whose stored bytes do not match. */
    verifyReads: z.enum(['never', 'always']).default('never'),
    uploadIdleTimeoutSeconds: integer(1).default(600),
    /** Upload sessions (streaming and parked) per process; see docs/ARCHITECTURE.md, Limits. */
    maxConcurrentUploads: integer(1).default(256),
    /** Staging space uploads may reserve; 0: no limit but the disk's. */
    stagingMaxBytes: integer(0).default(0),
    shutdownGraceSeconds: integer(0).default(30),
    tlsCertFile: optionalText,
    tlsKeyFile: optionalText,
    tlsClientCaFile: optionalText,
    /** `TOKEN:PERMISSIONS[:INSTANCE_PATTERN]`, comma-separated; kept as SHA-256 digests only. */
    authTokens: optionalText.transform((text, ctx): TokenEntry[] | undefined => {
      if (text === undefined) return undefined;
      const parsed = parseStaticTokens(text);
      const problems = parsed.filter((item): item is string => typeof item === 'string');
      for (const message of problems) ctx.addIssue({ code: 'custom', message });
      return problems.length > 0 ? z.NEVER : (parsed as TokenEntry[]);
    }),
    authTokensFile: optionalText,
    janitorIntervalSeconds: integer(0).default(900),
    abandonedUploadGraceSeconds: integer(0).default(3600),
    /** For crash tests only: see src/observability/crash-points.ts. */
    crashPoints: z
      .string()
      .regex(
        /^([a-z0-9-]+(:\d+)?)(,[a-z0-9-]+(:\d+)?)*$/,
        'expected point:n[,point:n…], e.g. s3-complete:2',
      )
      .optional(),
    logLevel: z
      .enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'])
      .default('info'),
    awsAccessKeyId: optionalText,
    awsSecretAccessKey: optionalText,
    awsSessionToken: optionalText,
  })
  .strict();

export type Settings = z.infer<typeof settingsSchema>;
export type SettingName = keyof Settings;

/** Env var of each setting. Credentials use the standard AWS names. */
export function envNameOf(name: SettingName): string {
  if (name === 'awsAccessKeyId') return 'AWS_ACCESS_KEY_ID';
  if (name === 'awsSecretAccessKey') return 'AWS_SECRET_ACCESS_KEY';
  if (name === 'awsSessionToken') return 'AWS_SESSION_TOKEN';
  return `TESSERA_${name.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
}

/** Command-line flag of each setting (credentials and tokens have none: flags show in `ps`). */
export function flagNameOf(name: SettingName): string | undefined {
  if (name.startsWith('aws') || name === 'authTokens') return undefined;
  return `--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

export const SECRET_SETTINGS: ReadonlySet<SettingName> = new Set([
  'awsSecretAccessKey',
  'awsSessionToken',
  'authTokens',
]);

export const SETTING_NAMES = Object.keys(settingsSchema.shape) as SettingName[];

export function defaultStagingDir(settings: Settings): string {
  if (settings.stagingDir) return settings.stagingDir;
  // In embedded mode staging must share a filesystem with the data so that commit is a rename.
  return isCloudMode(settings)
    ? join(tmpdir(), 'tessera-staging')
    : join(settings.dataDir, 'staging');
}

export function isCloudMode(settings: Settings): boolean {
  return settings.s3Bucket !== undefined || settings.redisUrl !== undefined;
}
