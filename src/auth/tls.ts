// The gRPC port's transport security: plaintext (no TLS settings), TLS (`tlsCertFile` and
// `tlsKeyFile`), or mutual TLS (also `tlsClientCaFile`: a client must present a certificate that
// CA signed, or the handshake fails before any call). The files are read and checked once, at
// startup; a file that cannot be used is a ConfigError naming the setting and the file.
//
// LIMITATION: certificates are read only at startup — rotating them needs a restart (replicas
// behind a load balancer can be restarted one at a time).
import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { ServerCredentials } from '@grpc/grpc-js';
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
}

const PEM_CERTIFICATE_RE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

export async function loadServerSecurity(settings: TlsSettings): Promise<ServerSecurity> {
  const { tlsCertFile, tlsKeyFile, tlsClientCaFile } = settings;
  if (tlsCertFile === undefined || tlsKeyFile === undefined) {
    return { mode: 'off', credentials: ServerCredentials.createInsecure() };
  }

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
  const pair = { private_key: keyPem, cert_chain: certPem };
  const certificateNotAfter = new Date(leaf.validTo).toISOString();
  if (tlsClientCaFile === undefined) {
    return {
      mode: 'tls',
      credentials: ServerCredentials.createSsl(null, [pair], false),
      certificateNotAfter,
    };
  }

  const caPem = await readSetting('tlsClientCaFile', tlsClientCaFile);
  certificatesIn('tlsClientCaFile', tlsClientCaFile, caPem);
  return {
    mode: 'mtls',
    credentials: ServerCredentials.createSsl(caPem, [pair], true),
    certificateNotAfter,
  };
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
