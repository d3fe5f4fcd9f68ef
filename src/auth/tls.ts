// The gRPC port's transport security: plaintext (no TLS settings), TLS (`tlsCertFile` and
// `tlsKeyFile`), or mutual TLS (also `tlsClientCaFile`: a client must present a certificate that
// CA signed, or the handshake fails before any call). The files are read and checked at startup;
// a file that cannot be used is a ConfigError naming the setting and the file.
//
// Rotation without a restart: `reload()` (SIGHUP, and a periodic check) reads the files again and
// runs the same checks. A complete, consistent set replaces the old one for new connections;
// anything else (a key that is not the certificate's, a half-written file) is refused and the old
// set stays in force, so a rotation caught half-way never takes the port down.
import { createHash, createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { experimental, ServerCredentials } from '@grpc/grpc-js';
import { ConfigError } from '../config/load.ts';

export type TlsMode = 'off' | 'tls' | 'mtls';

export interface TlsSettings {
  readonly tlsCertFile?: string | undefined;
  readonly tlsKeyFile?: string | undefined;
  readonly tlsClientCaFile?: string | undefined;
}

export interface ServerSecurity {
  readonly mode: TlsMode;
  readonly credentials: ServerCredentials;
  /** When the server certificate expires (ISO 8601), with TLS on. */
  readonly certificateNotAfter?: string;
  /** Reads the files again; never throws. Plaintext has nothing to reload. */
  reload(): Promise<TlsReloadOutcome>;
}

export type TlsReloadOutcome =
  | { readonly kind: 'unchanged' }
  | { readonly kind: 'replaced'; readonly certificateNotAfter: string }
  | { readonly kind: 'refused'; readonly error: string };

/** What the files held when they last passed every check. */
interface CheckedFiles {
  readonly certPem: Buffer;
  readonly keyPem: Buffer;
  readonly caPem: Buffer | undefined;
  readonly certificateNotAfter: string;
  /** Of all three contents: tells a rotation from an unchanged re-read. */
  readonly fingerprint: string;
}

const PEM_CERTIFICATE_RE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

export async function loadServerSecurity(settings: TlsSettings): Promise<ServerSecurity> {
  const { tlsCertFile, tlsKeyFile, tlsClientCaFile } = settings;
  if (tlsCertFile === undefined || tlsKeyFile === undefined) {
    return {
      mode: 'off',
      credentials: ServerCredentials.createInsecure(),
      reload: async () => ({ kind: 'unchanged' }),
    };
  }
  const files = { tlsCertFile, tlsKeyFile, tlsClientCaFile };
  let current = await checkFiles(files);
  const identity = new CertificateSource<experimental.IdentityCertificateUpdate>(
    'identity',
    identityOf(current),
  );
  const clientCa =
    current.caPem === undefined
      ? null
      : new CertificateSource<experimental.CaCertificateUpdate>('ca', caOf(current));
  // grpc-js names this function's first parameter after the CA, but passes it on as the identity
  // provider: the identity source must come first.
  const credentials = experimental.createCertificateProviderServerCredentials(
    identity,
    clientCa,
    clientCa !== null,
  );
  return {
    mode: clientCa === null ? 'tls' : 'mtls',
    credentials,
    certificateNotAfter: current.certificateNotAfter,
    async reload() {
      let next: CheckedFiles;
      try {
        next = await checkFiles(files);
      } catch (error) {
        return { kind: 'refused', error: error instanceof Error ? error.message : String(error) };
      }
      if (next.fingerprint === current.fingerprint) return { kind: 'unchanged' };
      if ((next.caPem === undefined) !== (clientCa === null)) {
        return { kind: 'refused', error: 'mutual TLS cannot be switched on or off by a reload' };
      }
      current = next;
      identity.publish(identityOf(next));
      if (clientCa !== null) clientCa.publish(caOf(next));
      return { kind: 'replaced', certificateNotAfter: next.certificateNotAfter };
    },
  };
}

/** Reads and checks every file; throws a ConfigError naming the first that cannot be used. */
async function checkFiles(files: {
  tlsCertFile: string;
  tlsKeyFile: string;
  tlsClientCaFile: string | undefined;
}): Promise<CheckedFiles> {
  const { tlsCertFile, tlsKeyFile, tlsClientCaFile } = files;
  const certPem = await readSetting('tlsCertFile', tlsCertFile);
  const chain = certificatesIn('tlsCertFile', tlsCertFile, certPem);
  const keyPem = await readSetting('tlsKeyFile', tlsKeyFile);
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch {
    throw fileError(
      'tlsKeyFile',
      tlsKeyFile,
      'is not a PEM private key (a key protected by a passphrase is not supported)',
    );
  }
  const leaf = chain[0]!;
  if (!leaf.checkPrivateKey(key)) {
    throw fileError(
      'tlsKeyFile',
      tlsKeyFile,
      `is not the key of the certificate in tlsCertFile "${tlsCertFile}"`,
    );
  }
  let caPem: Buffer | undefined;
  if (tlsClientCaFile !== undefined) {
    caPem = await readSetting('tlsClientCaFile', tlsClientCaFile);
    certificatesIn('tlsClientCaFile', tlsClientCaFile, caPem);
  }
  const fingerprint = createHash('sha256')
    .update(certPem)
    .update('\0')
    .update(keyPem)
    .update('\0')
    .update(caPem ?? '')
    .digest('hex');
  const certificateNotAfter = new Date(leaf.validTo).toISOString();
  return { certPem, keyPem, caPem, certificateNotAfter, fingerprint };
}

const identityOf = (files: CheckedFiles): experimental.IdentityCertificateUpdate => ({
  certificate: files.certPem,
  privateKey: files.keyPem,
});

const caOf = (files: CheckedFiles): experimental.CaCertificateUpdate => ({
  caCertificate: files.caPem ?? Buffer.alloc(0),
});

/**
 * A grpc-js certificate provider holding one kind of update. Listeners hear the current value on
 * a later tick, not inside `add…Listener`: grpc-js registers the server's watcher only after
 * adding its listener, so a synchronous call would reach nobody and leave the port refusing
 * every connection.
 */
class CertificateSource<Update> implements experimental.CertificateProvider {
  readonly #kind: 'identity' | 'ca';
  #latest: Update;
  readonly #listeners = new Set<(update: Update | null) => void>();

  constructor(kind: 'identity' | 'ca', initial: Update) {
    this.#kind = kind;
    this.#latest = initial;
  }

  publish(update: Update): void {
    this.#latest = update;
    for (const listener of this.#listeners) listener(update);
  }

  #add(listener: (update: Update | null) => void): void {
    this.#listeners.add(listener);
    queueMicrotask(() => {
      if (this.#listeners.has(listener)) listener(this.#latest);
    });
  }

  addIdentityCertificateListener(listener: experimental.IdentityCertificateUpdateListener): void {
    if (this.#kind === 'identity') this.#add(listener as (update: Update | null) => void);
  }

  removeIdentityCertificateListener(
    listener: experimental.IdentityCertificateUpdateListener,
  ): void {
    this.#listeners.delete(listener as (update: Update | null) => void);
  }

  addCaCertificateListener(listener: experimental.CaCertificateUpdateListener): void {
    if (this.#kind === 'ca') this.#add(listener as (update: Update | null) => void);
  }

  removeCaCertificateListener(listener: experimental.CaCertificateUpdateListener): void {
    this.#listeners.delete(listener as (update: Update | null) => void);
  }
}

async function readSetting(name: string, path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'i/o error';
    throw fileError(name, path, `cannot be read: ${code}`);
  }
}

function certificatesIn(name: string, path: string, pem: Buffer): X509Certificate[] {
  const blocks = pem.toString('utf8').match(PEM_CERTIFICATE_RE) ?? [];
  if (blocks.length === 0) {
    throw fileError(name, path, 'holds no PEM certificate (-----BEGIN CERTIFICATE-----)');
  }
  return blocks.map((block, index) => {
    try {
      return new X509Certificate(block);
    } catch {
      throw fileError(name, path, `certificate ${index + 1} cannot be parsed`);
    }
  });
}

function fileError(name: string, path: string, problem: string): ConfigError {
  return new ConfigError(`invalid configuration:\n  ${name} = "${path}": ${problem}`);
}
