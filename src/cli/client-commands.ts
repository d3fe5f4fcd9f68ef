// `tessera upload | download | cat`: the client library (src/client/) behind a command line. This
// file parses arguments, reads TESSERA_SERVER, prints results on stdout and messages on stderr,
// and turns the library's error kinds into the exit codes documented in CLIENT_USAGE.
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import {
  DIGEST_FUNCTION_SEGMENTS,
  type Digest,
  type DigestFunction,
  resolveDigestFunction,
  toDigest,
} from '../cas/digest.ts';
import {
  type ClientSecurity,
  type Connection,
  DEFAULT_SERVER,
  openConnection,
} from '../client/connection.ts';
import { checkTarget, downloadTree } from '../client/downloader.ts';
import { type ClientErrorKind, toClientError, usageError } from '../client/errors.ts';
import { createProgress } from '../client/progress.ts';
import { type ChunkSink, readBlob } from '../client/reader.ts';
import { uploadPath } from '../client/uploader.ts';
import { startProgressDisplay } from './progress-display.ts';

export const CLIENT_COMMANDS: ReadonlySet<string> = new Set(['upload', 'download', 'cat']);

const FUNCTION_NAMES = [...DIGEST_FUNCTION_SEGMENTS.keys()].join(', ');
const MAX_JOBS = 256;
const COMPRESSIONS = ['zstd', 'none'] as const;
type Compression = (typeof COMPRESSIONS)[number];

export const CLIENT_USAGE = `usage: tessera upload   [client flags] [--json] PATH…
       tessera download [client flags] [--json] DIGEST DIR
       tessera cat      [client flags] DIGEST

upload sends a file, or a directory as a tree of REAPI Directory messages, and prints its digest
(HASH/SIZE; for a directory, the root Directory's). With several PATHs it prints "DIGEST  PATH"
per path. Only blobs the server lacks are sent. download recreates the tree with root DIGEST in
DIR, which must not exist or be empty. cat writes one blob to stdout. Every blob read is checked
against its digest. Progress is drawn on stderr only when stderr is a terminal. After a failed
download DIR holds part of the tree: remove it before trying again.

Client flags:
  --server ADDRESS          the cache, HOST:PORT, grpc://HOST:PORT or grpcs://HOST:PORT (TLS);
                            default $TESSERA_SERVER, else ${DEFAULT_SERVER}
  --tls                     use TLS, checking the server against the system's CAs
  --tls-ca-file FILE        use TLS, checking the server against the CA certificate(s) in FILE
  --tls-cert-file FILE      client certificate for mutual TLS (PEM), with --tls-key-file
  --tls-key-file FILE       its private key (PEM, unencrypted)
  --token-file FILE         send the bearer token in FILE with every call; the token can also
                            come from $TESSERA_TOKEN (there is no flag for the token itself:
                            flags show in ps)
  --instance NAME           instance name; default empty
  --digest-function NAME    ${FUNCTION_NAMES}
                            upload defaults to sha256; download and cat to the
                            function the hash length implies
  --jobs N                  calls in flight at once, 1 to ${MAX_JOBS}; default 8
  --compression zstd|none   zstd: blob bytes travel zstd-compressed (ByteStream and batches)
                            if the server offers ZSTD, uncompressed if not; default none
  --json                    print one JSON summary line per result instead (upload, download)

Exit codes of upload, download and cat:
  0  success
  1  the operation failed: a server error, a blob not found, a digest mismatch; the message
     names the digest and the gRPC status
  2  usage error: an unknown flag, a malformed digest, a missing PATH, DIR not empty
  3  the server could not be reached
`;

const EXIT_CODES: Record<ClientErrorKind, number> = { failed: 1, usage: 2, unreachable: 3 };

interface Flags {
  readonly server: string;
  readonly security: ClientSecurity;
  readonly instance: string;
  readonly digestFunction: DigestFunction | undefined;
  readonly jobs: number;
  readonly compression: Compression;
  readonly json: boolean;
  readonly positionals: string[];
}

/** Runs one client command; resolves with its exit code and never rejects. */
export async function runClientCommand(
  command: string,
  argv: string[],
  env: NodeJS.ProcessEnv,
): Promise<number> {
  try {
    const flags = parseFlags(argv, env);
    if (command === 'upload') await upload(flags);
    else if (command === 'download') await download(flags);
    else await cat(flags);
    return 0;
  } catch (thrown) {
    const error = toClientError(thrown, command);
    process.stderr.write(`tessera ${command}: ${error.message}\n`);
    return EXIT_CODES[error.kind];
  }
}

async function upload(flags: Flags): Promise<void> {
  const paths = flags.positionals;
  if (paths.length === 0) throw usageError('upload needs at least one PATH');
  for (const path of paths) {
    try {
      await stat(path);
    } catch {
      throw usageError(`path ${path} does not exist or cannot be read`);
    }
  }

  await withConnection(flags, flags.digestFunction ?? 'SHA256', async (connection) => {
    for (const path of paths) {
      const progress = createProgress();
      const display = startProgressDisplay(`upload ${path}:`, progress.snapshot, process.stderr);
      const result = await uploadPath(connection, path, { jobs: flags.jobs, progress }).finally(
        () => display.stop(),
      );
      const digest = `${result.digest.hash}/${result.digest.size}`;
      if (flags.json) {
        print(JSON.stringify({ path, kind: result.kind, digest, ...result.summary }));
      } else {
        print(paths.length === 1 ? digest : `${digest}  ${path}`);
      }
    }
  });
}

async function download(flags: Flags): Promise<void> {
  const [text, dir, ...extra] = flags.positionals;
  if (text === undefined || dir === undefined || extra.length > 0) {
    throw usageError('download needs exactly two arguments: DIGEST DIR');
  }
  const root = parseDigest(text, flags.digestFunction);
  await checkTarget(dir);

  await withConnection(flags, root.fn, async (connection) => {
    const progress = createProgress();
    const display = startProgressDisplay(`download ${dir}:`, progress.snapshot, process.stderr);
    const summary = await downloadTree(connection, root, dir, {
      jobs: flags.jobs,
      progress,
    }).finally(() => display.stop());
    if (flags.json) print(JSON.stringify({ digest: text, dir, ...summary }));
  });
}

async function cat(flags: Flags): Promise<void> {
  const [text, ...extra] = flags.positionals;
  if (text === undefined || extra.length > 0) {
    throw usageError('cat needs exactly one argument: DIGEST');
  }
  const digest = parseDigest(text, flags.digestFunction);
  await withConnection(flags, digest.fn, (connection) =>
    readBlob(connection, digest, stdoutSink()),
  );
}

/** Writes to stdout at the pace it drains; a closed pipe (EPIPE) ends the read with an error. */
function stdoutSink(): ChunkSink {
  let broken: Error | undefined;
  process.stdout.on('error', (error) => {
    broken = error;
  });
  return async (chunk) => {
    if (broken) throw broken;
    if (!process.stdout.write(chunk)) await once(process.stdout, 'drain');
  };
}

async function withConnection(
  flags: Flags,
  digestFunction: DigestFunction,
  use: (connection: Connection) => Promise<void>,
): Promise<void> {
  const connection = await openConnection({
    server: flags.server,
    instance: flags.instance,
    digestFunction,
    security: flags.security,
    compression: flags.compression,
  });
  try {
    await use(connection);
  } finally {
    connection.close();
  }
}

function parseFlags(argv: string[], env: NodeJS.ProcessEnv): Flags {
  let parsed: ReturnType<typeof parseClientArgs>;
  try {
    parsed = parseClientArgs(argv);
  } catch (error) {
    const text = error instanceof Error ? error.message.split('. ')[0] : String(error);
    throw usageError((text ?? '').replace(/^./, (first) => first.toLowerCase()));
  }
  const { values, positionals } = parsed;

  const jobsText = values.jobs ?? '8';
  const jobs = Number(jobsText);
  if (!/^\d+$/.test(jobsText) || jobs < 1 || jobs > MAX_JOBS) {
    throw usageError(`--jobs "${jobsText}" is not a whole number from 1 to ${MAX_JOBS}`);
  }
  let digestFunction: DigestFunction | undefined;
  if (values['digest-function'] !== undefined) {
    const name = values['digest-function'];
    digestFunction = DIGEST_FUNCTION_SEGMENTS.get(name.toLowerCase());
    if (digestFunction === undefined) {
      throw usageError(`--digest-function "${name}" is not one of ${FUNCTION_NAMES}`);
    }
  }
  const compression = values.compression ?? 'none';
  if (!isCompression(compression)) {
    throw usageError(`--compression "${compression}" is not one of ${COMPRESSIONS.join(', ')}`);
  }
  const { server, security } = parseSecurity(values, env);
  return {
    server,
    security,
    instance: values.instance ?? '',
    digestFunction,
    jobs,
    compression,
    json: values.json ?? false,
    positionals,
  };
}

function parseClientArgs(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      server: { type: 'string' },
      instance: { type: 'string' },
      'digest-function': { type: 'string' },
      jobs: { type: 'string' },
      compression: { type: 'string' },
      json: { type: 'boolean' },
      tls: { type: 'boolean' },
      'tls-ca-file': { type: 'string' },
      'tls-cert-file': { type: 'string' },
      'tls-key-file': { type: 'string' },
      'token-file': { type: 'string' },
    },
  });
}

type ClientValues = ReturnType<typeof parseClientArgs>['values'];

/** The server address without its scheme, and what TLS and token to use with it. */
function parseSecurity(
  values: ClientValues,
  env: NodeJS.ProcessEnv,
): { server: string; security: ClientSecurity } {
  const address = values.server ?? (env.TESSERA_SERVER || DEFAULT_SERVER);
  const scheme = /^([a-z]+):\/\//.exec(address)?.[1];
  if (scheme !== undefined && scheme !== 'grpc' && scheme !== 'grpcs') {
    throw usageError(`server "${address}": the scheme must be grpc:// or grpcs://`);
  }
  const server = scheme === undefined ? address : address.slice(scheme.length + 3);
  if (scheme === 'grpc' && (values.tls || values['tls-ca-file'] !== undefined)) {
    throw usageError(`server "${address}" says grpc:// (plaintext) but a TLS flag was given`);
  }
  const certFile = values['tls-cert-file'];
  const keyFile = values['tls-key-file'];
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw usageError('--tls-cert-file and --tls-key-file go together: give both or neither');
  }
  const useTls =
    scheme === 'grpcs' ||
    values.tls === true ||
    values['tls-ca-file'] !== undefined ||
    certFile !== undefined;
  const tls = useTls
    ? {
        ca: readFlagFile('--tls-ca-file', values['tls-ca-file']),
        cert: readFlagFile('--tls-cert-file', certFile),
        key: readFlagFile('--tls-key-file', keyFile),
      }
    : undefined;
  const tokenText =
    values['token-file'] !== undefined
      ? readFlagFile('--token-file', values['token-file'])?.toString('utf8')
      : env.TESSERA_TOKEN || undefined;
  const token = tokenText?.trim() || undefined;
  if (tokenText !== undefined && token === undefined) {
    const source = values['token-file'] !== undefined ? '--token-file' : 'TESSERA_TOKEN';
    throw usageError(`${source} holds no token (it is empty)`);
  }
  return { server, security: { tls, token } };
}

function readFlagFile(flag: string, path: string | undefined): Buffer | undefined {
  if (path === undefined) return undefined;
  try {
    return readFileSync(path);
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? String(error);
    throw usageError(`${flag} "${path}" cannot be read (${reason})`);
  }
}

/** `HASH/SIZE`; the function is the flag's, or else the one the hash length implies. */
function parseDigest(text: string, fn: DigestFunction | undefined): Digest {
  const match = /^([0-9a-f]+)\/(\d{1,16})$/.exec(text);
  if (match === null) {
    throw usageError(
      `digest "${text}" is not HASH/SIZE (lower-case hex hash, size in bytes), as upload prints`,
    );
  }
  const [, hash = '', size = ''] = match;
  try {
    return toDigest(fn ?? resolveDigestFunction(undefined, hash), hash, Number(size));
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw usageError(`digest "${text}" is not valid: ${reason}`);
  }
}

function print(line: string): void {
  process.stdout.write(`${line}\n`);
}

function isCompression(name: string): name is Compression {
  return (COMPRESSIONS as readonly string[]).includes(name);
}
