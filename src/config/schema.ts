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

const PEER_ENDPOINT_RE = /^grpcs?:\/\/(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

/** One peer region; `token` is a secret and never logged. */
const peerSchema = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'expected a region name such as eu-west-1'),
    endpoint: z.string().regex(PEER_ENDPOINT_RE, 'expected grpc://HOST:PORT or grpcs://HOST:PORT'),
    token: z.string().min(1).optional(),
    instanceName: z.string().optional(),
  })
  .strict();

export type PeerSettings = z.infer<typeof peerSchema>;

/** A JSON array from env or flags, or an array from the config file. */
const peerList = z
  .preprocess((value, ctx) => {
    if (typeof value !== 'string') return value;
    try {
      return JSON.parse(value);
    } catch {
      ctx.addIssue({ code: 'custom', message: 'expected a JSON array of peers' });
      return z.NEVER;
    }
  }, z.array(peerSchema))
  .default([])
  .refine(
    (peers) => new Set(peers.map((peer) => peer.name)).size === peers.length,
    'peer names must be unique',
  );

export const settingsSchema = z
  .object({
    listen: hostPort.default('127.0.0.1:8980').describe('gRPC address, HOST:PORT.'),
    httpListen: optionalText
      .pipe(hostPort.optional())
      .describe(
        'Operations HTTP address, HOST:PORT: GET /metrics (Prometheus), /healthz (alive), ' +
          '/readyz (backends reachable). Unset: no HTTP server. No auth: keep it private.',
      ),
    dataDir: z
      .string()
      .min(1)
      .default(join(homedir(), '.local', 'share', 'tessera'))
      .describe(
        'Directory of the embedded store (used when neither an S3 bucket nor Redis is set).',
      ),
    stagingDir: optionalText.describe(
      'Spool files of uploads in progress. Default: {dataDir}/staging in embedded mode (it ' +
        'must share a filesystem with the data), a temporary directory in S3 mode.',
    ),
    s3Endpoint: optionalText
      .pipe(z.url().optional())
      .describe('S3 endpoint URL; unset means AWS S3 itself.'),
    s3Bucket: optionalText.describe(
      'Bucket of the blobs; setting it selects S3 mode, which also needs redisUrl.',
    ),
    s3Region: z.string().min(1).default('us-east-1').describe('Region for request signing.'),
    s3ForcePathStyle: boolean
      .default(false)
      .describe(
        'Address the bucket in the path instead of the host name: true for MinIO and Ceph RGW.',
      ),
    s3Prefix: z
      .string()
      .regex(/^[A-Za-z0-9!_.*'()/-]*$/, "expected letters, digits and !_.*'()/- only")
      .default('')
      .describe('Key prefix inside the bucket, so several deployments can share one bucket.'),
    s3MultipartThresholdBytes: integer(0)
      .default(16 * MIB)
      .describe(
        'Blobs up to this size are written with one PUT; larger ones are streamed as a ' +
          'multipart upload while they arrive.',
      ),
    s3PartSizeBytes: integer(S3_MIN_PART_SIZE_BYTES, S3_MAX_PART_SIZE_BYTES)
      .default(8 * MIB)
      .describe('Multipart part size, 5 MiB to 5 GiB.'),
    s3UploadConcurrency: integer(1, 64)
      .default(4)
      .describe('Parts of one upload in flight to S3 at once.'),
    redisUrl: optionalText
      .pipe(
        z
          .string()
          .regex(/^rediss?:\/\//, 'expected redis://… or rediss://…')
          .optional(),
      )
      .describe('Redis of the commit index, redis://… or rediss://…; required in S3 mode.'),
    redisPrefix: z
      .string()
      .default('tessera:')
      .describe('Prefix of every Redis key, so several deployments can share one Redis.'),
    casLeaseSeconds: integer(0)
      .default(30 * 24 * 3600)
      .describe(
        'Lease of a blob or action result since it was last written, read or found: the ' +
          'collector deletes blobs whose lease expired; 0 keeps them forever.',
      ),
    maxBatchTotalSizeBytes: integer(1024, 64 * MIB)
      .default(4 * MIB - 64 * 1024)
      .describe('Largest batch request or response the server advertises and accepts.'),
    readChunkBytes: integer(1024, MAX_READ_CHUNK_BYTES)
      .default(256 * 1024)
      .describe('Size of ByteStream Read chunks, at most 1 MiB.'),
    verifyReads: z
      .enum(['never', 'always'])
      .default('never')
      .describe(
        'always: hash every whole read; a blob whose stored bytes do not match its digest ' +
          'is refused (NOT_FOUND, or an error ending a ByteStream Read), its commit dropped ' +
          'and an error logged. Ranged reads are not checked. Costs one hash pass per read.',
      ),
    uploadIdleTimeoutSeconds: integer(1)
      .default(600)
      .describe(
        'How long a broken-off upload waits for a resume, and how long a Write may send ' +
          'nothing before it is ended (DEADLINE_EXCEEDED) and its upload dropped.',
      ),
    resumeAcrossReplicas: boolean
      .default(false)
      .describe(
        'S3 mode: checkpoint the hash of large uploads so that a replica other than the one a ' +
          'Write broke off on can continue it. Costs a WebAssembly SHA-256, about 6 times the ' +
          'CPU of the native one, on every byte of those uploads. Off: they resume on the same ' +
          'replica only, elsewhere they start again from 0.',
      ),
    maxConcurrentUploads: integer(1)
      .default(256)
      .describe(
        'ByteStream upload sessions per process, parked ones included; beyond it the ' +
          'longest-parked one is evicted, or RESOURCE_EXHAUSTED if none is parked. Batches do' +
          ' not count.',
      ),
    stagingMaxBytes: integer(0)
      .default(0)
      .describe(
        'Staging space uploads and batches may reserve; a blob that would not fit is ' +
          "RESOURCE_EXHAUSTED before a byte is written. 0: no limit but the disk's.",
      ),
    readCacheBytes: integer(0)
      .default(0)
      .describe(
        'S3 mode: disk space for local copies of often-read committed blobs (the read tier), ' +
          'least recently used evicted first. Each read still checks the commit in Redis and ' +
          'hashes the copy before serving it. 0: off.',
      ),
    readCacheDir: optionalText.describe(
      'Directory of the read tier, used by this process alone. Default: ' +
        '{stagingDir}-read-cache.',
    ),
    readCacheAdmitAfterReads: integer(1)
      .default(2)
      .describe('A blob is copied to the read tier at its Nth read served from S3 here.'),
    readCacheMaxBlobBytes: integer(1)
      .default(64 * MIB)
      .describe('Larger blobs are never copied to the read tier.'),
    shutdownGraceSeconds: integer(0)
      .default(30)
      .describe('How long SIGTERM waits for calls in flight before it cancels them.'),
    tlsCertFile: optionalText.describe(
      'PEM certificate (chain) of the gRPC port; with tlsKeyFile, turns TLS on.',
    ),
    tlsKeyFile: optionalText.describe(
      'PEM private key of tlsCertFile, unencrypted; give both files or neither.',
    ),
    tlsClientCaFile: optionalText.describe(
      'PEM CA certificate(s): clients must present a certificate it signed (mutual TLS).',
    ),
    tlsReloadIntervalSeconds: integer(0)
      .default(60)
      .describe(
        'How often the TLS files are read again; a changed, valid set replaces the old one for ' +
          'new connections, an invalid one is refused and logged. SIGHUP reloads at once. ' +
          '0: only on SIGHUP.',
      ),
    authTokens: optionalText
      .transform((text, ctx): TokenEntry[] | undefined => {
        if (text === undefined) return undefined;
        const parsed = parseStaticTokens(text);
        const problems = parsed.filter((item): item is string => typeof item === 'string');
        for (const message of problems) ctx.addIssue({ code: 'custom', message });
        return problems.length > 0 ? z.NEVER : (parsed as TokenEntry[]);
      })
      .describe(
        'Bearer tokens, TOKEN:PERMISSIONS[:INSTANCE_PATTERN] comma-separated; kept as ' +
          'SHA-256 digests only. A secret, so it has no flag.',
      ),
    authTokensFile: optionalText.describe(
      'JSON file of tokens and grants, reloaded when it changes and on SIGHUP.',
    ),
    janitorIntervalSeconds: integer(0)
      .default(900)
      .describe(
        'How often each replica looks for abandoned multipart uploads to abort; 0: only at start.',
      ),
    abandonedUploadGraceSeconds: integer(0)
      .default(3600)
      .describe(
        'Age after which a multipart upload that no live upload owns is aborted by the janitor.',
      ),
    gcIntervalSeconds: integer(0)
      .default(3600)
      .describe(
        'How often serve runs the garbage collector (one replica at a time cluster-wide; the ' +
          'first run one interval after start); 0: never.',
      ),
    gcBudgetBytes: integer(0)
      .default(0)
      .describe(
        'Size budget of the bucket prefix: the collector evicts least recently used blobs ' +
          'while the store holds more; 0: no budget.',
      ),
    gcMinAgeSeconds: integer(0)
      .default(3600)
      .describe('Budget eviction never takes a blob used (written, read or found) more recently.'),
    gcOrphanGraceSeconds: integer(0)
      .default(86400)
      .describe(
        'The collector deletes objects that have no commit entry once they are this old ' +
          '(uploads that died before their commit); 0: never.',
      ),
    scrubBytesPerSecond: integer(0)
      .default(0)
      .describe(
        'Re-hash committed blobs in the background of serve at this many bytes per second (one ' +
          'replica at a time), quarantining corrupt ones; 0: no background scrub.',
      ),
    scrubIntervalSeconds: integer(1)
      .default(86400)
      .describe('Time between the starts of two background scrub passes.'),
    repairConcurrency: integer(1, 256)
      .default(4)
      .describe('Objects tessera reindex reads and verifies at once.'),
    crashPoints: z
      .string()
      .regex(
        /^([a-z0-9-]+(:\d+)?)(,[a-z0-9-]+(:\d+)?)*$/,
        'expected point:n[,point:n…], e.g. s3-complete:2',
      )
      .optional()
      .describe(
        'For crash tests only: point:n[,point:n…] makes the process die (SIGKILL) the n-th time' +
          ' it reaches that point (see src/observability/crash-points.ts).',
      ),
    region: z
      .string()
      .regex(
        /^[A-Za-z0-9._-]{1,64}$/,
        'expected 1 to 64 letters, digits, dots, dashes or underscores',
      )
      .default('local')
      .describe("This region's name, shown in logs and sent to peer regions with each call."),
    peers: peerList.describe(
      'Peer regions asked on a local miss, a JSON array of {"name", "endpoint": ' +
        '"grpc://HOST:PORT" or "grpcs://HOST:PORT", "token" (optional bearer token for the ' +
        'peer, redacted in logs), "instanceName" (optional, used in CAS calls)}. Empty: a ' +
        'single region.',
    ),
    peerTimeoutMs: integer(50, 60_000)
      .default(1500)
      .describe(
        'Deadline of a peer lookup, of the start of a peer read and of any stall in it; a peer ' +
          'that misses it costs this much, then the answer is the local one.',
      ),
    replication: z
      .enum(['off', 'on'])
      .default('off')
      .describe('on: push newly committed blobs and action results to every peer, asynchronously.'),
    logLevel: z
      .enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'])
      .default('info')
      .describe('Least severe log level written (JSON lines on standard output).'),
    awsAccessKeyId: optionalText.describe(
      "S3 access key; otherwise the AWS SDK's default credential chain.",
    ),
    awsSecretAccessKey: optionalText.describe('S3 secret key; a secret, so it has no flag.'),
    awsSessionToken: optionalText.describe('S3 session token; a secret, so it has no flag.'),
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
